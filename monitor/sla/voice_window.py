"""Windowed voice quality: the E-model over the last 5 minutes or hour, from the window's pooled figures.

A 50-packet train can only show 0, 2, 4 or 6 % loss, so the MOS of a single cycle on a line with 1 % loss
swings between about 1.9 and 4.4. Over a window, the loss is pooled (packets lost over packets sent, in the
cycles that got a reply: the one loss definition of :mod:`monitor.sla.rollup`), the delay is the mean of the
cycles' median RTT and the jitter the mean of their jitter; one R-factor and MOS come from those (ITU-T G.107
through :func:`monitor.sla.emodel.voice_quality`, with the contract's codec settings).
"""

from __future__ import annotations

import bisect
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
    """The last hour of a voice target's answered cycles (outside maintenance), held in parallel arrays: 44 bytes a
    cycle where an object per cycle took 153 (measured with tracemalloc). A window fills for its first hour by
    design: at 1,000 voice targets and 30 s, 5.3 MB for the hour, not 18 MB."""

    __slots__ = ("span", "_at", "_sent", "_received", "_rtt", "_jitter", "_start")

    def __init__(self, span: float = max(WINDOWS.values())):
        self.span = span
        self._at, self._rtt, self._jitter = array("d"), array("d"), array("d")
        self._sent, self._received = array("l"), array("l")
        self._start = 0  # the first cycle still in the window (the arrays are compacted when half is stale)

    def add(self, at: float, sent: int, received: int, rtt_median: float, jitter: float | None) -> None:
        if sent <= 0 or received <= 0:
            return  # an unanswered cycle is availability's business, not quality's
        if self._at and at < self._at[-1]:
            at = self._at[-1]  # the wall clock stepped back: the window stays in time order
        self._at.append(at)
        self._sent.append(sent)
        self._received.append(received)
        self._rtt.append(rtt_median)
        self._jitter.append(jitter or 0.0)
        oldest = at - self.span
        while self._start < len(self._at) and self._at[self._start] < oldest:
            self._start += 1
        if self._start and self._start * 2 >= len(self._at):
            for column in (self._at, self._sent, self._received, self._rtt, self._jitter):
                del column[: self._start]
            self._start = 0

    def __len__(self) -> int:
        return len(self._at) - self._start

    def quality(self, now: float, window: float, voice: Any):
        """The pooled E-model over the cycles of the last ``window`` seconds (None when there are none)."""
        first = bisect.bisect_right(self._at, now - window, self._start)
        n = len(self._at) - first
        if n <= 0:
            return None
        sent = sum(self._sent[first:])
        received = sum(self._received[first:])
        return pooled_quality(sent, received, sum(self._rtt[first:]) / n, sum(self._jitter[first:]) / n, voice)
