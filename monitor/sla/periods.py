"""Calendar periods in a contract's time zone, as exact UTC millisecond bounds.

A month runs from local midnight of its first day to local midnight of the
next month's first day, so DST months are an hour shorter or longer and the
length is always the true number of seconds. Where local midnight does not
exist (a DST jump at midnight), the month starts at the first instant that
does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["Period", "month_period", "month_of", "months_overlapping", "parse_month", "to_ms", "local_to_ms", "ROLLING_WINDOWS"]

#: rolling windows for dashboards, in seconds
ROLLING_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month in a time zone, as half-open UTC milliseconds."""

    label: str  # "2026-10"
    timezone: str
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        """The period's length in seconds."""
        return (self.end_ms - self.start_ms) / 1000

    @property
    def ms(self) -> int:
        """The period's length in milliseconds."""
        return self.end_ms - self.start_ms


def to_ms(ts: float) -> int:
    """Unix seconds (float) to integer milliseconds, rounded to the nearest."""
    return int(round(ts * 1000))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_ms(local: datetime, tz: str) -> int:
    """A naive local wall time in ``tz`` to UTC milliseconds.

    Ambiguous times (the repeated hour when DST ends) take the first
    occurrence; nonexistent times (the skipped hour) map to the instant of
    the jump, i.e. the first instant that exists."""
    zone = _zone(tz)
    aware = local.replace(tzinfo=zone, fold=0)
    ts = aware.timestamp()
    # a nonexistent time does not survive the round trip; the jump instant is then the answer
    back = datetime.fromtimestamp(ts, zone).replace(tzinfo=None)
    if back != local:
        later = local.replace(tzinfo=zone, fold=1).timestamp()
        ts = min(ts, later)
        # the transition instant: the earliest UTC instant whose local time is after `local`
        lo, hi = min(ts, later) - 7200, max(ts, later) + 7200
        while hi - lo > 0.0005:
            mid = (lo + hi) / 2
            if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= local:
                hi = mid
            else:
                lo = mid
        ts = hi
    return to_ms(ts)


@lru_cache(maxsize=4096)
def month_period(year: int, month: int, tz: str) -> Period:
    """The calendar month ``year``-``month`` in zone ``tz``."""
    start = local_to_ms(datetime(year, month, 1), tz)
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    end = local_to_ms(datetime(ny, nm, 1), tz)
    return Period(f"{year:04d}-{month:02d}", tz, start, end)


def parse_month(text: str, tz: str) -> Period:
    """The month ``YYYY-MM`` in zone ``tz``; a clear error for anything else."""
    m = re.match(r"^(\d{4})-(\d{2})$", text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month must be YYYY-MM (got {text!r})")
    return month_period(int(m.group(1)), int(m.group(2)), tz)


def month_of(ms: int, tz: str) -> Period:
    """The month that instant ``ms`` falls in, in zone ``tz``."""
    local = datetime.fromtimestamp(ms / 1000, _zone(tz))
    period = month_period(local.year, local.month, tz)
    # guard the rare case of an instant before a month start that the fold rule moved
    if ms < period.start_ms:
        y, mth = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
        period = month_period(y, mth, tz)
    return period


def months_overlapping(start_ms: int, end_ms: int, tz: str) -> list[Period]:
    """The months of zone ``tz`` that [start_ms, end_ms) touches."""
    out = []
    period = month_of(start_ms, tz)
    while period.start_ms < end_ms:
        out.append(period)
        local = datetime.fromtimestamp(period.end_ms / 1000, _zone(tz))
        period = month_period(local.year, local.month, tz)
    return out


def utc_label(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
