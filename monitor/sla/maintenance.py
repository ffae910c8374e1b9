"""Expand maintenance windows (one-off, weekly, monthly, cron) into UTC millisecond intervals.

Start times are local wall times in the contract's time zone; a window lasts
``duration`` real seconds (a 2 h window across a DST change is still 2 h), or,
for weekly and monthly windows with ``until``, to that local time (02:00-04:00
stays 02:00-04:00 local across DST, 1 h or 3 h of real time that night).
A monthly window on a day the month lacks (e.g. the 31st) falls on the
month's last day.
"""

from __future__ import annotations

import bisect
import calendar
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from monitor.config.models import Config, Contract, MaintenanceWindow, Target
from monitor.sla.intervals import Interval, clip, normalize
from monitor.sla.periods import Period, local_to_ms, month_of, months_overlapping, to_ms

__all__ = ["expand_window", "expand_windows", "MaintenanceCalendar"]

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _at(day: datetime, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def expand_window(window: MaintenanceWindow, tz: str, lo_ms: int, hi_ms: int) -> list[Interval]:
    """The occurrences of ``window`` that overlap [lo_ms, hi_ms), clipped to it."""
    zone = ZoneInfo(tz)
    out: list[Interval] = []
    if window.start is not None:
        start = window.start
        start_ms = to_ms(start.timestamp()) if start.tzinfo else local_to_ms(start, tz)
        if window.end is not None:
            end = window.end
            end_ms = to_ms(end.timestamp()) if end.tzinfo else local_to_ms(end, tz)
        else:
            assert window.duration is not None  # the model requires end or duration
            end_ms = start_ms + int(round(window.duration * 1000))
        out.append((start_ms, end_ms))
    else:
        recurrence = window.weekly or window.monthly
        until = recurrence.until if recurrence is not None else None
        # a local end (until) can make a window up to a day long; reach back that far for one reaching into lo
        dur_ms = int(round(window.duration * 1000)) if window.duration is not None else 86_400_000

        def occurrence(day: datetime, at: str) -> Interval:
            start_ms = local_to_ms(_at(day, at), tz)
            if until is None or recurrence is None:
                return start_ms, start_ms + dur_ms
            end_day = day + timedelta(days=1) if recurrence.overnight else day
            return start_ms, local_to_ms(_at(end_day, until), tz)  # local end: 02:00-04:00 stays so across DST

        # local dates from a little before lo (a window may start before lo and reach into it)
        first = datetime.fromtimestamp((lo_ms - dur_ms) / 1000, zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
        last = datetime.fromtimestamp(hi_ms / 1000, zone).replace(tzinfo=None)
        if window.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            trigger = CronTrigger.from_crontab(window.cron, timezone=zone)
            prev = None
            now = datetime.fromtimestamp((lo_ms - dur_ms) / 1000, zone)
            while True:
                fire = trigger.get_next_fire_time(prev, now)
                if fire is None or to_ms(fire.timestamp()) >= hi_ms:
                    break
                out.append((to_ms(fire.timestamp()), to_ms(fire.timestamp()) + dur_ms))
                prev, now = fire, fire + timedelta(seconds=1)
        else:
            day = first
            while day <= last:
                if window.weekly is not None:
                    if _DAYS[day.weekday()] in window.weekly.days:
                        out.append(occurrence(day, window.weekly.at))
                elif window.monthly is not None:
                    last_day = calendar.monthrange(day.year, day.month)[1]
                    if day.day == min(window.monthly.day, last_day):
                        out.append(occurrence(day, window.monthly.at))
                day += timedelta(days=1)
    return [(max(s, lo_ms), min(e, hi_ms)) for s, e in out if e > lo_ms and s < hi_ms]


def expand_windows(windows: Iterable[MaintenanceWindow], tz: str, lo_ms: int, hi_ms: int) -> list[Interval]:
    """The maintenance windows' occurrences in [lo_ms, hi_ms) as UTC intervals (ms), in the contract's zone."""
    return normalize(i for w in windows for i in expand_window(w, tz, lo_ms, hi_ms))


class MaintenanceCalendar:
    """Every target's maintenance as configured (its contract's windows and its own), expanded once per calendar
    month of the contract's zone and shared: ingestion asks which window a cycle falls in, the evaluator and the
    monthly figures ask for a span's windows, and each month of each contract (and of each target with windows of
    its own) is expanded once, not once per caller, cycle or evaluation. Built from one config; a reload builds a
    new one. Holds the most recent ``keep`` expansions (a report over two years of months stays bounded)."""

    def __init__(self, config: Config, keep: int = 4096):
        self._contracts: dict[str, Contract] = {c.id: c for c in config.contracts}
        self._keep = keep
        self._months: OrderedDict[tuple[str, str], tuple[list[Interval], list[int]]] = OrderedDict()

    def _month(self, contract: Contract, target: Target, period: Period) -> tuple[list[Interval], list[int]]:
        """The windows of ``target`` in ``period`` (clipped to it), with their starts for bisecting."""
        own = bool(target.maintenance)
        key = (f"t:{target.id}" if own else f"c:{contract.id}", period.label)
        found = self._months.get(key)
        if found is not None:
            self._months.move_to_end(key)
            return found
        windows = [*contract.maintenance, *target.maintenance] if own else contract.maintenance
        expanded = expand_windows(windows, contract.timezone, period.start_ms, period.end_ms)
        found = (expanded, [s for s, _ in expanded])
        self._months[key] = found
        if len(self._months) > self._keep:
            self._months.popitem(last=False)
        return found

    def intervals(self, target: Target, lo_ms: int, hi_ms: int) -> list[Interval]:
        """The target's maintenance in [lo_ms, hi_ms), normalized (a window across a month boundary is one)."""
        contract = self._contracts[target.contract]
        if (not contract.maintenance and not target.maintenance) or hi_ms <= lo_ms:
            return []
        out: list[Interval] = []
        for period in months_overlapping(lo_ms, hi_ms, contract.timezone):
            out.extend(self._month(contract, target, period)[0])
        return clip(normalize(out), lo_ms, hi_ms)

    def window_at(self, target: Target, at_ms: int) -> Interval | None:
        """The window (of its month) that instant ``at_ms`` falls in, or None."""
        contract = self._contracts[target.contract]
        if not contract.maintenance and not target.maintenance:
            return None
        windows, starts = self._month(contract, target, month_of(at_ms, contract.timezone))
        i = bisect.bisect_right(starts, at_ms) - 1
        if i >= 0 and windows[i][0] <= at_ms < windows[i][1]:
            return windows[i]
        return None
