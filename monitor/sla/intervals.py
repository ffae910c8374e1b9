"""Exact interval arithmetic on half-open integer intervals [start, end) (milliseconds).

Every function takes and returns *normalized* lists: sorted, non-empty,
non-overlapping, non-adjacent intervals.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["Interval", "normalize", "union", "intersect", "subtract", "clip", "total"]

Interval = tuple[int, int]


def normalize(items: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching half-open intervals."""
    out: list[Interval] = []
    for start, end in sorted((s, e) for s, e in items if e > s):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def union(*lists: list[Interval]) -> list[Interval]:
    """The union of interval lists, normalized."""
    return normalize(i for lst in lists for i in lst)


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The intersection of two normalized interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if end > start:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """``a`` without ``b`` (both normalized)."""
    out: list[Interval] = []
    j = 0
    for start, end in a:
        cur = start
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            if cur >= end:
                break
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def clip(a: list[Interval], lo: int, hi: int) -> list[Interval]:
    """The parts of ``a`` inside [lo, hi)."""
    return intersect(a, [(lo, hi)]) if hi > lo else []


def total(a: list[Interval]) -> int:
    """The summed length of normalized intervals."""
    return sum(e - s for s, e in a)
