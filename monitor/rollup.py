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

from .sketch import RttSketch, read_varint, write_varint

__all__ = ["Rollup", "VoiceSample"]


@dataclass(slots=True)
class VoiceSample:
    """One cycle against the quality objectives; ``mos`` only for voice targets."""

    mos: float | None
    one_way_delay_ms: float
    below_mos: bool
    delay_ok: bool
    jitter_ok: bool
    loss_ok: bool
    latency_ok: bool = True
    r: float | None = None  # E-model R-factor (voice)


_INTS = ("cycles", "good", "bad", "unknown", "maintenance", "sent", "received", "jitter_count",
         "mos_count", "mos_below", "quality_count", "delay_ok", "jitter_ok", "loss_ok", "latency_ok")
_D2 = struct.Struct("<dd")
_HAS_JITTER, _HAS_VOICE = 1, 2


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
    jitter_count: int = 0
    jitter_sum: float = 0.0
    jitter_max: float = 0.0
    mos_count: int = 0
    mos_sum: float = 0.0
    mos_min: float = math.inf
    mos_below: int = 0
    quality_count: int = 0  # cycles with quality flags (reachable, outside maintenance)
    latency_ok: int = 0
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
            self.jitter_count += 1
            self.jitter_sum += jitter
            self.jitter_max = max(self.jitter_max, jitter)
        if voice is not None:
            self.quality_count += 1
            self.delay_ok += voice.delay_ok
            self.jitter_ok += voice.jitter_ok
            self.loss_ok += voice.loss_ok
            self.latency_ok += voice.latency_ok
            if voice.mos is not None:
                self.mos_count += 1
                self.mos_sum += voice.mos
                self.mos_min = min(self.mos_min, voice.mos)
                self.mos_below += voice.below_mos

    def merge(self, other: "Rollup") -> None:
        for name in (*_INTS, "mos_sum", "jitter_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rtt.merge(other.rtt)
        self.jitter_max = max(self.jitter_max, other.jitter_max)
        self.mos_min = min(self.mos_min, other.mos_min)

    @property
    def loss(self) -> float | None:
        return None if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def mos_mean(self) -> float | None:
        return self.mos_sum / self.mos_count if self.mos_count else None

    @property
    def jitter_mean(self) -> float | None:
        return self.jitter_sum / self.jitter_count if self.jitter_count else None

    # -- encoding: counts as varints, sums only where present, the sketch apart ------------
    def counts_blob(self) -> bytes:
        out = bytearray()
        flags = (_HAS_JITTER if self.jitter_count else 0) | (_HAS_VOICE if self.mos_count else 0)
        out.append(flags)
        for name in _INTS:
            write_varint(getattr(self, name), out)
        if flags & _HAS_JITTER:
            out += _D2.pack(self.jitter_sum, self.jitter_max)
        if flags & _HAS_VOICE:
            out += _D2.pack(self.mos_sum, self.mos_min)
        return bytes(out)

    @classmethod
    def decode(cls, counts: bytes, rtt: bytes) -> "Rollup":
        r = cls()
        flags, pos = counts[0], 1
        for name in _INTS:
            value, pos = read_varint(counts, pos)
            setattr(r, name, value)
        if flags & _HAS_JITTER:
            r.jitter_sum, r.jitter_max = _D2.unpack_from(counts, pos)
            pos += _D2.size
        if flags & _HAS_VOICE:
            r.mos_sum, r.mos_min = _D2.unpack_from(counts, pos)
        r.rtt = RttSketch.from_bytes(rtt)
        return r
