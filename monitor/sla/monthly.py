"""A calendar month's figures for every contract and target.

:func:`load_month` reads what the month needs from the store (outages,
unknown intervals, monthly rollups, target state). :func:`compute_month` is
pure: config + those inputs + an explicit ``now`` -> figures. Raw cycles are
never read.

Rules beyond :mod:`monitor.sla.availability`:

* Time before a target's first cycle, and after its last cycle (up to
  ``now``), is unknown: no evidence is no evidence.
* Outage count, MTTR and longest outage count each outage's downtime that counts: an outage
  wholly inside maintenance is not an outage of the month, and one that crosses a window edge
  counts the part outside it.
* In-service dates (``in_service``/``out_of_service`` on the contract or the target): time outside them
  is taken out of the period like maintenance, so it is neither unknown nor downtime; it is reported
  apart (``out_of_service``).
* A contract's availability combines its targets time-weighted: the sum of
  their eligible time and of their downtime.
* Latency: the objective's percentile of every RTT of the month (from the
  sketch, within 0.5 %). Loss: packets lost / sent in the cycles that got a reply (an outage is
  availability's business; see :mod:`monitor.sla.rollup`). Jitter: the mean of the
  per-cycle IPDV jitter. MOS: the mean of the per-cycle E-model MOS. Cycles
  inside maintenance windows are left out of all four.
* A target probed from several sites (``vantage``) takes its outages and unknown time from the sites'
  consensus (:mod:`monitor.cluster.consensus`) and its cycle and quality figures from every site's cycles.
* Maintenance is the windows configured at report time, for availability and for the cycle figures alike:
  a month whose rollup was judged by other windows (a window added or removed after the fact) is rebuilt
  (:mod:`monitor.sla.reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from monitor.config import Config, Contract, Target
from monitor.sla.intervals import Interval, clip, intersect, normalize, total
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.periods import Period, local_to_ms, parse_month, to_ms
from monitor.config.sites import multi_site, unit_id
from monitor.sla.reconcile import Reconciled, needs_rebuild, rebuild
from monitor.sla.rollup import Rollup
from monitor.sla.timeline import coverage_gaps, outage_intervals, unknown_intervals
from monitor.store.base import OutageRecord
from monitor.sla.availability import Availability, availability
from monitor.exact import at_least, at_most

__all__ = ["MonthInputs", "TargetMonth", "ContractMonth", "load_month", "compute_month"]


@dataclass(slots=True)
class MonthInputs:
    """What a month's figures are computed from, read from the store once."""

    month: str
    down: dict[str, list[Interval]] = field(default_factory=dict)
    degraded: dict[str, list[Interval]] = field(default_factory=dict)
    unknown: dict[str, list[Interval]] = field(default_factory=dict)
    rollups: dict[str, Rollup] = field(default_factory=dict)
    first_cycle: dict[str, float] = field(default_factory=dict)
    last_cycle: dict[str, float] = field(default_factory=dict)
    #: target-months rebuilt because their maintenance windows changed after ingestion (monitor.sla.reconcile)
    reconciled: dict[str, Reconciled] = field(default_factory=dict)
    #: the outage records read (the widest period over all zones), for the report's evidence
    records: list[OutageRecord] = field(default_factory=list)


@dataclass(slots=True)
class TargetMonth:
    """One target's month: availability, coverage, outages, rollup and objective figures."""

    target: str
    contract: str
    kind: str
    period: Period
    availability: Availability
    outages: list[Interval]
    rollup: Rollup
    objectives: dict[str, dict[str, Any]]
    #: time outside the service dates (included in ``availability.maintenance_ms``, shown apart)
    out_of_service_ms: int = 0
    #: the exact intervals the figures were computed from (for per-day breakdowns of the same month)
    down: list[Interval] = field(default_factory=list)
    unknown: list[Interval] = field(default_factory=list)
    maintenance: list[Interval] = field(default_factory=list)
    reconciled: Reconciled | None = None

    @property
    def maintenance_only_ms(self) -> int:
        """Scheduled maintenance alone, without the time outside the service dates."""
        return self.availability.maintenance_ms - self.out_of_service_ms

    @property
    def coverage(self) -> Fraction | None:
        """The measured share of the time outside maintenance: unknown time (no evidence, the future,
        before the first cycle) is what is not measured. None when all of it is maintenance."""
        a = self.availability
        base = a.period_ms - a.maintenance_ms
        return None if base <= 0 else Fraction(base - a.unknown_ms, base)

    @property
    def counted_outages(self) -> list[int]:
        """Each outage's downtime that counts (outside maintenance, and outside unknown time when that is
        excluded), in ms; outages with none (wholly inside maintenance) are left out."""
        counted = list(self.availability.downtime)
        out = []
        for o in self.outages:
            ms = total(intersect([o], counted))
            if ms > 0:
                out.append(ms)
        return out

    @property
    def outage_count(self) -> int:
        """How many outages had downtime that counts."""
        return len(self.counted_outages)

    @property
    def mttr_s(self) -> float | None:
        """Mean time to repair: the mean counted downtime per outage, in seconds (None without outages)."""
        counted = self.counted_outages
        return sum(counted) / len(counted) / 1000 if counted else None

    @property
    def longest_outage_s(self) -> float | None:
        """The longest counted downtime of one outage, in seconds (None without outages)."""
        counted = self.counted_outages
        return max(counted) / 1000 if counted else None


@dataclass(slots=True)
class ContractMonth:
    """A contract's month: its targets combined, with coverage and credit inputs."""

    contract: str
    period: Period
    targets: list[TargetMonth]
    eligible_ms: int
    downtime_ms: int
    objective_pct: Decimal

    @property
    def ratio(self) -> Fraction | None:
        """The contract's availability over its targets, time-weighted and exact (None when nothing counts)."""
        return None if self.eligible_ms <= 0 else Fraction(self.eligible_ms - self.downtime_ms, self.eligible_ms)

    @property
    def met(self) -> bool | None:
        """Whether the contract's availability meets its objective, compared exactly (None when nothing counts)."""
        r = self.ratio
        return None if r is None else at_least(r * 100, self.objective_pct)

    @property
    def coverage(self) -> Fraction | None:
        """The targets' measured time over their time outside maintenance, combined."""
        base = sum(t.availability.period_ms - t.availability.maintenance_ms for t in self.targets)
        unknown = sum(t.availability.unknown_ms for t in self.targets)
        return None if base <= 0 else Fraction(base - unknown, base)


def load_month(store, config: Config, month: str, calendar: MaintenanceCalendar | None = None) -> MonthInputs:
    """Read the month's inputs for every target in the config (the widest period over all zones)."""
    calendar = calendar or MaintenanceCalendar(config)
    periods = [parse_month(month, c.timezone) for c in config.contracts] or [parse_month(month, "UTC")]
    lo = min(p.start_ms for p in periods) / 1000
    hi = max(p.end_ms for p in periods) / 1000
    inputs = MonthInputs(month)
    # a config scoped to one contract (a portal download) reads that contract's records only
    only = config.contracts[0].id if len(config.contracts) == 1 else None
    units = None if only is None else [u for t in config.targets
                                       for u in [t.id, *(unit_id(t.id, s) for s in (t.vantage.sites if t.vantage else ()))]]
    inputs.records = store.outages_between(lo, hi, only)
    inputs.down, inputs.degraded = outage_intervals(inputs.records, 2**62)  # open: clipped to the period later
    inputs.unknown = unknown_intervals(store.unknown_intervals(None, lo, hi))
    if units is None:
        inputs.rollups = {t: Rollup.stored(r) for t, r in store.monthly_rollups(month).items()}
    else:
        inputs.rollups = {t: Rollup.stored(r) for t, r in store.monthly_rollups(month, targets=units).items()}
    by_contract = config.by_contract()
    for contract in config.contracts:  # maintenance changed after the fact: rebuild those months
        period = parse_month(month, contract.timezone)
        for target in by_contract.get(contract.id, ()):
            rollup = inputs.rollups.get(target.id)
            if rollup is None:
                continue
            windows = calendar.intervals(target, period.start_ms, period.end_ms)
            if needs_rebuild(rollup, windows):
                inputs.rollups[target.id], inputs.reconciled[target.id] = rebuild(
                    store, contract, target, period.start_ms, period.end_ms, windows)
    for target in multi_site(config.targets):  # the cycles of every site's view (monitor.cluster.consensus)
        merged = None
        for site in target.vantage.sites:
            part = inputs.rollups.get(unit_id(target.id, site))
            if part is not None:
                merged = part if merged is None else _merged(merged, part)
        if merged is not None:
            inputs.rollups[target.id] = merged
    for name, st in store.load_states(units).items():
        if st.tracker.get("first_cycle") is not None:
            inputs.first_cycle[name] = st.tracker["first_cycle"]
        if st.tracker.get("last_cycle") is not None:
            inputs.last_cycle[name] = st.tracker["last_cycle"]
    return inputs


def _merged(a: Rollup, b: Rollup) -> Rollup:
    out = Rollup()
    out.merge(a)
    out.merge(b)
    return out


def _objective_figures(contract: Contract, target: Target, r: Rollup, avail: Availability) -> dict[str, dict[str, Any]]:
    obj = contract.objectives
    out: dict[str, dict[str, Any]] = {
        "availability": {"target_pct": obj.availability, "value_pct": avail.percent(), "met": avail.met(obj.availability)}
    }
    if obj.latency is not None:
        value = r.rtt.quantile(obj.latency.percentile / 100)
        out["latency"] = {"percentile": obj.latency.percentile, "target_s": obj.latency.max, "value_s": value,
                          "met": None if value is None else at_most(value, obj.latency.max)}
    if obj.response_time is not None or r.response.count:
        rt = obj.response_time
        value = r.response.quantile((rt.percentile if rt else 95.0) / 100)
        out["response_time"] = {"percentile": rt.percentile if rt else 95.0, "target_s": rt.max if rt else None,
                                "value_s": value, "samples": r.response.count,
                                "met": None if value is None or rt is None else at_most(value, rt.max)}
    if obj.loss is not None:
        loss = r.loss_fraction  # packets of the cycles that got a reply: the one definition (monitor.sla.rollup)
        out["loss"] = {"target_pct": obj.loss, "value_pct": None if loss is None else float(loss * 100),
                       "met": None if loss is None else at_most(loss * 100, obj.loss), "basis": r.loss_basis}
    if obj.jitter is not None:
        value = r.jitter_mean
        out["jitter"] = {"target_s": obj.jitter, "value_s": value, "met": None if value is None else at_most(value, obj.jitter)}
    if target.kind == "voice":
        n = r.mos_count
        value = r.mos_mean
        pooled = None
        loss = r.loss_fraction
        median = r.rtt.quantile(0.5)
        if loss is not None and median is not None and r.answered_sent:
            from monitor.sla.voice_window import pooled_quality

            pooled = pooled_quality(r.answered_sent, r.answered_received or 0, median, r.jitter_mean or 0.0,
                                    contract.voice)
        out["voice"] = {
            "mos_target": obj.mos, "mos_mean": value, "mos_min": r.mos_min if n else None,
            # the month's pooled loss, median RTT and mean jitter through the E-model: one figure for the month
            "mos_pooled": None if pooled is None else pooled.mos, "r_pooled": None if pooled is None else pooled.r,
            "share_below_mos": r.mos_below / n if n else None,
            "share_time_below_mos": r.mos_below / n if n else None,  # cycles are evenly spaced: share of time
            "share_meeting_delay": r.delay_ok / n if n else None,
            "share_meeting_jitter": r.jitter_ok / n if n else None,
            "share_meeting_loss": r.loss_ok / n if n else None,
            "met": None if value is None or obj.mos is None else at_least(value, obj.mos),
        }
    return out


def _when(value: Any, tz: str) -> int:
    return to_ms(value.timestamp()) if value.tzinfo else local_to_ms(value, tz)


def out_of_service(contract: Contract, target: Target, lo: int, hi: int) -> list[Interval]:
    """The parts of [lo, hi) outside the target's service dates (the contract's narrowed by the target's)."""
    starts = [_when(v, contract.timezone) for v in (contract.in_service, target.in_service) if v is not None]
    ends = [_when(v, contract.timezone) for v in (contract.out_of_service, target.out_of_service) if v is not None]
    out = []
    if starts and max(starts) > lo:
        out.append((lo, min(max(starts), hi)))
    if ends and min(ends) < hi:
        out.append((max(min(ends), lo), hi))
    return normalize([(s, e) for s, e in out if e > s])


def compute_month(config: Config, inputs: MonthInputs, now_ms: int,
                  calendar: MaintenanceCalendar | None = None) -> list[ContractMonth]:
    """Figures for every contract of ``config`` for ``inputs.month``, as known at ``now_ms``."""
    calendar = calendar or MaintenanceCalendar(config)
    out: list[ContractMonth] = []
    by_contract = config.by_contract()
    for contract in config.contracts:
        period = parse_month(inputs.month, contract.timezone)
        lo, hi = period.start_ms, period.end_ms
        horizon = min(hi, now_ms)
        months: list[TargetMonth] = []
        eligible = downtime = 0
        for target in by_contract.get(contract.id, []):
            maint = calendar.intervals(target, lo, hi)
            off = out_of_service(contract, target, lo, hi)
            if off:  # outside the service dates: neither unknown nor downtime, taken out of the period
                maint = normalize(maint + off)
            unknown = inputs.unknown.get(target.id, []) + coverage_gaps(
                inputs.first_cycle.get(target.id), inputs.last_cycle.get(target.id), target.interval, lo, horizon)
            down = inputs.down.get(target.id, [])
            # a month still running is figured up to now: the rest of it is not time without evidence (nor, under
            # unknown_time: downtime, downtime), it has not happened yet; a month not begun has no time at all
            avail = availability((lo, max(lo, horizon)), down, unknown, maint, contract.unknown_time)
            rollup = inputs.rollups.get(target.id) or Rollup()
            months.append(TargetMonth(
                target=target.id, contract=contract.id, kind=target.kind, period=period, availability=avail,
                out_of_service_ms=total(clip(off, lo, hi)),
                outages=clip(normalize(down), lo, hi), rollup=rollup,
                objectives=_objective_figures(contract, target, rollup, avail),
                down=down, unknown=unknown, maintenance=maint, reconciled=inputs.reconciled.get(target.id),
            ))
            eligible += avail.eligible_ms
            downtime += avail.downtime_ms
        out.append(ContractMonth(contract.id, period, months, eligible, downtime, contract.objectives.availability))
    return out
