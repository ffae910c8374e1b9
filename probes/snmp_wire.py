"""SNMPv1/v2c on the wire: a BER codec for community messages and one shared asyncio UDP client.

Why not pysnmp for v1/v2c: measured in ``bench/snmp_scale.py``, pysnmp 7 costs
about 25 ms of CPU per GETBULK response of the interface table (pyasn1
decoding plus the engine's message processing), so 1,000 agents need about
25 s of CPU a cycle on one core, and the goal is 10 s. Community messages are
five nested TLVs; decoding them directly costs a few microseconds a varbind.
SNMPv3 goes through this client too (``request_v3``): :mod:`probes.snmp_usm` builds and checks the USM
security (keys, digests, privacy) on the same socket; pysnmp serves the trap receiver.

Every request goes out of one socket per address family and is matched on
the answer's source address, request-id, version and community; anything else
that arrives (garbage, truncated datagrams, strangers) is counted and dropped,
never raised. Values come back as Python values: ``int`` for INTEGER,
Counter32/64, Gauge32, TimeTicks; ``str`` for OCTET STRING (text when it is
printable, else ``0x`` + hex, like pysnmp's prettyPrint), dotted strings for
OIDs and IpAddress; and the :data:`NO_SUCH_OBJECT`, :data:`NO_SUCH_INSTANCE`,
:data:`END_OF_MIB_VIEW` markers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from . import ber
from . import snmp_usm as usm

__all__ = ["Absent", "NO_SUCH_OBJECT", "NO_SUCH_INSTANCE", "END_OF_MIB_VIEW", "ERROR_STATUS", "Reply", "WireError",
           "WireClient", "encode_request", "encode_pdu", "decode_message", "decode_pdu", "message_version", "GET", "GETNEXT", "GETBULK", "RESPONSE"]


#: a datagram that is not a well-formed SNMP message (the BER decoder's error)
WireError = ber.BerError


class Absent(str):
    """An exception value in a varbind (RFC 3416 section 3): no such object / instance, end of the MIB view."""

    __slots__ = ()


NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = Absent("noSuchObject"), Absent("noSuchInstance"), Absent("endOfMibView")
ERROR_STATUS = ("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
                "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
                "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
                "inconsistentName")
GET, GETNEXT, RESPONSE, GETBULK = 0xA0, 0xA1, 0xA2, 0xA5

_INTEGER, _OCTETS, _NULL, _OID, _SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
_IPADDRESS, _COUNTER32, _GAUGE32, _TIMETICKS, _OPAQUE, _COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
_UNSIGNED = (_COUNTER32, _GAUGE32, _TIMETICKS, _COUNTER64)
_ABSENT = {0x80: NO_SUCH_OBJECT, 0x81: NO_SUCH_INSTANCE, 0x82: END_OF_MIB_VIEW}
_PRINTABLE = frozenset(range(32, 127)) | {9, 10, 13}


# -- encoding -----------------------------------------------------------------------------------------------------

_length, _tlv, _integer = ber.length, ber.tlv, ber.integer


def _oid(text: str) -> bytes:
    try:
        arcs = [int(a) for a in text.strip(".").split(".")]
    except ValueError:
        raise WireError(f"not a numeric OID: {text!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise WireError(f"not a valid OID: {text!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_OID, bytes(out))


def encode_pdu(pdu_type: int, request_id: int, oids: list[str], non_repeaters: int = 0,
               max_repetitions: int = 0) -> bytes:
    """A GET / GETNEXT / GETBULK PDU (the part a community message and a v3 scoped PDU share)."""
    binds = b"".join(_tlv(_SEQUENCE, _oid(o) + b"\x05\x00") for o in oids)
    second, third = (non_repeaters, max_repetitions) if pdu_type == GETBULK else (0, 0)
    return _tlv(pdu_type, _integer(request_id) + _integer(second) + _integer(third) + _tlv(_SEQUENCE, binds))


def encode_request(version: int, community: bytes, pdu_type: int, request_id: int, oids: list[str],
                   non_repeaters: int = 0, max_repetitions: int = 0) -> bytes:
    """A GET / GETNEXT / GETBULK request; ``version`` is 0 for v1 and 1 for v2c."""
    pdu = encode_pdu(pdu_type, request_id, oids, non_repeaters, max_repetitions)
    return _tlv(_SEQUENCE, _integer(version) + _tlv(_OCTETS, community) + pdu)


# -- decoding -----------------------------------------------------------------------------------------------------

_header, _expect, _int = ber.header, ber.expect, ber.int_value


def _oid_text(body: bytes) -> str:
    if not body:
        raise WireError("empty OID")
    arcs, arc = [], 0
    for byte in body:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    if body[-1] & 0x80:
        raise WireError("OID ends inside an arc")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return ".".join(map(str, (*head, *arcs[1:])))


def _value(tag: int, body: bytes) -> Any:
    if tag == _INTEGER:
        return int.from_bytes(body, "big", signed=True)
    if tag in _UNSIGNED:
        return int.from_bytes(body, "big", signed=False)
    if tag in (_OCTETS, _OPAQUE):
        if _PRINTABLE.issuperset(body):
            return body.decode("ascii")
        return "0x" + body.hex()
    if tag == _OID:
        return _oid_text(body)
    if tag == _IPADDRESS:
        if len(body) != 4:
            raise WireError("IpAddress is not 4 octets")
        return ".".join(map(str, body))
    if tag == _NULL:
        return None
    if tag in _ABSENT:
        return _ABSENT[tag]
    raise WireError(f"unknown value tag 0x{tag:02x}")


@dataclass(frozen=True, slots=True)
class Reply:
    """A decoded response. ``error`` is set for transport problems (timeout, socket), ``status`` for the agent's
    error-status (``None`` for noError); ``binds`` are (dotted OID, value)."""

    error: str | None = None
    status: str | None = None
    index: int = 0
    binds: list[tuple[str, Any]] = field(default_factory=list)


def decode_message(data: bytes) -> tuple[int, bytes, int, int, Reply]:
    """(version, community, pdu type, request-id, reply) of a community message; raises :class:`WireError`."""
    end = len(data)
    start, end = _expect(data, 0, end, _SEQUENCE)
    version, pos = _int(data, start, end)
    cstart, pos = _expect(data, pos, end, _OCTETS)
    community = data[cstart:pos]
    pdu_type, request_id, reply = decode_pdu(data, pos, end)
    return version, community, pdu_type, request_id, reply


def message_version(data: bytes) -> int:
    """The version field of any SNMP message (0: v1, 1: v2c, 3: v3); raises :class:`WireError`."""
    start, end = _expect(data, 0, len(data), _SEQUENCE)
    return _int(data, start, end)[0]


def decode_pdu(data: bytes, pos: int, end: int) -> tuple[int, int, Reply]:
    """(pdu type, request-id, reply) of the PDU at ``pos``; raises :class:`WireError`."""
    pdu_type, pos, pdu_end = _header(data, pos, end)
    request_id, pos = _int(data, pos, pdu_end)
    status, pos = _int(data, pos, pdu_end)
    index, pos = _int(data, pos, pdu_end)
    pos, list_end = _expect(data, pos, pdu_end, _SEQUENCE)
    binds = []
    while pos < list_end:
        bstart, bend = _expect(data, pos, list_end, _SEQUENCE)
        ostart, ostop = _expect(data, bstart, bend, _OID)
        vtag, vstart, vstop = _header(data, ostop, bend)
        binds.append((_oid_text(data[ostart:ostop]), _value(vtag, data[vstart:vstop])))
        pos = bend
    name = ERROR_STATUS[status] if 0 <= status < len(ERROR_STATUS) else f"error-status {status}"
    return pdu_type, request_id, Reply(None, None if status == 0 else name, index, binds)


# -- the client ---------------------------------------------------------------------------------------------------

class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, client: "WireClient"):
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.client._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like: the request times out
        self.client.socket_errors += 1


@dataclass(slots=True)
class _Pending:
    """A request waiting for its answer."""

    peer: tuple[str, int]
    version: int
    community: bytes
    future: asyncio.Future
    user: Any = None  # v3: the UsmUser the answer must be authenticated for (None: discovery)
    request_id: int = 0
    rejected: str | None = None  # v3: why an answer to it was dropped (wrong digest, ...)


@dataclass(slots=True)
class _Engine:
    """What a v3 agent's engine told us: its ID, and its boots and time at a moment of our monotonic clock."""

    engine_id: bytes
    boots: int
    time: int
    at: float
    latest: int  # latestReceivedEngineTime (RFC 3414 2.3)

    def now(self) -> int:
        return self.time + int(time.monotonic() - self.at)

    def learn(self, boots: int, engine_time: int) -> None:
        self.boots, self.time, self.at, self.latest = boots, engine_time, time.monotonic(), engine_time


#: RFC 3414 3.2.7: a message more than this many seconds older than our notion of the engine's time is refused
TIME_WINDOW = 150
_BOOTS_MAX = 2147483647


class WireClient:
    """One UDP socket per address family for every request of a daemon (v1, v2c and v3), answers matched by
    request-id (v1/v2c) or msgID (v3). v3 keeps each agent's engine (ID, boots, time) once discovered."""

    def __init__(self, receive_buffer: int = 4 << 20):
        self.receive_buffer = receive_buffer
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._opening: asyncio.Lock | None = None  # the first requests of a cycle arrive together: one socket
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._engines: dict[tuple[str, int], _Engine] = {}
        self.dropped = 0  # datagrams that matched nothing or did not decode
        #: dropped datagrams by reason: malformed, unmatched, wrong_digest, decryption_error,
        #: not_in_time_window (a replay or a stale answer), unauthenticated
        self.dropped_by: dict[str, int] = {}
        #: v3 reports received by kind (unknown_user, wrong_digest, not_in_time_window, ...)
        self.reports: dict[str, int] = {}
        self.socket_errors = 0

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        transport = self._transports.get(family)
        if transport is not None:
            return transport
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            return self._transports.get(family) or await self._open(family)

    async def _open(self, family: int) -> asyncio.DatagramTransport:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        except OSError:  # capped by net.core.rmem_max; the default still works
            pass
        sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
        sock.setblocking(False)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Receiver(self), sock=sock)
        self._transports[family] = transport
        return transport

    def _drop(self, reason: str, pending: _Pending | None = None) -> None:
        self.dropped += 1
        self.dropped_by[reason] = self.dropped_by.get(reason, 0) + 1
        if pending is not None and reason not in ("unmatched", "malformed"):
            pending.rejected = reason

    def _received(self, data: bytes, addr: tuple) -> None:
        try:
            if message_version(data) == 3:
                return self._received_v3(data, addr)
            version, community, pdu_type, request_id, reply = decode_message(data)
        except (WireError, IndexError, ValueError, OverflowError):
            return self._drop("malformed")
        pending = self._pending.get(request_id)
        if (pending is None or pdu_type != RESPONSE or (addr[0], addr[1]) != pending.peer
                or version != pending.version or community != pending.community or pending.future.done()):
            return self._drop("unmatched")
        pending.future.set_result(reply)

    def _received_v3(self, data: bytes, addr: tuple) -> None:
        """Authenticate, check timeliness, decrypt and match a v3 answer; anything else is a counted drop."""
        try:
            message = usm.decode_v3(data)
        except WireError:  # UsmError is one
            return self._drop("malformed")
        pending = self._pending.get(message.msg_id)
        if pending is None or pending.version != 3 or (addr[0], addr[1]) != pending.peer or pending.future.done():
            return self._drop("unmatched")
        user = pending.user
        scoped = message.scoped
        stale = False
        if message.flags & usm.FLAG_AUTH:
            checked = self._authenticated(data, message, pending)
            if checked is None:
                return None  # dropped, counted
            stale, scoped = checked
        try:
            _, _, pos = usm.decode_scoped(scoped)
            pdu_type, request_id, reply = decode_pdu(scoped, pos, len(scoped))
        except (WireError, IndexError, ValueError, OverflowError):
            return self._drop("malformed")
        if pdu_type == usm.REPORT:
            # a report is only ever a reason to fail or resynchronise (never data), so an authenticated one
            # whose clock is behind ours is still taken: it is how the agent tells us its clock
            oid = reply.binds[0][0] if reply.binds else ""
            pending.future.set_result(("report", oid, message))
            return None
        if stale:
            return self._drop("not_in_time_window", pending)
        if pdu_type != RESPONSE or request_id != pending.request_id:
            return self._drop("unmatched")
        if user is not None and user.auth and not message.flags & usm.FLAG_AUTH:
            return self._drop("unauthenticated", pending)
        pending.future.set_result(("response", reply, message))
        return None

    def _authenticated(self, data: bytes, message: Any, pending: _Pending) -> tuple[bool, bytes] | None:
        """An authenticated answer: its digest verified, its engine clock checked (stale: a replay or a stale answer,
        unless it is the agent's notInTimeWindow report) and its scoped PDU decrypted; None when dropped."""
        user = pending.user
        if user is None or not user.auth or message.user != user.name:
            self._drop("unmatched")
            return None
        if not usm.verify(data, message, user):
            self._drop("wrong_digest", pending)
            return None
        stale = False
        engine = self._engines.get(pending.peer)
        if engine is not None and engine.engine_id == message.engine_id:
            if message.boots > engine.boots or (message.boots == engine.boots and message.time > engine.latest):
                engine.learn(message.boots, message.time)
            elif (message.boots < engine.boots or message.boots == _BOOTS_MAX
                  or message.time < engine.now() - TIME_WINDOW):
                stale = True
        scoped = message.scoped
        if message.flags & usm.FLAG_PRIV:
            try:
                scoped = usm.decrypt(message, user)
            except (WireError, ValueError):
                self._drop("decryption_error", pending)
                return None
        return stale, scoped

    async def _resolve(self, address: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
        """The address as an IP, or the resolver's error in words."""
        try:
            return ipaddress.ip_address(address)
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(address, port, type=socket.SOCK_DGRAM)
                return ipaddress.ip_address(infos[0][4][0])
            except (OSError, IndexError) as exc:
                return f"cannot resolve {address}: {exc}"

    async def _exchange(self, peer: tuple[str, int], family: int, datagram: bytes, key: int, pending: _Pending,
                        timeout: float, retries: int) -> Any:
        """Send ``datagram`` (resent ``retries`` times) and wait for what :meth:`_received` matches to ``key``;
        a :class:`Reply` with the error when nothing does."""
        self._pending[key] = pending
        try:
            transport = await self._transport(family)
            for _attempt in range(retries + 1):
                transport.sendto(datagram, peer)
                try:
                    return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
                except asyncio.TimeoutError:
                    continue
            why = f"No SNMP response received before timeout ({timeout:g} s, {retries} retries)"
            if pending.rejected:
                why += f"; answers were dropped: {pending.rejected.replace('_', ' ')}"
            return Reply(error=why)
        except OSError as exc:
            return Reply(error=f"socket: {exc}")
        finally:
            self._pending.pop(key, None)
            if not pending.future.done():
                pending.future.cancel()

    async def request(self, address: str, port: int, version: int, community: bytes, pdu_type: int, oids: list[str],
                      *, timeout: float, retries: int, max_repetitions: int = 0) -> Reply:
        """Send a v1/v2c request and wait for its answer, resending ``retries`` times; never raises for a bad
        target."""
        ip = await self._resolve(address, port)
        if isinstance(ip, str):
            return Reply(error=ip)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        request_id = next(self._ids) & 0x7FFFFFFF
        try:
            datagram = encode_request(version, community, pdu_type, request_id, oids, 0, max_repetitions)
        except WireError as exc:
            return Reply(error=str(exc))
        peer = (str(ip), port)
        pending = _Pending(peer, version, community, asyncio.get_running_loop().create_future(),
                           request_id=request_id)
        return await self._exchange(peer, family, datagram, request_id, pending, timeout, retries)

    async def request_v3(self, address: str, port: int, user: "usm.UsmUser", context: bytes, pdu_type: int,
                         oids: list[str], *, timeout: float, retries: int, max_repetitions: int = 0,
                         engine_id: bytes | None = None) -> Reply:
        """A v3 request: the agent's engine discovered first (once), the message authenticated and encrypted as
        the user's level says. A report (unknown user, wrong digest, ...) becomes the error in words; an
        unknown engine ID or a time window missed is resynchronised and retried once (RFC 3414 4)."""
        ip = await self._resolve(address, port)
        if isinstance(ip, str):
            return Reply(error=ip)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        peer = (str(ip), port)
        loop = asyncio.get_running_loop()
        resynced = discovered = False
        while True:
            engine = self._engines.get(peer)
            if engine is None:
                discovered = True
                msg_id = next(self._ids) & 0x7FFFFFFF
                scoped = usm.encode_scoped(b"", b"", encode_pdu(GET, msg_id, []))
                datagram, _ = usm.encode_v3(msg_id, usm.FLAG_REPORTABLE, b"", 0, 0, b"", 0, b"", scoped)
                got = await self._exchange(peer, family, bytes(datagram), msg_id,
                                           _Pending(peer, 3, b"", loop.create_future(), None, msg_id),
                                           timeout, retries)
                if isinstance(got, Reply):
                    return got
                if got[0] != "report" or not got[2].engine_id:
                    return Reply(error="SNMPv3 engine discovery: the agent answered without its engine ID")
                found = got[2]
                engine = self._engines[peer] = _Engine(found.engine_id, found.boots, found.time, time.monotonic(),
                                                       found.time)
            if engine_id is not None and engine.engine_id != engine_id:
                return Reply(error=f"SNMPv3: the agent's engine ID 0x{engine.engine_id.hex()} is not the configured "
                                   f"engine_id 0x{engine_id.hex()}")
            msg_id = next(self._ids) & 0x7FFFFFFF
            boots, engine_time = (engine.boots, engine.now()) if user.auth else (0, 0)
            try:
                scoped = usm.encode_scoped(engine.engine_id, context,
                                           encode_pdu(pdu_type, msg_id, oids, 0, max_repetitions))
            except WireError as exc:
                return Reply(error=str(exc))
            priv_params = b""
            if user.priv:
                scoped, priv_params = usm.encrypt(scoped, user, engine.engine_id, boots, engine_time)
            datagram, offset = usm.encode_v3(msg_id, user.flags | usm.FLAG_REPORTABLE, engine.engine_id, boots,
                                             engine_time, user.name, user.mac_length(), priv_params, scoped)
            data = usm.authenticate(datagram, offset, user, engine.engine_id) if user.auth else bytes(datagram)
            got = await self._exchange(peer, family, data, msg_id,
                                       _Pending(peer, 3, b"", loop.create_future(), user, msg_id), timeout, retries)
            if isinstance(got, Reply):
                if discovered and user.priv and got.error and got.error.startswith("No SNMP response"):
                    return await self._diagnose_privacy(peer, family, user, engine, context, got, timeout)
                # discover again next time: if the agent answers that, its silence here is diagnosed then
                self._engines.pop(peer, None)
                return got
            kind, payload, message = got
            if kind == "response":
                return payload
            name, text = usm.REPORT_REASONS.get(payload, ("report", f"the agent sent report {payload}"))
            self.reports[name] = self.reports.get(name, 0) + 1
            if not resynced and name == "not_in_time_window" and message.flags & usm.FLAG_AUTH:
                engine.learn(message.boots, message.time)  # the authenticated report carries the agent's clock
                resynced = True
                continue
            if not resynced and name == "unknown_engine_id":
                self._engines.pop(peer, None)  # the agent's engine changed (a new engine ID): discover again
                resynced = True
                continue
            return Reply(error="SNMPv3: " + text.format(user=user.name.decode(errors="replace"), auth=user.auth,
                                                        priv=user.priv, engine=f"0x{engine.engine_id.hex()}",
                                                        context=context.decode(errors="replace")))

    async def _diagnose_privacy(self, peer: tuple[str, int], family: int, user: "usm.UsmUser", engine: _Engine,
                                context: bytes, timeout_reply: Reply, timeout: float) -> Reply:
        """The agent answered engine discovery just now but not the encrypted request: agents drop what they
        cannot decrypt without a report. One authenticated, unencrypted GET (sysUpTime) tells whether the
        authentication part is right, so the reason can name the privacy key or protocol."""
        probe_user = usm.UsmUser(user.name, user.auth, user.auth_password)
        msg_id = next(self._ids) & 0x7FFFFFFF
        scoped = usm.encode_scoped(engine.engine_id, context, encode_pdu(GET, msg_id, ["1.3.6.1.2.1.1.3.0"]))
        datagram, offset = usm.encode_v3(msg_id, probe_user.flags | usm.FLAG_REPORTABLE, engine.engine_id,
                                         engine.boots, engine.now(), user.name, user.mac_length(), b"", scoped)
        data = usm.authenticate(datagram, offset, probe_user, engine.engine_id)
        got = await self._exchange(peer, family, data, msg_id, _Pending(
            peer, 3, b"", asyncio.get_running_loop().create_future(), probe_user, msg_id), timeout, 0)
        name = user.name.decode(errors="replace")
        if isinstance(got, Reply):
            if context:
                return Reply(error=f"{timeout_reply.error}; the agent answers engine discovery but nothing in "
                                   f"context {context.decode(errors='replace')!r} (net-snmp drops requests for a "
                                   f"context it does not have without a report)")
            return timeout_reply
        if got[0] == "response":
            self.reports["decryption_error"] = self.reports.get("decryption_error", 0) + 1
            return Reply(error=f"SNMPv3: the agent answers user {name!r}'s authenticated requests but drops its "
                               f"encrypted ones: wrong privacy key or protocol ({user.priv})")
        kind, _ = usm.REPORT_REASONS.get(got[1], ("report", ""))
        if kind == "wrong_digest":
            self.reports[kind] = self.reports.get(kind, 0) + 1
            return Reply(error=f"SNMPv3: wrong authentication key or protocol ({user.auth}) for user {name!r} "
                               f"(usmStatsWrongDigests)")
        return timeout_reply

    def close(self) -> None:
        """Close the transport's sockets."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
