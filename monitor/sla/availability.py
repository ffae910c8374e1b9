"""The SLA engine: pure functions from intervals, an explicit period and an explicit clock to figures.

Time is in integer milliseconds, so every sum is exact. For one target and period:

* M, maintenance: scheduled windows inside the period.
* U, unknown: time without evidence (the daemon not running, probes unable to run),
  minus M.
* D, downtime: outage intervals minus M and minus U; unknown time never counts as up.
* Under ``unknown_time: exclude`` (the default) the excluded time is X = M + U and the
  downtime is D. Under ``unknown_time: downtime``, X = M and the downtime is D + U.

    availability = (P - X - downtime) / (P - X)

These are exact fractions: a report's numbers can be redone by hand.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from monitor.exact import at_least
from monitor.sla.intervals import Interval, clip, normalize, subtract, total, union

__all__ = [
    "Availability",
    "MonthToDate",
    "availability",
    "month_to_date",
    "burn_rate",
    "combine",
    "BURN_WINDOWS",
]

#: SRE-workbook multi-window, multi-burn-rate alerts: (severity, long window s, short window s, rate)
BURN_WINDOWS = (
    ("page", 3600, 300, 14.4),
    ("page", 6 * 3600, 1800, 6.0),
    ("ticket", 3 * 86400, 6 * 3600, 1.0),
)


@dataclass(frozen=True, slots=True)
class Availability:
    """A target's availability over a period: downtime, excluded time and the exact ratio."""

    start_ms: int
    end_ms: int
    maintenance_ms: int
    unknown_ms: int
    excluded_ms: int
    downtime_ms: int
    unknown_policy: str
    downtime: tuple[Interval, ...]  # the downtime intervals that count, for evidence

    @property
    def period_ms(self) -> int:
        """P: the period's length."""
        return self.end_ms - self.start_ms

    @property
    def eligible_ms(self) -> int:
        """P - X: the time that counts."""
        return self.period_ms - self.excluded_ms

    @property
    def ratio(self) -> Fraction | None:
        """Exact availability; None when nothing of the period counts."""
        if self.eligible_ms <= 0:
            return None
        return Fraction(self.eligible_ms - self.downtime_ms, self.eligible_ms)

    def percent(self, places: int = 6) -> Decimal | None:
        """Availability in percent, rounded to ``places`` decimals for display (None when nothing counts)."""
        r = self.ratio
        if r is None:
            return None
        return (Decimal(r.numerator) * 100 / Decimal(r.denominator)).quantize(Decimal(1).scaleb(-places))

    def met(self, objective_pct: Decimal) -> bool | None:
        """Whether the availability meets ``objective_pct``, compared exactly (None when nothing counts)."""
        r = self.ratio
        return None if r is None else at_least(r * 100, objective_pct)


def _split(period: Interval, down: list[Interval], unknown: list[Interval],
           maintenance: list[Interval]) -> tuple[list[Interval], list[Interval], list[Interval]]:
    lo, hi = period
    m = clip(normalize(maintenance), lo, hi)
    u = subtract(clip(normalize(unknown), lo, hi), m)
    d = subtract(subtract(clip(normalize(down), lo, hi), m), u)
    return m, u, d


def availability(period: Interval, down: list[Interval], unknown: list[Interval], maintenance: list[Interval],
                 unknown_policy: str = "exclude") -> Availability:
    """Availability of one target over ``period`` (ms, half open)."""
    if unknown_policy not in ("exclude", "downtime"):
        raise ValueError(f"unknown_policy must be exclude or downtime (got {unknown_policy!r})")
    if not down and not unknown and not maintenance:  # most targets most of the time: all of the period counts
        return Availability(period[0], period[1], 0, 0, 0, 0, unknown_policy, ())
    m, u, d = _split(period, down, unknown, maintenance)
    if unknown_policy == "exclude":
        excluded, downtime = total(m) + total(u), d
    else:
        excluded, downtime = total(m), union(d, u)
    return Availability(period[0], period[1], total(m), total(u), excluded, total(downtime), unknown_policy,
                        tuple(downtime))


def combine(parts: list[Availability]) -> tuple[int, int]:
    """(eligible ms, downtime ms) summed over parts: a partition's parts combine to the whole,
    and several targets combine time-weighted into a contract figure."""
    return sum(p.eligible_ms for p in parts), sum(p.downtime_ms for p in parts)


def burn_rate(now_ms: int, window_s: int, down: list[Interval], unknown: list[Interval],
              maintenance: list[Interval], objective_pct: Decimal, unknown_policy: str = "exclude") -> float | None:
    """Observed error ratio over the last ``window_s`` divided by the error budget ratio."""
    a = availability((now_ms - window_s * 1000, now_ms), down, unknown, maintenance, unknown_policy)
    budget = 1 - float(objective_pct) / 100
    if a.eligible_ms <= 0 or budget <= 0:
        return None
    return (a.downtime_ms / a.eligible_ms) / budget


@dataclass(frozen=True, slots=True)
class MonthToDate:
    """The month so far: availability, error budget used and left, projection and at-risk."""

    so_far: Availability
    objective_pct: Decimal
    budget_ms: int  # allowed downtime over the whole period, given the time that counts
    used_ms: int
    remaining_ms: int
    remaining_ratio: float | None
    burn_rate_1h: float | None
    projected_ratio: float | None
    at_risk: bool
    breached: bool  # the budget is spent: the objective cannot be met this period


@functools.lru_cache(maxsize=256)
def _budget_fraction(objective_pct: Decimal) -> Fraction:
    """The share of the period the objective allows down, exactly (the same few objectives for every target)."""
    return 1 - Fraction(objective_pct) / 100


def month_to_date(period: Interval, now_ms: int, down: list[Interval], unknown: list[Interval],
                  maintenance: list[Interval], objective_pct: Decimal, unknown_policy: str = "exclude",
                  projection_window_s: int = 86400, projection: bool = True) -> MonthToDate:
    """Live figures at ``now_ms`` inside ``period``. Scheduled maintenance of the rest of the
    period is known in advance and is excluded from the budget; unknown time only as it happened.
    The projection assumes the rest of the period runs at the error ratio of the last
    ``projection_window_s`` (one day by default). Without ``projection`` (``slawatch status``), the projection
    and the last hour's burn rate are left out (None), as they cost two more passes over the intervals."""
    lo, hi = period
    now_ms = min(max(now_ms, lo), hi)
    so_far = availability((lo, now_ms), down, unknown, maintenance, unknown_policy)
    future_maintenance = total(clip(normalize(maintenance), now_ms, hi))
    eligible_full = so_far.eligible_ms + (hi - now_ms) - future_maintenance
    budget_fraction = _budget_fraction(objective_pct)
    budget_ms = int(budget_fraction * eligible_full)
    used = so_far.downtime_ms
    remaining = budget_ms - used
    projected = None
    if projection and eligible_full > 0:
        recent = availability((max(lo, now_ms - projection_window_s * 1000), now_ms), down, unknown, maintenance,
                              unknown_policy)
        recent_ratio = recent.downtime_ms / recent.eligible_ms if recent.eligible_ms > 0 else 0.0
        remaining_eligible = (hi - now_ms) - future_maintenance
        projected = 1 - (used + recent_ratio * remaining_eligible) / eligible_full
    return MonthToDate(
        so_far=so_far,
        objective_pct=objective_pct,
        budget_ms=budget_ms,
        used_ms=used,
        remaining_ms=remaining,
        remaining_ratio=(remaining / budget_ms) if budget_ms > 0 else None,
        burn_rate_1h=burn_rate(now_ms, 3600, down, unknown, maintenance, objective_pct, unknown_policy)
        if projection else None,
        projected_ratio=projected,
        at_risk=projected is not None and projected * 100 < float(objective_pct),
        breached=used > budget_ms,
    )
