"""Windowed voice quality: the E-model over the last 5 minutes or hour, from the window's pooled figures.

A 50-packet train can only show 0, 2, 4 or 6 % loss, so the MOS of a single cycle on a line with 1 % loss
swings between about 1.9 and 4.4. Over a window, the loss is pooled (packets lost over packets sent, in the
cycles that got a reply: the one loss definition of :mod:`monitor.rollup`), the delay is the mean of the
cycles' median RTT and the jitter the mean of their jitter; one R-factor and MOS come from those (ITU-T G.107
through :func:`monitor.emodel.voice_quality`, with the contract's codec settings).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .emodel import voice_quality

__all__ = ["VoiceWindow", "WINDOWS", "pooled_quality"]

#: the windows exported, label -> seconds
WINDOWS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True, slots=True)
class _Cycle:
    at: float
    sent: int
    received: int
    rtt: float
    jitter: float


def pooled_quality(sent: int, received: int, rtt_mean: float, jitter_mean: float, voice: Any):
    """The E-model for pooled figures with the contract's voice settings; None without packets."""
    if sent <= 0:
        return None
    return voice_quality(rtt_mean, jitter_mean, (sent - received) / sent, codec=voice.codec,
                         codec_delay_s=voice.codec_delay, jitter_buffer_factor=voice.jitter_buffer_factor,
                         advantage=voice.advantage)


class VoiceWindow:
    """The last hour of a voice target's answered cycles (outside maintenance)."""

    def __init__(self, span: float = max(WINDOWS.values())):
        self.span = span
        self._cycles: deque[_Cycle] = deque()

    def add(self, at: float, sent: int, received: int, rtt_median: float, jitter: float | None) -> None:
        if sent <= 0 or received <= 0:
            return  # an unanswered cycle is availability's business, not quality's
        self._cycles.append(_Cycle(at, sent, received, rtt_median, jitter or 0.0))
        while self._cycles and self._cycles[0].at < at - self.span:
            self._cycles.popleft()

    def quality(self, now: float, window: float, voice: Any):
        """The pooled E-model over the cycles of the last ``window`` seconds (None when there are none)."""
        cycles = [c for c in self._cycles if c.at > now - window]
        if not cycles:
            return None
        sent = sum(c.sent for c in cycles)
        received = sum(c.received for c in cycles)
        return pooled_quality(sent, received, sum(c.rtt for c in cycles) / len(cycles),
                              sum(c.jitter for c in cycles) / len(cycles), voice)
