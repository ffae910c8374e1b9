"""Maintenance changed after the fact: rebuild a month's rollup with the windows configured now.

A cycle is judged in or out of maintenance when it is ingested, with the windows then in force; its
quality figures go into the hourly and monthly rollups accordingly. Availability is computed at report time
from the windows configured *now*. When a window is added (or removed) after the cycles it covers were
ingested, the two would disagree: cycle counts and quality figures would use the old windows, availability
the new. :func:`reconcile` finds the target-months whose rollup was judged by other windows than today's
(each rollup keeps the windows it applied) and rebuilds them hour by hour:

* an hour whose windows are unchanged keeps its hourly rollup;
* an hour now wholly inside maintenance keeps only its cycle count, all as maintenance;
* any other changed hour is rebuilt from its raw cycles, judged like ingestion does
  (:func:`monitor.sla.cycles.cycle_figures`);
* an hour whose raw cycles are gone (past ``raw_retention``) keeps its hourly rollup, and the month says how
  many such hours remain judged by the old windows (``unreconciled_hours``).

Rollups from before windows were recorded carry no span and are taken as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from probes import result_from_record
from probes.base import ProbeResult

from monitor.config import Contract, Target
from monitor.sla.cycles import CycleFigures, cycle_figures, cycle_samples
from monitor.sla.intervals import Interval, clip
from monitor.sla.rollup import Rollup

if TYPE_CHECKING:
    from monitor.store import CycleRecord

__all__ = ["Reconciled", "needs_rebuild", "rebuild"]

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Reconciled:
    """How a target-month's rollup was rebuilt because its maintenance windows changed."""

    hours_kept: int
    hours_maintenance: int
    hours_rebuilt: int
    unreconciled_hours: int

    def as_dict(self) -> dict[str, int]:
        """The counts as the report shows them."""
        return {"hours_kept": self.hours_kept, "hours_now_maintenance": self.hours_maintenance,
                "hours_rebuilt_from_cycles": self.hours_rebuilt, "unreconciled_hours": self.unreconciled_hours}


def _judged_alike(rollup: Rollup, windows: list[Interval]) -> bool | None:
    """Whether ``rollup``'s cycles were judged by ``windows`` (None: the rollup does not say)."""
    if rollup.first_ms is None or rollup.last_ms is None:
        return None
    lo, hi = rollup.first_ms, rollup.last_ms + 1
    return clip(windows, lo, hi) == clip(rollup.maint_windows, lo, hi)


def needs_rebuild(rollup: Rollup, windows: list[Interval]) -> bool:
    """Whether a rollup was judged by other maintenance windows than ``windows`` (so its hours are rebuilt)."""
    return _judged_alike(rollup, windows) is False


def _cycle_figures(contract: Contract, target: Target, records: list["CycleRecord"], windows: list[Interval]
                   ) -> CycleFigures:
    first = records[0]
    results: list[ProbeResult] = []
    for rec in records:
        result = result_from_record(rec.probe, target.id, rec.started, rec.duration, rec.ok, rec.reason, rec.sent,
                                    rec.received, rec.samples)
        if result is not None:
            results.append(result)
    at = round(first.started * 1000)
    window = next(((s, e) for s, e in windows if s <= at < e), None)
    return cycle_figures(contract, target, first.verdict, cycle_samples(results), first.started, window)


def rebuild(store, contract: Contract, target: Target, lo: int, hi: int,
            windows: list[Interval]) -> tuple[Rollup, Reconciled]:
    """The rollup of [lo, hi) for ``target`` judged by ``windows`` (ms), from its hourly rollups and, where an
    hour's windows changed, its raw cycles."""
    first_hour = lo // HOUR_MS * HOUR_MS
    hourly = {h: Rollup.stored(r) for h, r in store.hourly_rollups(target.id, first_hour / 1000, hi / 1000).items()}
    out = Rollup()
    kept = maint = rebuilt = unreconciled = 0
    for hour_s, h in sorted(hourly.items()):
        hs = hour_s * 1000
        he = hs + HOUR_MS
        inside = hs >= lo and he <= hi
        now = clip(windows, hs, he)
        if inside and _judged_alike(h, now) is not False:
            out.merge(h)
            kept += 1
            continue
        if inside and now == [(hs, he)]:
            whole = Rollup(cycles=h.cycles, maintenance=h.cycles, first_ms=h.first_ms, last_ms=h.last_ms,
                           maint_windows=list(now))
            out.merge(whole)
            maint += 1
            continue
        records = store.cycles(target.id, max(hs, lo) / 1000, min(he, hi) / 1000)
        groups: dict[tuple[float, str | None], list] = {}
        for rec in records:
            groups.setdefault((rec.started, rec.node), []).append(rec)
        if inside and len(groups) < h.cycles:  # raw cycles purged: keep what ingestion judged
            out.merge(h)
            unreconciled += 1
            continue
        if not groups and h.cycles:  # an hour across the month's edge (a zone off the hour), purged
            unreconciled += 1
            continue
        part = Rollup()
        for recs in groups.values():
            part.add(_cycle_figures(contract, target, recs, windows))
        out.merge(part)
        rebuilt += 1
    return out, Reconciled(kept, maint, rebuilt, unreconciled)
