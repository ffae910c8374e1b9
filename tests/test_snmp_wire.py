"""The v1/v2c wire codec, checked against an independent BER implementation (pysnmp's pyasn1 message classes),
a fake agent that answers tooBig, and random bytes that must never raise anything but WireError."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

from probes.snmp_wire import (END_OF_MIB_VIEW, GETBULK, GETNEXT, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, WireClient, WireError,
                              decode_message, encode_request)

V2C = api.v2c


def response(request_id: int, binds, community=b"public", status=0, index=0, version=1) -> bytes:
    """A Response message encoded by pyasn1 (the reference encoder)."""
    proto = V2C if version == 1 else api.v1
    msg = proto.Message()
    proto.apiMessage.set_defaults(msg)
    proto.apiMessage.set_community(msg, community)
    pdu = proto.GetResponsePDU()
    proto.apiPDU.set_defaults(pdu)
    proto.apiPDU.set_request_id(pdu, request_id)
    proto.apiPDU.set_error_status(pdu, status)
    proto.apiPDU.set_error_index(pdu, index)
    proto.apiPDU.set_varbinds(pdu, binds)
    proto.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def test_every_value_type_decodes_as_pysnmp_encodes_it():
    binds = [
        ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(4_294_967_295)),
        ("1.3.6.1.2.1.1.5.0", rfc1902.OctetString(b"core-rtr-1")),
        ("1.3.6.1.2.1.2.2.1.6.2", rfc1902.OctetString(b"\x00\x1b\x21\xff\x00\x01")),  # a MAC: hex, like prettyPrint
        ("1.3.6.1.2.1.1.2.0", rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072.3.2.10")),
        ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", rfc1902.IpAddress("10.0.0.1")),
        ("1.3.6.1.2.1.2.2.1.10.1", rfc1902.Counter32(4_294_967_295)),
        ("1.3.6.1.2.1.31.1.1.1.6.1", rfc1902.Counter64(18_446_744_073_709_551_615)),
        ("1.3.6.1.2.1.2.2.1.5.1", rfc1902.Gauge32(4_000_000_000)),
        ("1.3.6.1.4.1.9.9.42.1.2.10.1.1.1", rfc1902.Integer32(-2_147_483_648)),
        ("1.3.6.1.2.1.1.9.0", rfc1902.Integer32(0)),
        ("1.3.6.1.2.1.1.10.0", rfc1905.noSuchObject),
        ("1.3.6.1.2.1.1.11.0", rfc1905.noSuchInstance),
        ("1.3.6.1.2.1.1.12.0", rfc1905.endOfMibView),
        ("2.999.1", rfc1902.OctetString(b"")),  # arcs above 39 under joint-iso-itu-t
    ]
    version, community, pdu_type, request_id, reply = decode_message(response(0x7FFFFFFF, binds))
    assert (version, community, pdu_type, request_id) == (1, b"public", 0xA2, 0x7FFFFFFF)
    assert reply.status is None and reply.error is None
    values = [v for _, v in reply.binds]
    assert [o for o, _ in reply.binds] == [o for o, _ in binds]
    assert values == [4_294_967_295, "core-rtr-1", "0x001b21ff0001", "1.3.6.1.4.1.8072.3.2.10", "10.0.0.1",
                      4_294_967_295, 18_446_744_073_709_551_615, 4_000_000_000, -2_147_483_648, 0,
                      NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW, ""]


def test_error_status_names_and_v1():
    _, _, _, _, reply = decode_message(response(5, [("1.3.6.1.2.1.1.5.0", rfc1902.Null(""))], status=2, index=1, version=0))
    assert reply.status == "noSuchName" and reply.index == 1


@pytest.mark.parametrize("pdu_type,version", [(GETBULK, 1), (GETNEXT, 0)])
def test_requests_decode_with_the_reference_decoder(pdu_type, version):
    oids = ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.4.1.9.9.42.1.5.2.1.42.4294967295"]
    data = encode_request(version, b"s3cr\xffet", pdu_type, 123456789, oids, 0, 300 if pdu_type == GETBULK else 0)
    proto = api.PROTOCOL_MODULES[api.decodeMessageVersion(data)]
    msg, rest = decoder.decode(data, asn1Spec=proto.Message())
    assert rest == b"" and int(msg["version"]) == version and bytes(msg["community"]) == b"s3cr\xffet"
    pdu = proto.apiMessage.get_pdu(msg)
    assert int(proto.apiPDU.get_request_id(pdu)) == 123456789
    assert [str(o) for o, _ in proto.apiPDU.get_varbinds(pdu)] == oids
    if pdu_type == GETBULK:
        assert int(proto.apiBulkPDU.get_max_repetitions(pdu)) == 300 and int(proto.apiBulkPDU.get_non_repeaters(pdu)) == 0


def test_bad_oids_are_refused_before_sending():
    for bad in ("1.3.6.x", "3.1", "1.40", "1"):
        with pytest.raises(WireError):
            encode_request(1, b"public", GETNEXT, 1, [bad])


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_wire_error(data):
    try:
        decode_message(data)
    except WireError:
        pass


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_truncated_or_corrupted_answers_only_ever_raise_wire_error(cut, noise):
    good = response(7, [("1.3.6.1.2.1.1.5.0", rfc1902.OctetString(b"x" * 200)), ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(5))])
    for data in (good[:cut], good[:cut] + noise + good[cut + len(noise):]):
        try:
            decode_message(data)
        except WireError:
            pass


class TooBigAgent:
    """Answers tooBig to any request whose answer would hold more than ``limit`` varbinds; else answers GET of
    x.N.0 with N, and GETBULK over two-row columns; sends one stranger's datagram before every answer."""

    def __init__(self, limit: int):
        self.limit, self.requests = limit, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            msg, _ = decoder.decode(data, asn1Spec=V2C.Message())
            pdu = V2C.apiMessage.get_pdu(msg)
            oids = [str(o) for o, _ in V2C.apiPDU.get_varbinds(pdu)]
            reps = int(V2C.apiBulkPDU.get_max_repetitions(pdu)) if pdu.tagSet == V2C.GetBulkRequestPDU.tagSet else 1
            self.requests.append((len(oids), reps))
            rid = int(V2C.apiPDU.get_request_id(pdu))
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # right id, wrong source port: dropped
            stranger.sendto(response(rid, [(oids[0], rfc1902.Integer32(-1))]), addr)
            stranger.close()
            if len(oids) * reps > self.limit:
                self.sock.sendto(response(rid, [], status=1), addr)
            elif pdu.tagSet == V2C.GetBulkRequestPDU.tagSet:  # columns with rows .1 and .2, then the end of the MIB
                binds, cursor = [], list(oids)
                for _ in range(reps):
                    for i, oid in enumerate(cursor):
                        arcs = oid.split(".")
                        row = 1 if len(arcs) == 9 else int(arcs[-1]) + 1
                        cursor[i] = f"{'.'.join(arcs[:9])}.{row}"
                        binds.append((cursor[i], rfc1902.Integer32(row) if row <= 2 else rfc1905.endOfMibView))
                self.sock.sendto(response(rid, binds), addr)
            else:
                self.sock.sendto(response(rid, [(o, rfc1902.Integer32(int(o.split(".")[-2]))) for o in oids]), addr)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_too_big_splits_gets_and_shrinks_bulks():
    from monitor.config.models import SnmpProbeConfig, SnmpProfile
    from probes.base import ProbeContext
    from probes.snmp import SnmpEngineHolder, snmp_probe

    agent = TooBigAgent(limit=4)
    try:
        scalars = {f"s{i}": f"1.3.6.1.4.1.99.1.{i}.0" for i in range(1, 10)}
        profile = SnmpProfile(scalars=scalars, tables={"a": "1.3.6.1.4.1.99.2.1", "b": "1.3.6.1.4.1.99.2.2"})

        async def run():
            holder = SnmpEngineHolder()
            ctx = ProbeContext(snmp_engine=holder, snmp_profiles={"big": profile})
            cfg = SnmpProbeConfig(version="2c", community="public", port=agent.port, profiles=["big"], retries=0,
                                  timeout="1s", max_repetitions=25)
            try:
                return await snmp_probe("t", "127.0.0.1", cfg, context=ctx), holder.wire.dropped
            finally:
                holder.close()

        r, dropped = asyncio.run(run())
    finally:
        agent.close()
    assert r.ok, r.reason
    assert {k: v for k, v in r.scalars.items()} == {f"big.s{i}": i for i in range(1, 10)}  # every scalar, split in GETs
    assert r.tables["big"] == {"1": {"a": 1, "b": 1}, "2": {"a": 2, "b": 2}}
    assert max(n * reps for n, reps in agent.requests if n * reps <= 4) <= 4 and (2, 25) in agent.requests
    assert (2, 1) in agent.requests  # GETBULK shrank from 25 to 1 repetition
    assert dropped == len(agent.requests)  # every stranger's datagram was dropped, none taken as the answer


def test_one_socket_per_family_however_many_requests_start_together():
    import os

    def sockets() -> int:
        return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))

    async def run():
        client = WireClient()
        before = sockets()
        try:
            # nothing listens on port 9 of loopback: every request times out, but all go out of one socket
            await asyncio.gather(*(client.request("127.0.0.1", 9, 1, b"public", GETNEXT, ["1.3.6.1.2.1.1"],
                                                  timeout=0.05, retries=0) for _ in range(50)))
            return sockets() - before
        finally:
            client.close()

    assert asyncio.run(run()) == 1
