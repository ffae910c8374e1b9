"""Windowed voice quality: the E-model over the last 5 minutes or hour, from the window's pooled figures.

A 50-packet train can only show 0, 2, 4 or 6 % loss, so the MOS of a single cycle on a line with 1 % loss
swings between about 1.9 and 4.4. Over a window, the loss is pooled (packets lost over packets sent, in the
cycles that got a reply: the one loss definition of :mod:`monitor.sla.rollup`), the delay is the mean of the
cycles' median RTT and the jitter the mean of their jitter; one R-factor and MOS come from those (ITU-T G.107
through :func:`monitor.sla.emodel.voice_quality`, with the contract's codec settings).
"""

from __future__ import annotations

from array import array
from typing import Any

from monitor.sla.emodel import voice_quality

__all__ = ["VoiceWindow", "WINDOWS", "pooled_quality"]

#: the windows exported, label -> seconds
WINDOWS = {"5m": 300.0, "1h": 3600.0}


def pooled_quality(sent: int, received: int, rtt_mean: float, jitter_mean: float, voice: Any):
    """The E-model for pooled figures with the contract's voice settings; None without packets."""
    if sent <= 0:
        return None
    return voice_quality(rtt_mean, jitter_mean, (sent - received) / sent, codec=voice.codec,
                         codec_delay_s=voice.codec_delay, jitter_buffer_factor=voice.jitter_buffer_factor,
                         advantage=voice.advantage)


class VoiceWindow:
    """The last hour of a voice target's answered cycles (outside maintenance), in parallel arrays used as a ring:
    44 bytes a cycle where an object per cycle took 153 (measured with tracemalloc). The ring is sized for the
    window at the target's interval when the first cycle arrives, so a window costs its full hour at once and then
    stays flat (issue #15: growth between minute 10 and 60 of a run); it doubles only when cycles arrive faster
    than the interval it was sized for (a reload that shortened the interval), never dropping a cycle still in the
    window."""

    __slots__ = ("span", "_at", "_sent", "_received", "_rtt", "_jitter", "_head", "_n")

    def __init__(self, span: float = max(WINDOWS.values()), interval: float = 30.0):
        self.span = span
        self._alloc(int(span // max(interval, 1e-3)) + 2)
        self._head = 0  # the physical slot of the oldest cycle
        self._n = 0

    def _alloc(self, capacity: int) -> None:
        zeros = bytes(8 * capacity)
        self._at, self._rtt, self._jitter = array("d", zeros), array("d", zeros), array("d", zeros)
        self._sent, self._received = array("q", zeros), array("q", zeros)

    @property
    def capacity(self) -> int:
        """How many cycles the ring holds before it grows."""
        return len(self._at)

    def _columns(self) -> tuple[array, ...]:
        return self._at, self._sent, self._received, self._rtt, self._jitter

    def _slot(self, i: int) -> int:
        """The physical slot of the i-th oldest cycle."""
        return (self._head + i) % len(self._at)

    def _grow(self) -> None:
        old = [self._ordered(column, 0) for column in self._columns()]
        self._alloc(2 * len(self._at))
        for column, values in zip(self._columns(), old):
            column[: len(values)] = values
        self._head = 0

    def _ordered(self, column: array, first: int) -> array:
        """The column's cycles from the ``first``-th oldest on, oldest first."""
        start, end = self._head + first, self._head + self._n
        cap = len(column)
        if end <= cap:
            return column[start:end]
        if start >= cap:
            return column[start - cap: end - cap]
        return column[start:] + column[: end - cap]

    def add(self, at: float, sent: int, received: int, rtt_median: float, jitter: float | None) -> None:
        """Add an answered cycle (an unanswered one is ignored) and forget the cycles older than the window."""
        if sent <= 0 or received <= 0:
            return  # an unanswered cycle is availability's business, not quality's
        if self._n:
            newest = self._at[self._slot(self._n - 1)]
            if at < newest:
                at = newest  # the wall clock stepped back: the window stays in time order
        oldest = at - self.span
        while self._n and self._at[self._head] < oldest:
            self._head = (self._head + 1) % len(self._at)
            self._n -= 1
        if self._n == len(self._at):
            self._grow()
        slot = self._slot(self._n)
        self._at[slot], self._sent[slot], self._received[slot] = at, sent, received
        self._rtt[slot], self._jitter[slot] = rtt_median, jitter or 0.0
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def _first_after(self, since: float) -> int:
        """The logical index of the oldest cycle later than ``since``."""
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            if self._at[self._slot(mid)] <= since:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def quality(self, now: float, window: float, voice: Any):
        """The pooled E-model over the cycles of the last ``window`` seconds (None when there are none)."""
        first = self._first_after(now - window)
        n = self._n - first
        if n <= 0:
            return None
        sent = sum(self._ordered(self._sent, first))
        received = sum(self._ordered(self._received, first))
        return pooled_quality(sent, received, sum(self._ordered(self._rtt, first)) / n,
                              sum(self._ordered(self._jitter, first)) / n, voice)
