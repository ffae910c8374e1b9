"""From cycle outcomes to what the store keeps: cycles, state, outages, unknown time, rollups, events.

Unknown time is recorded, never assumed up:

* a gap: the next cycle starts more than ``GAP_FACTOR`` intervals after the
  previous one (the daemon was not running, or could not keep up); the
  unknown interval runs from one interval after the previous cycle to the
  start of this one;
* a cycle without evidence (verdict ``unknown``): its whole interval.
"""

from __future__ import annotations

from typing import Any

import logging

from monitor.config import Config, Target
from monitor.measure.cycle import CycleOutcome, cycle_records, transition_records
from monitor.sla.cycles import CycleFigures, cycle_figures, cycle_samples, voice_sample
from monitor.measure.live import TargetLive
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.periods import month_of, to_ms
from monitor.sla.rollup import Rollup
from monitor.measure.state import GAP_FACTOR
from monitor.store import Batch, UnknownRecord
from monitor.store.base import StoredRollup

__all__ = ["Ingestor", "GAP_FACTOR", "voice_sample"]

#: seconds between log lines about a target's cycles without evidence (for the same reason)
UNKNOWN_LOG_EVERY = 600.0

log = logging.getLogger("slawatch.ingest")


class Ingestor:
    """Accumulates one batch's worth of records; the daemon's BatchWriter writes ``batch``."""

    def __init__(self, config: Config, calendar: MaintenanceCalendar | None = None):
        self.config = config
        self._contracts = {c.id: c for c in config.contracts}
        #: the config's maintenance, expanded once per month and shared with the evaluator (monitor.daemon)
        self.calendar = calendar or MaintenanceCalendar(config)
        #: what this node may probe: the config's targets, and one unit per site of a multi-site target
        #: (monitor.cluster.consensus), whose outages are that site's evidence and open no ticket
        self.units = {t.id: t for t in config.targets}
        self.site_units: set[str] = set()
        #: target -> (its current hour / month, the rollup being accumulated); one each, so a new hour drops the
        #: previous one in O(1) (a scan of every key per target cost ~10^8 steps at 10,000 targets each hour)
        self._hourly: dict[str, tuple[int, Rollup]] = {}
        self._monthly: dict[str, tuple[str, Rollup]] = {}
        self._said_unknown: dict[str, tuple[float, str]] = {}

    def reconfigure(self, config: Config, calendar: MaintenanceCalendar | None = None) -> None:
        """A reload: new targets and windows; the rollups being accumulated stay."""
        self.config = config
        self._contracts = {c.id: c for c in config.contracts}
        self.calendar = calendar or MaintenanceCalendar(config)
        self.units = {t.id: t for t in config.targets}
        self.site_units = set()

    def set_units(self, units: dict) -> None:
        """The probe units (monitor.cluster.consensus.probe_units) in place of the config's targets."""
        self.units = {uid: u.target for uid, u in units.items()}
        self.site_units = {uid for uid, u in units.items() if u.site is not None}

    # -- restart -----------------------------------------------------------------------
    def forget(self, target_id: str) -> None:
        """Drop a target's in-memory rollups (another node owns it now; they are in the store)."""
        self._hourly.pop(target_id, None)
        self._monthly.pop(target_id, None)

    def preload(self, store, now: float, only: str | None = None) -> None:
        """Load the current hour's and month's rollup snapshots, so a restart adds to them (of one target with
        ``only``: a cluster node that takes a target over continues its previous owner's rollups)."""
        hour = int(now // 3600 * 3600)
        months: dict[str, dict[str, StoredRollup]] = {}
        for target in self.units.values():
            if only is not None and target.id != only:
                continue
            contract = self._contracts[target.contract]
            label = month_of(to_ms(now), contract.timezone).label
            if label not in months:
                months[label] = store.monthly_rollups(label, only)
            if target.id in months[label]:
                self._monthly[target.id] = (label, Rollup.stored(months[label][target.id]))
            hourly = store.hourly_rollups(target.id, hour, hour + 3600)
            if hour in hourly:
                self._hourly[target.id] = (hour, Rollup.stored(hourly[hour]))

    # -- one cycle ---------------------------------------------------------------------
    def ingest(self, batch: Batch, target: Target, outcome: CycleOutcome, live: TargetLive,
               previous_cycle: float | None, elapsed: float | None = None) -> None:
        """``elapsed``: monotonic seconds since this process started the previous cycle of the target (None
        after a start or takeover). Gaps are judged on it when known, so a step of the wall clock is not
        recorded as time the daemon was not running."""
        contract = self._contracts[target.contract]
        cluster = self.config.cluster
        cycles = cycle_records(target, outcome, cluster.node if cluster else None, cluster.site if cluster else None)
        # a site's view of a multi-site target (monitor.cluster.consensus) opens no ticket
        state, outages, events = transition_records(target, outcome.transitions, live, outcome.started,
                                                    tickets=target.id not in self.site_units)
        batch.cycles.extend(cycles)
        batch.states[target.id] = state
        batch.outages.extend(outages)

        started = outcome.started
        since = elapsed if elapsed is not None else (None if previous_cycle is None else started - previous_cycle)
        if previous_cycle is not None and since is not None and since > GAP_FACTOR * target.interval:
            start = max(previous_cycle + target.interval, started - since + target.interval)
            batch.unknown.append(UnknownRecord(target.id, start, started,
                                               "no probe cycles (daemon not running or overloaded)"))
        if outcome.verdict == "unknown":
            reason = next((r.reason for r in outcome.results if r.reason), None) or "no evidence"
            batch.unknown.append(UnknownRecord(target.id, started, started + target.interval, reason))
            said = self._said_unknown.get(target.id)
            if said is None or started - said[0] >= UNKNOWN_LOG_EVERY or said[1] != reason:
                self._said_unknown[target.id] = (started, reason)  # once per reason, then every 10 minutes
                log.warning("%s: no evidence this cycle (recorded as unknown time): %s", target.id, reason)

        batch.events.extend(live.take_events())
        batch.events.extend(events)

        window = self.calendar.window_at(target, to_ms(started))
        in_maint = window is not None
        samples = cycle_samples(outcome.results)
        figures = cycle_figures(contract, target, outcome.verdict, samples, started, window)
        live.observe_voice(figures.voice, in_maint, started, samples, contract.voice, target.interval)

        hour = int(started // 3600 * 3600)
        batch.hourly[(target.id, hour)] = self._accumulate(self._hourly, target.id, hour, figures)
        label = month_of(to_ms(started), contract.timezone).label
        batch.monthly[(target.id, label)] = self._accumulate(self._monthly, target.id, label, figures)

    @staticmethod
    def _accumulate(current: dict, target: str, period: Any, figures: CycleFigures) -> Rollup:
        """Add a cycle to the target's rollup of ``period``; when a new hour or month starts for the target, its
        previous one is dropped from memory (already written, as every snapshot is)."""
        held = current.get(target)
        if held is None or held[0] != period:
            held = current[target] = (period, Rollup())
        held[1].add(figures)
        return held[1]
