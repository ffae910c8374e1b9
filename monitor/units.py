"""Parsing and formatting of the units used in the config: durations and percentages."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

__all__ = ["parse_duration", "parse_percent", "format_duration"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*)+$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


#: the longest duration a config may give (rollup retention is the longest one a config needs)
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: object) -> float:
    """Parse ``30s``, ``250ms``, ``2h``, ``1h30m`` into seconds.

    A bare number is taken as seconds. Raises ValueError with a message fit
    for the config error list.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s")
    if isinstance(value, str):
        return _parse_duration_text(value)
    if isinstance(value, (int, float)):
        return _checked(float(value))
    raise ValueError("must be a duration like 30s")


@functools.lru_cache(maxsize=1024)
def _parse_duration_text(value: str) -> float:
    """The text form, cached: a config of 10,000 targets repeats a handful of durations 30,000 times."""
    if not _DURATION_RE.match(value):
        raise ValueError("must be a duration like 30s")
    return _checked(sum(float(n) * _UNITS[u] for n, u in _PART_RE.findall(value)))


def _checked(seconds: float) -> float:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("must be a finite duration like 30s")
    if seconds < 0:
        raise ValueError("must be a duration like 30s, not negative")
    if seconds > MAX_DURATION:
        raise ValueError("must be a duration of at most 10 years (3650d)")
    return seconds


def parse_percent(value: object, maximum: int = 100) -> Decimal:
    """Parse ``99.9%`` or ``99.9`` (or a number) into an exact Decimal percentage 0..``maximum``."""
    if isinstance(value, bool):
        raise ValueError("must be a percentage like 99.9%")
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1].strip()
    try:
        pct = Decimal(text)
    except InvalidOperation:
        raise ValueError("must be a percentage like 99.9%") from None
    if not pct.is_finite() or pct < 0 or pct > maximum:
        raise ValueError(f"must be a percentage between 0% and {maximum}%")
    return pct


def format_duration(seconds: float) -> str:
    """Human form: ``1d2h3m4s``, ``250ms``."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    out = []
    rest = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not out:
        out.append(f"{rest}s")
    return "".join(out)
