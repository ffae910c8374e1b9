"""Live SLA evaluation: month-to-date figures, rolling windows, burn-rate and breach events.

:func:`evaluate_target` is pure (intervals + explicit clock in, figures and
events out). :class:`SlaEvaluator` loads the intervals from the store for the
daemon's periodic evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.config import Config, Contract, Target
from monitor.events import BreachEvent, budget_burn_event, monthly_breach_event
from monitor.sla.intervals import Interval
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.periods import ROLLING_WINDOWS, month_of, to_ms
from monitor.units import format_duration
from monitor.exact import percent_ratio
from monitor.sla.timeline import coverage_gaps, outage_intervals, unknown_intervals
from monitor.sla.availability import BURN_WINDOWS, MonthToDate, availability, burn_rate, month_to_date

__all__ = ["TargetSla", "evaluate_target", "SlaEvaluator"]

_LOOKBACK_MS = 31 * 86_400_000  # enough for the 30 d rolling window and the 3 d burn window
#: a burn-rate alert needs at least this share of its long window to be known (not unknown or
#: maintenance): 20 s of data after a start are no evidence of a burn over an hour
MIN_KNOWN_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class TargetSla:
    """A target's SLA figures now: month to date, rolling windows and burn rates."""

    target: str
    contract: str
    month: str
    objective_ratio: float
    mtd: MonthToDate
    rolling: dict[str, float | None] = field(default_factory=dict)  # window -> availability ratio
    burn_rates: dict[str, float | None] = field(default_factory=dict)  # "1h" .. -> burn rate


def evaluate_target(target: Target, contract: Contract, now_ms: int, down: list[Interval], unknown: list[Interval],
                    maintenance: list[Interval], windows: bool = True) -> tuple[TargetSla, list[BreachEvent]]:
    """The target's month to date, and with ``windows`` its rolling windows, burn rates and breach events."""
    period = month_of(now_ms, contract.timezone)
    objective = contract.objectives.availability
    policy = contract.unknown_time
    mtd = month_to_date((period.start_ms, period.end_ms), now_ms, down, unknown, maintenance, objective, policy,
                        projection=windows)
    if not windows:
        return TargetSla(target.id, contract.id, period.label, percent_ratio(objective), mtd), []
    rolling = {}
    for name, seconds in ROLLING_WINDOWS.items():
        a = availability((now_ms - seconds * 1000, now_ms), down, unknown, maintenance, policy)
        rolling[name] = None if a.ratio is None else float(a.ratio)
    rates: dict[str, float | None] = {}
    events: list[BreachEvent] = []
    for severity, long_s, short_s, threshold in BURN_WINDOWS:
        long_rate = burn_rate(now_ms, long_s, down, unknown, maintenance, objective, policy)
        short_rate = burn_rate(now_ms, short_s, down, unknown, maintenance, objective, policy)
        rates[format_duration(long_s)] = long_rate
        rates[format_duration(short_s)] = short_rate
        known = availability((now_ms - long_s * 1000, now_ms), down, unknown, maintenance, "exclude").eligible_ms
        enough = known >= MIN_KNOWN_SHARE * long_s * 1000
        if enough and long_rate is not None and short_rate is not None and long_rate >= threshold and short_rate >= threshold:
            events.append(budget_burn_event(contract.id, target.id, period.label, severity, long_s, long_rate, now_ms / 1000))
    if mtd.breached:
        events.append(monthly_breach_event(
            contract.id, target.id, period.label, "availability", now_ms / 1000,
            {"budget_s": mtd.budget_ms / 1000, "downtime_s": mtd.used_ms / 1000,
             "objective_pct": str(objective)},
        ))
    sla = TargetSla(target.id, contract.id, period.label, percent_ratio(objective), mtd, rolling, rates)
    return sla, events


class SlaEvaluator:
    """Loads a target's recent intervals from the store and evaluates every target."""

    def __init__(self, config: Config, store, calendar: MaintenanceCalendar | None = None):
        self.config = config
        self.store = store
        self.contracts = {c.id: c for c in config.contracts}
        #: the config's maintenance, expanded once per month (shared with ingestion by the daemon)
        self.calendar = calendar or MaintenanceCalendar(config)

    def evaluate(self, now: float, coverage: dict[str, tuple[float | None, float | None]],
                 windows: bool = True) -> tuple[dict[str, TargetSla], list[BreachEvent]]:
        """``coverage``: target -> (first cycle, last cycle) as the daemon knows them. Without ``windows`` only
        the month to date (what ``slawatch status`` shows), no rolling windows, burn rates or events."""
        now_ms = to_ms(now)
        lo = now_ms - _LOOKBACK_MS
        lo = min(lo, min((month_of(now_ms, c.timezone).start_ms for c in self.config.contracts), default=lo))
        # a config scoped to one contract (a portal page) reads that contract's outages only
        only = self.config.contracts[0].id if len(self.config.contracts) == 1 else None
        down, _ = outage_intervals(self.store.outages_between(lo / 1000, now, only), now_ms)
        unknown = unknown_intervals(self.store.unknown_intervals(None, lo / 1000, now))
        ahead = now_ms + 40 * 86_400_000  # the rest of the month: its maintenance is known in advance
        results: dict[str, TargetSla] = {}
        events: list[BreachEvent] = []
        for target in self.config.targets:
            contract = self.contracts[target.contract]
            maint = self.calendar.intervals(target, lo, ahead)
            first, last = coverage.get(target.id, (None, None))
            gaps = unknown.get(target.id, []) + coverage_gaps(first, last, target.interval, lo, now_ms)
            sla, evs = evaluate_target(target, contract, now_ms, down.get(target.id, []), gaps, maint, windows)
            results[target.id] = sla
            events.extend(evs)
        return results, events
