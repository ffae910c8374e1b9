"""Metrics exposition: the per-target families rendered directly (within a series budget) and the text
format helpers. The registry-based collectors for everything else live in monitor.metrics.exporter."""

from monitor.metrics.targets import DEFAULT_SERIES, TargetSeries
from monitor.metrics.text import Family, escape, label_text, value_text

__all__ = ["TargetSeries", "DEFAULT_SERIES", "Family", "escape", "label_text", "value_text"]
