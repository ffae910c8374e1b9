"""Business time for customer requests (issue #28): how much of [start, end) falls in a contract's support hours,
and when a target of business time is reached.

Pure: a :class:`SupportCalendar` (the contract's zone, its weekdays, opening and closing time, public holidays as
dates, or 24x7) and instants in integer ms in; integer ms out, exact. The local opening hours of each day are
turned into UTC instants with :func:`monitor.sla.periods.local_to_ms`, so a day across a DST change has its true
length (08:00-18:00 is 10 h on the day the clocks change at 02:00, and a window that includes the jump is an hour
shorter or longer). Pauses (a request waiting on the customer) are subtracted; the clock restarts after them.
The public holidays come from the ``holidays`` package (its per-country and per-subdivision calendars, e.g.
US-VT, CA-QC), resolved by the config for the years a figure needs; this module takes them as dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from monitor.sla.intervals import Interval, clip, normalize, subtract, total
from monitor.sla.periods import local_to_ms

__all__ = ["SupportCalendar", "business_ms", "business_seconds", "deadline", "windows", "calendar_for"]


@dataclass(frozen=True)
class SupportCalendar:
    """A contract's support hours: ``days`` are ISO weekdays (1 Monday .. 7 Sunday), [opens, closes) local time
    in ``timezone``; ``holidays(year)`` gives that year's public holidays; ``always`` is 24x7."""

    timezone: str
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    opens: time = time(8, 0)
    closes: time = time(18, 0)
    holidays: Callable[[int], frozenset[date]] = field(default=lambda year: frozenset())
    always: bool = False

    def is_open_on(self, day: date) -> bool:
        """Whether ``day`` (local) has support hours: a support weekday and no public holiday."""
        return day.isoweekday() in self.days and day not in self.holidays(day.year)


def windows(cal: SupportCalendar, start_ms: int, end_ms: int) -> list[Interval]:
    """The support hours overlapping [start_ms, end_ms), as UTC ms intervals."""
    if end_ms <= start_ms:
        return []
    if cal.always:
        return [(start_ms, end_ms)]
    zone = ZoneInfo(cal.timezone)
    day = datetime.fromtimestamp(start_ms / 1000, zone).date() - timedelta(days=1)  # a window may start the day before
    last = datetime.fromtimestamp(end_ms / 1000, zone).date()
    out: list[Interval] = []
    while day <= last:
        if cal.is_open_on(day):
            lo = local_to_ms(datetime.combine(day, cal.opens), cal.timezone)
            hi = local_to_ms(datetime.combine(day, cal.closes), cal.timezone)
            if hi > lo:
                out.append((lo, hi))
        day += timedelta(days=1)
    return clip(normalize(out), start_ms, end_ms)


def business_ms(cal: SupportCalendar, start_ms: int, end_ms: int, pauses: Sequence[Interval] = ()) -> int:
    """Support-hours ms in [start_ms, end_ms), less the ``pauses`` (a request stalled on the customer)."""
    return total(subtract(windows(cal, start_ms, end_ms), normalize(list(pauses))))


def business_seconds(cal: SupportCalendar, start_s: float, end_s: float,
                     pauses_s: Sequence[tuple[float, float]] = ()) -> float:
    """:func:`business_ms` for times in unix seconds (the store's), in seconds: a request's clock from its opening
    to ``end_s``, less its pauses."""
    def ms(t: float) -> int:
        return round(t * 1000)

    return business_ms(cal, ms(start_s), ms(end_s), [(ms(a), ms(b)) for a, b in pauses_s]) / 1000


#: how far ahead :func:`deadline` looks for support hours before it gives up (a calendar with none)
_HORIZON_MS = 400 * 86_400_000


def clock_verdict(cal: SupportCalendar, opened: float, stopped: float | None, pauses: Sequence[tuple[float, float]],
                  limit: float, until: float) -> tuple[float, bool | None]:
    """A request clock's business seconds and whether it met ``limit`` (the one rule, monitor.exact.at_most):
    decided when it stopped, missed once it runs past the limit by ``until`` (the latest time its request is
    known at: now, or the source's last successful read), None while it runs within it."""
    from monitor.exact import at_most

    spent = business_seconds(cal, opened, stopped if stopped is not None else max(opened, until), pauses)
    if stopped is None:
        return spent, (None if at_most(spent, limit) else False)
    return spent, at_most(spent, limit)


def deadline(cal: SupportCalendar, start_ms: int, target_ms: int, pauses: Sequence[Interval] = ()) -> int | None:
    """The instant at which ``target_ms`` of support hours (less pauses) have passed since ``start_ms``; None if
    the calendar has no support hours within 400 days (a target it can never reach)."""
    if target_ms <= 0:
        return start_ms
    left = target_ms
    step = 14 * 86_400_000
    lo = start_ms
    while lo < start_ms + _HORIZON_MS:
        for a, b in subtract(windows(cal, lo, lo + step), normalize(list(pauses))):
            if b - a >= left:
                return a + left
            left -= b - a
        lo += step
    return None


_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def calendar_for(contract, severity: str) -> SupportCalendar:
    """The support calendar of ``contract`` (monitor.config.models.Contract) for a request of ``severity``: its
    ``support_hours`` (24x7 without them, or for a severity they list under ``always``)."""
    hours = contract.support_hours
    if hours is None or severity in hours.always:
        return SupportCalendar(contract.timezone, always=True)
    holiday_source = hours.holidays

    def public_holidays(year: int) -> frozenset[date]:
        if holiday_source is None:
            return frozenset()
        return _public_holidays(holiday_source.country, holiday_source.subdiv, year)

    return SupportCalendar(hours.timezone or contract.timezone, frozenset(_WEEKDAYS[d] for d in hours.days),
                           time.fromisoformat(hours.opens), time.fromisoformat(hours.closes), public_holidays)


_CACHE: dict[tuple[str, str | None, int], frozenset[date]] = {}


def _public_holidays(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    key = (country, subdiv, year)
    if key not in _CACHE:
        import holidays

        _CACHE[key] = frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year))
    return _CACHE[key]
