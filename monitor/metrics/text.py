"""Prometheus text exposition (format 0.0.4), written directly for the per-target families.

prometheus_client builds a MetricFamily and a Sample tuple per series and formats each on every scrape; at
10,000 targets that was most of a 6-8 s scrape. Here each target's label set is escaped once and cached,
and a sample is one f-string (measured in bench/exporter_scale.py). The output is what prometheus_client
writes for the same families (tests/test_exposition.py compares them line by line).
"""

from __future__ import annotations

from prometheus_client.utils import floatToGoString

__all__ = ["Family", "escape", "label_text", "value_text"]


def escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``a="x",b="y"`` (no braces)."""
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values))


def value_text(value: float) -> str:
    """A sample value as the Prometheus text format writes it."""
    if value == 0:
        return "0.0"
    if value == 1:
        return "1.0"
    return floatToGoString(value)


class Family:
    """One metric family's HELP, TYPE and sample lines. ``name`` is the sample name (``_total`` included for
    counters)."""

    __slots__ = ("name", "kind", "help", "lines")

    def __init__(self, name: str, kind: str, help_text: str):
        self.name, self.kind, self.help = name, kind, help_text
        self.lines: list[str] = []

    def add(self, labels: str, value: float, suffix: str = "") -> None:
        """Add one sample: ``labels`` already rendered, ``suffix`` for _bucket, _sum or _count."""
        self.lines.append(f"{self.name}{suffix}{{{labels}}} {value_text(value)}\n")

    def text(self) -> str:
        """The family in the text exposition format (HELP, TYPE and its samples)."""
        if not self.lines:
            return ""
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        head = f"# HELP {self.name} {help_text}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(self.lines)
