"""From the store's records to the SLA engine's intervals: the one conversion between them.

The store keeps instants as UTC seconds (floats, as probes and the wall clock give them); the engine computes in
integer UTC milliseconds, so every sum is exact (:mod:`monitor.sla.availability`). The live evaluator
(:mod:`monitor.sla.evaluator`) and the monthly figures (:mod:`monitor.sla.monthly`) both read outages, unknown
intervals and each target's first and last cycle, and both turn them into intervals here, the same way: an open
outage runs to ``open_end_ms``, and the time before a target's first cycle and after its overdue last one is
unknown.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.sla.intervals import Interval
from monitor.sla.periods import to_ms
from monitor.store.base import OutageRecord, UnknownRecord

__all__ = ["outage_intervals", "outage_span", "unknown_intervals", "coverage_gaps"]


def outage_intervals(records: Iterable[OutageRecord], open_end_ms: int
                     ) -> tuple[dict[str, list[Interval]], dict[str, list[Interval]]]:
    """Each target's down and degraded intervals (ms); an outage still open ends at ``open_end_ms``."""
    down: dict[str, list[Interval]] = {}
    degraded: dict[str, list[Interval]] = {}
    for o in records:
        (down if o.kind == "down" else degraded).setdefault(o.target, []).append(outage_span(o, open_end_ms))
    return down, degraded


def outage_span(record: OutageRecord, open_end_ms: int) -> Interval:
    """One outage as an interval (ms); still open, it ends at ``open_end_ms``."""
    return to_ms(record.start), open_end_ms if record.end is None else to_ms(record.end)


def unknown_intervals(records: Iterable[UnknownRecord]) -> dict[str, list[Interval]]:
    """Each target's recorded unknown intervals (ms)."""
    out: dict[str, list[Interval]] = {}
    for u in records:
        out.setdefault(u.target, []).append((to_ms(u.start), to_ms(u.end)))
    return out


def coverage_gaps(first: float | None, last: float | None, interval: float, lo_ms: int, now_ms: int
                  ) -> list[Interval]:
    """The unknown time around a target's cycles in [lo_ms, now_ms): all of it before its first cycle (or all
    of it without one), and after its last cycle from the end of that cycle's slot (its start plus one
    interval): a cycle's evidence covers its own slot and no more. For a running daemon the next cycle is
    in flight there and covers that time once stored; for a stopped or dead one, it stays unknown, never up."""
    if first is None:
        return [(lo_ms, now_ms)]
    gaps = [(lo_ms, to_ms(first))]
    if last is not None and now_ms > to_ms(last + interval):
        gaps.append((to_ms(last + interval), now_ms))
    return gaps
