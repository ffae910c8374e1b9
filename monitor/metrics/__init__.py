"""Metrics: what Prometheus scrapes.

Owns: the per-target families rendered directly within a series budget (``targets``), the text format helpers
(``text``), one collector per subsystem for the rest (``contracts``, ``snmp``, ``selfmon``, ``cluster``; the
tickets' in ``monitor.tickets.metrics``), the exporter (``exporter``) and its HTTP server (``http_server``).
Reads only ``monitor.measure.live`` (never the store). May import: ``monitor.measure.live``, ``monitor.sla``
(voice windows), ``monitor.config``, ``monitor.errors``.
"""

from monitor.metrics.targets import DEFAULT_SERIES, TargetSeries
from monitor.metrics.text import Family, escape, label_text, value_text

__all__ = ["TargetSeries", "DEFAULT_SERIES", "Family", "escape", "label_text", "value_text"]
