"""The BER pieces SNMP messages are made of (X.690 definite lengths), shared by the community codec
(probes/snmp_wire.py) and the v3 USM codec (probes/snmp_usm.py). Decoding raises :class:`BerError` and
nothing else for any input (both codecs are fuzzed)."""

from __future__ import annotations

from monitor.errors import SlawatchError

__all__ = ["BerError", "length", "tlv", "integer", "header", "expect", "int_value", "octets"]

INTEGER, OCTETS, SEQUENCE = 0x02, 0x04, 0x30


class BerError(SlawatchError):
    """Bytes that are not the BER they should be."""


def length(n: int) -> bytes:
    """A BER length field."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    """A BER tag-length-value."""
    return bytes((tag,)) + length(len(body)) + body


def integer(n: int) -> bytes:
    """A BER INTEGER (two's complement, minimal)."""
    return tlv(INTEGER, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True))


def header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the TLV at ``pos``."""
    if pos + 2 > end:
        raise BerError("truncated TLV")
    tag, n = data[pos], data[pos + 1]
    pos += 2
    if n & 0x80:
        size = n & 0x7F
        if not 0 < size <= 4 or pos + size > end:
            raise BerError("bad length")
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + n > end:
        raise BerError("truncated value")
    return tag, pos, pos + n


def expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """The length and start of the value of tag ``tag`` at ``pos``; a WireError otherwise."""
    got, start, stop = header(data, pos, end)
    if got != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def int_value(data: bytes, pos: int, end: int, max_octets: int = 9) -> tuple[int, int]:
    """An INTEGER's value (at most ``max_octets`` octets) and the position after it."""
    start, stop = expect(data, pos, end, INTEGER)
    if start == stop or stop - start > max_octets:
        raise BerError("bad INTEGER")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def octets(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """An OCTET STRING at ``pos``: its bytes and the position after it."""
    start, stop = expect(data, pos, end, OCTETS)
    return data[start:stop], stop
