"""Hourly and monthly rollups, accumulated in memory at ingestion and written with the cycles.

A rollup holds what the monthly figures need, so a month report never reads
raw cycles: cycle counts by verdict, packets sent and received, an RTT sketch
and a jitter sketch, and the voice figures (MOS sum, minimum, cycles below
objective, cycles meeting delay, jitter and loss). Cycles inside a
maintenance window count only in ``maintenance``; they are left out of the
quality figures.

The in-memory accumulator of the current hour and month is the state; each
flush writes a snapshot of it (overwrite, no read-modify-write). On restart
the snapshots are loaded back, so nothing already rolled up is recomputed.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from .sketch import RttSketch

__all__ = ["Rollup", "VoiceSample"]


@dataclass(slots=True)
class VoiceSample:
    mos: float
    one_way_delay_ms: float
    below_mos: bool
    delay_ok: bool
    jitter_ok: bool
    loss_ok: bool


_COUNTS = struct.Struct("<9I3d")  # cycles good bad unknown maintenance sent received mos_count mos_below, mos_sum mos_min jitter_max
_VOICE = struct.Struct("<3I")  # delay_ok jitter_ok loss_ok


@dataclass(slots=True)
class Rollup:
    cycles: int = 0
    good: int = 0
    bad: int = 0
    unknown: int = 0
    maintenance: int = 0
    sent: int = 0
    received: int = 0
    rtt: RttSketch = field(default_factory=RttSketch)
    jitter: RttSketch = field(default_factory=RttSketch)
    jitter_max: float = 0.0
    mos_count: int = 0
    mos_sum: float = 0.0
    mos_min: float = math.inf
    mos_below: int = 0
    delay_ok: int = 0
    jitter_ok: int = 0
    loss_ok: int = 0

    def add_cycle(self, verdict: str, in_maintenance: bool, sent: int | None, received: int | None,
                  rtts: list[float], jitter: float | None, voice: VoiceSample | None) -> None:
        self.cycles += 1
        if in_maintenance:
            self.maintenance += 1
            return
        if verdict == "good":
            self.good += 1
        elif verdict == "bad":
            self.bad += 1
        else:
            self.unknown += 1
        if sent:
            self.sent += sent
            self.received += received or 0
        for r in rtts:
            self.rtt.add(r)
        if jitter is not None:
            self.jitter.add(jitter)
            self.jitter_max = max(self.jitter_max, jitter)
        if voice is not None:
            self.mos_count += 1
            self.mos_sum += voice.mos
            self.mos_min = min(self.mos_min, voice.mos)
            self.mos_below += voice.below_mos
            self.delay_ok += voice.delay_ok
            self.jitter_ok += voice.jitter_ok
            self.loss_ok += voice.loss_ok

    def merge(self, other: "Rollup") -> None:
        for name in ("cycles", "good", "bad", "unknown", "maintenance", "sent", "received", "mos_count",
                     "mos_sum", "mos_below", "delay_ok", "jitter_ok", "loss_ok"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rtt.merge(other.rtt)
        self.jitter.merge(other.jitter)
        self.jitter_max = max(self.jitter_max, other.jitter_max)
        self.mos_min = min(self.mos_min, other.mos_min)

    @property
    def loss(self) -> float | None:
        return None if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def mos_mean(self) -> float | None:
        return self.mos_sum / self.mos_count if self.mos_count else None

    # -- encoding: three compact blobs -------------------------------------------------
    def counts_blob(self) -> bytes:
        return _COUNTS.pack(self.cycles, self.good, self.bad, self.unknown, self.maintenance, self.sent,
                            self.received, self.mos_count, self.mos_below, self.mos_sum,
                            self.mos_min if self.mos_count else 0.0, self.jitter_max) + _VOICE.pack(
            self.delay_ok, self.jitter_ok, self.loss_ok)

    @classmethod
    def decode(cls, counts: bytes, rtt: bytes, jitter: bytes) -> "Rollup":
        r = cls()
        (r.cycles, r.good, r.bad, r.unknown, r.maintenance, r.sent, r.received, r.mos_count, r.mos_below,
         r.mos_sum, mos_min, r.jitter_max) = _COUNTS.unpack_from(counts)
        r.delay_ok, r.jitter_ok, r.loss_ok = _VOICE.unpack_from(counts, _COUNTS.size)
        r.mos_min = mos_min if r.mos_count else math.inf
        r.rtt = RttSketch.from_bytes(rtt)
        r.jitter = RttSketch.from_bytes(jitter)
        return r
