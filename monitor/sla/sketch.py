"""A mergeable, compact quantile sketch for RTTs (DDSketch algorithm).

The bucket mapping is ddsketch's own ``LogarithmicMapping``: it gives the
relative-accuracy guarantee (every quantile within ``RELATIVE_ACCURACY`` of
the exact value of the samples). In memory the counts are a dense array of
8-byte integers from the lowest bucket seen; stored, only the non-empty buckets,
as varints, so that an hour of RTTs costs tens of bytes instead of ddsketch's
dense list of floats (which would break the storage budget of issue #5), and
merging is adding counts.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterator

from ddsketch.mapping import LogarithmicMapping

__all__ = ["RttSketch", "RELATIVE_ACCURACY", "write_varint", "read_varint"]

RELATIVE_ACCURACY = 0.008  # within the 1 % the SLA objectives need, and half the bins of 0.5 %
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_HEADER = struct.Struct("<Bddd")  # version, min, max, sum
_MIN_VALUE = 1e-7  # RTTs below 100 ns are stored as 100 ns
#: the widths of the counts, narrowest first: a sketch starts with 1-byte counts and widens all of them when one
#: bucket passes what they hold (255, 65,535, 2**32 - 1)
_WIDTHS = ("B", "H", "I", "Q")


def write_varint(n: int, out: bytearray) -> None:
    """Append ``n`` as an unsigned LEB128 varint."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at ``pos``: its value and the position after it."""
    shift = result = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


class RttSketch:
    """Counts per logarithmic bucket, held densely: one count per bucket between the lowest and the highest key
    seen, from an offset. The counts are as narrow as the largest needs: 1 byte, then 2, 4 or 8 bytes once a
    bucket passes 255, 65,535 or 2**32 - 1 (an hour of a 30 s target's echoes fits 1 or 2 bytes, a month 2 or 4,
    a merged contract-wide month may need 8). A month of one target's RTTs spans a few hundred buckets at most
    (the mapping's whole range from 100 ns to a minute is about 1,300: the bound of a sketch's memory), so a
    sketch stays well under a few KB where the sparse dict it replaced cost about 70 bytes per bucket (80
    buckets, 5.6 KB, per target after 40 minutes at 10,000 targets; bench/exporter_scale.py)."""

    __slots__ = ("_offset", "_counts", "count", "min", "max", "sum")

    def __init__(self) -> None:
        self._offset = 0
        self._counts = array(_WIDTHS[0])
        self.count = 0
        self.min = math.inf
        self.max = -math.inf
        self.sum = 0.0

    def _slot(self, key: int) -> int:
        """The index of ``key`` in the counts, growing them to reach it."""
        counts = self._counts
        if not counts:
            self._offset = key
            counts.append(0)
            return 0
        if key < self._offset:
            grown = array(counts.typecode, bytes(counts.itemsize * (self._offset - key)))
            grown.extend(counts)
            self._counts = grown
            self._offset = key
            return 0
        index = key - self._offset
        if index >= len(counts):
            counts.frombytes(bytes(counts.itemsize * (index + 1 - len(counts))))
        return index

    def _bump(self, index: int, n: int) -> None:
        try:
            self._counts[index] += n
        except OverflowError:  # a bucket passed what its width holds: the next width from now on, as often as needed
            counts = self._counts
            for code in _WIDTHS[_WIDTHS.index(counts.typecode) + 1:]:
                counts = array(code, counts)
                try:
                    counts[index] += n
                except OverflowError:
                    continue
                self._counts = counts
                return
            raise

    @property
    def bins(self) -> dict[int, int]:
        """The non-empty buckets, key -> count (a copy)."""
        offset = self._offset
        return {offset + i: n for i, n in enumerate(self._counts) if n}

    def items(self) -> Iterator[tuple[int, int]]:
        """(key, count) of the non-empty buckets, lowest key first."""
        offset = self._offset
        return ((offset + i, n) for i, n in enumerate(self._counts) if n)

    def add(self, value: float) -> None:
        """Count one RTT (seconds)."""
        self._bump(self._slot(_MAPPING.key(max(value, _MIN_VALUE))), 1)  # the slot first: it may replace the array
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: "RttSketch") -> None:
        """Add another sketch's counts (sketches merge exactly: the same buckets)."""
        for key, n in other.items():
            self._bump(self._slot(key), n)
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1), within RELATIVE_ACCURACY of the exact one; None when empty."""
        if self.count == 0:
            return None
        if q <= 0:
            return self.min
        if q >= 1:
            return self.max
        rank = q * (self.count - 1)
        seen = 0
        for key, n in self.items():
            seen += n
            if seen > rank:
                return min(max(_MAPPING.value(key), self.min), self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        """The exact mean of the values added, or None when empty."""
        return self.sum / self.count if self.count else None

    def to_bytes(self) -> bytes:
        """The stored form: a header (version, min, max, sum), then the non-empty buckets as zigzag varint deltas
        and counts."""
        out = bytearray(_HEADER.pack(1, self.min if self.count else 0.0, self.max if self.count else 0.0, self.sum))
        bins = list(self.items())
        write_varint(len(bins), out)
        previous = 0
        for key, n in bins:
            delta = key - previous
            write_varint((delta << 1) ^ (delta >> 63), out)  # zigzag
            write_varint(n, out)
            previous = key
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "RttSketch":
        """The sketch from its stored form (ValueError for an unknown version)."""
        sketch = cls()
        version, mn, mx, total = _HEADER.unpack_from(data)
        if version != 1:
            raise ValueError(f"unknown sketch encoding version {version}")
        n, pos = read_varint(data, _HEADER.size)
        key = 0
        for _ in range(n):
            z, pos = read_varint(data, pos)
            key += (z >> 1) ^ -(z & 1)
            count, pos = read_varint(data, pos)
            sketch._bump(sketch._slot(key), count)
            sketch.count += count
        if sketch.count:
            sketch.min, sketch.max = mn, mx
        sketch.sum = total
        return sketch
