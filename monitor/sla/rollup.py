"""Hourly and monthly rollups, accumulated in memory at ingestion and written with the cycles.

A rollup holds what the monthly figures need, so a month report never reads
raw cycles: cycle counts by verdict, packets sent and received, an RTT sketch
and a jitter sketch, and the voice figures (MOS sum, minimum, cycles below
objective, cycles meeting delay, jitter and loss). Cycles inside a
maintenance window count only in ``maintenance``; they are left out of the
quality figures.

Loss has one definition: packets lost over packets sent in the cycles where the
circuit answered (at least one reply), outside maintenance. A cycle of an outage
is availability's business; counting its packets as lost too would count the
same failure twice towards the termination clause. The figure, its ``met``, the
loss credit (the share of those same cycles within the objective) and the
chronic count all use it. ``sent``/``received`` keep every packet, for
operations; ``answered_sent``/``answered_received`` hold the ones that count.
Rollups written before this rule have no such counters; their loss falls back
to every packet, and says so (``loss_basis``).

Each rollup also keeps the maintenance windows its cycles were judged by (``maint_windows``, the windows
in force at ingestion) and the span of its cycles (``first_ms``..``last_ms``). A report compares them with
the windows configured now: when maintenance was added or removed after the fact, the month is rebuilt
(see :mod:`monitor.sla.reconcile`), so cycle counts, quality figures and availability use the same windows.

The in-memory accumulator of the current hour and month is the state; each
flush writes a snapshot of it (overwrite, no read-modify-write). On restart
the snapshots are loaded back, so nothing already rolled up is recomputed.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from monitor.sla.intervals import normalize
from monitor.sla.sketch import RttSketch, read_varint, write_varint

if TYPE_CHECKING:
    from monitor.sla.cycles import CycleFigures
    from monitor.store.base import StoredRollup

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
_HAS_JITTER, _HAS_VOICE, _HAS_ANSWERED, _HAS_SPAN, _HAS_RESPONSE = 1, 2, 4, 8, 16


#: decimals of a mean figure (seconds: 1 ns, the probes' timestamp resolution)
MEAN_PLACES = 9


@dataclass(slots=True)
class Rollup:
    """An hour's or a month's accumulated cycles: counts, packets, RTT and response sketches, voice figures."""

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
    #: packets of the cycles that got at least one reply (None: a rollup from before the counters existed)
    answered_sent: int | None = 0
    answered_received: int | None = 0
    #: the span of the cycles (ms, their start times; None: no cycle yet, or a rollup from before spans)
    first_ms: int | None = None
    last_ms: int | None = None
    #: the maintenance windows (ms) the cycles were judged by, where they met a cycle
    maint_windows: list[tuple[int, int]] = field(default_factory=list)
    #: the service probes' response times (s) of the answered cycles outside maintenance
    response: RttSketch = field(default_factory=RttSketch)

    def add(self, f: "CycleFigures") -> None:
        """Add one cycle's figures (monitor.sla.cycles: the one rule for what a cycle counts)."""
        self.add_cycle(f.verdict, f.in_maintenance, f.sent, f.received, f.rtts, f.jitter, f.voice, f.at_ms, f.window,
                       f.response)

    def add_cycle(self, verdict: str, in_maintenance: bool, sent: int | None, received: int | None,
                  rtts: list[float], jitter: float | None, voice: VoiceSample | None,
                  at_ms: int | None = None, window: tuple[int, int] | None = None,
                  response: float | None = None) -> None:
        """Add one cycle: its verdict, whether it fell in maintenance, its packets, RTTs, jitter, voice figures,
        start, maintenance window and response time."""
        self.cycles += 1
        if at_ms is not None:
            self.first_ms = at_ms if self.first_ms is None else min(self.first_ms, at_ms)
            self.last_ms = at_ms if self.last_ms is None else max(self.last_ms, at_ms)
        if window is not None and window not in self.maint_windows:
            self.maint_windows = normalize([*self.maint_windows, window])
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
            if received and self.answered_sent is not None and self.answered_received is not None:
                self.answered_sent += sent
                self.answered_received += received
        for r in rtts:
            self.rtt.add(r)
        if response is not None:
            self.response.add(response)
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
        """Add another rollup of the same target (hours into a month, sites into a target)."""
        for name in (*_INTS, "mos_sum", "jitter_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if self.answered_sent is None or other.answered_sent is None:
            self.answered_sent = self.answered_received = None  # a legacy part: the merge cannot tell
        else:
            self.answered_sent += other.answered_sent
            self.answered_received = (self.answered_received or 0) + (other.answered_received or 0)
        self.rtt.merge(other.rtt)
        self.response.merge(other.response)
        self.jitter_max = max(self.jitter_max, other.jitter_max)
        self.mos_min = min(self.mos_min, other.mos_min)
        if other.first_ms is not None and other.last_ms is not None:
            self.first_ms = other.first_ms if self.first_ms is None else min(self.first_ms, other.first_ms)
            self.last_ms = other.last_ms if self.last_ms is None else max(self.last_ms, other.last_ms)
        if other.maint_windows:
            self.maint_windows = normalize([*self.maint_windows, *other.maint_windows])

    @property
    def loss_fraction(self) -> Fraction | None:
        """The month's loss, exact: lost / sent over the cycles that got a reply (see the module's rule)."""
        if self.answered_sent is None or self.answered_received is None:
            return None if self.sent == 0 else Fraction(self.sent - self.received, self.sent)
        return None if self.answered_sent == 0 else Fraction(self.answered_sent - self.answered_received,
                                                             self.answered_sent)

    @property
    def loss(self) -> float | None:
        """The loss ratio (the one definition: packets of answered cycles outside maintenance), or None."""
        value = self.loss_fraction
        return None if value is None else float(value)

    @property
    def loss_basis(self) -> str:
        """Which packets the loss is computed over, in words, for the report."""
        return "every packet (rolled up before the one-definition rule)" if self.answered_sent is None else \
            "packets of cycles that got a reply, outside maintenance"

    @property
    def mos_mean(self) -> float | None:
        """The mean MOS of the voice cycles, or None; to 9 decimals, far below the E-model's own precision, so
        the noise of summing binary floats never decides whether the MOS objective is met."""
        return round(self.mos_sum / self.mos_count, MEAN_PLACES) if self.mos_count else None

    @property
    def jitter_mean(self) -> float | None:
        """The mean jitter in seconds, or None; at the probes' 1 ns resolution, so the noise of summing binary
        floats (ten cycles of 2 ms mean 2.0000000000000005 ms) never decides whether the objective is met."""
        return round(self.jitter_sum / self.jitter_count, MEAN_PLACES) if self.jitter_count else None

    # -- encoding: counts as varints, sums only where present, the sketch apart ------------
    def counts_blob(self) -> bytes:
        """The counts and sums as stored: a flags byte, then varints and doubles (the RTT sketch is stored apart)."""
        out = bytearray()
        flags = (_HAS_JITTER if self.jitter_count else 0) | (_HAS_VOICE if self.mos_count else 0) | \
            (_HAS_ANSWERED if self.answered_sent is not None else 0) | \
            (_HAS_SPAN if self.first_ms is not None and self.last_ms is not None else 0) | \
            (_HAS_RESPONSE if self.response.count else 0)
        out.append(flags)
        for name in _INTS:
            write_varint(getattr(self, name), out)
        if flags & _HAS_JITTER:
            out += _D2.pack(self.jitter_sum, self.jitter_max)
        if flags & _HAS_VOICE:
            out += _D2.pack(self.mos_sum, self.mos_min)
        if flags & _HAS_ANSWERED:
            write_varint(self.answered_sent or 0, out)
            write_varint(self.answered_received or 0, out)
        if flags & _HAS_SPAN:
            assert self.first_ms is not None and self.last_ms is not None
            write_varint(self.first_ms, out)
            write_varint(self.last_ms - self.first_ms, out)
            write_varint(len(self.maint_windows), out)
            for start, end in self.maint_windows:  # relative to the first cycle; a window may start before it
                write_varint(_zigzag(start - self.first_ms), out)
                write_varint(end - start, out)
        if flags & _HAS_RESPONSE:
            blob = self.response.to_bytes()
            write_varint(len(blob), out)
            out += blob
        return bytes(out)

    def blobs(self) -> tuple[bytes, bytes]:
        """(counts, RTT sketch) as the store writes them (monitor.store.base.RollupBlobs)."""
        return self.counts_blob(), self.rtt.to_bytes()

    @classmethod
    def stored(cls, row: "StoredRollup") -> "Rollup":
        """A rollup from the store's row (monitor.store.base.StoredRollup)."""
        return cls.decode(row.counts, row.rtt)

    @classmethod
    def decode(cls, counts: bytes, rtt: bytes) -> "Rollup":
        """A rollup from its stored counts and RTT sketch (the inverse of :meth:`counts_blob` and the sketch's
        bytes)."""
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
            pos += _D2.size
        if flags & _HAS_ANSWERED:
            r.answered_sent, pos = read_varint(counts, pos)
            r.answered_received, pos = read_varint(counts, pos)
        else:
            r.answered_sent = r.answered_received = None
        if flags & _HAS_SPAN:
            first, pos = read_varint(counts, pos)
            span, pos = read_varint(counts, pos)
            n, pos = read_varint(counts, pos)
            r.first_ms, r.last_ms = first, first + span
            for _ in range(n):
                rel, pos = read_varint(counts, pos)
                length, pos = read_varint(counts, pos)
                start = first + _unzigzag(rel)
                r.maint_windows.append((start, start + length))
        if flags & _HAS_RESPONSE:
            size, pos = read_varint(counts, pos)
            r.response = RttSketch.from_bytes(counts[pos:pos + size])
            pos += size
        r.rtt = RttSketch.from_bytes(rtt)
        return r


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2
