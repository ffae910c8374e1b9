"""SNMPv3 USM (probes/snmp_usm.py): RFC 3414's published key vectors, then every auth/priv combination checked
against pysnmp's independent implementation (keys, digests, ciphers, the message's BER), then a fuzz of the v3
decoder and receive path: random, truncated and bit-flipped messages, wrong digests and replays outside the
time window are counted drops, never an exception. (RFC 7860 publishes no test vectors for SHA-2; those keys
are checked against pysnmp here and against net-snmp's snmpd in tests/test_snmp.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters  # first: pysnmp's own import order
from pysnmp.proto.secmod.eso.priv import aes192, aes256  # noqa: I001
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from probes import snmp_usm as usm
from probes.snmp_wire import GET, RESPONSE, Reply, WireClient, WireError, _Engine, _Pending, decode_pdu, encode_pdu

ENGINE = bytes.fromhex("000000000000000000000002")  # RFC 3414 A.3's engine ID

PYSNMP_AUTH = {"md5": hmacmd5.HmacMd5(), "sha": hmacsha.HmacSha(),
               "sha224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
               "sha256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
               "sha384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
               "sha512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID)}
PYSNMP_AUTH_ID = {"md5": hmacmd5.HmacMd5.SERVICE_ID, "sha": hmacsha.HmacSha.SERVICE_ID,
                  "sha224": hmacsha2.HmacSha2.SHA224_SERVICE_ID, "sha256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
                  "sha384": hmacsha2.HmacSha2.SAH384_SERVICE_ID, "sha512": hmacsha2.HmacSha2.SHA512_SERVICE_ID}
PYSNMP_PRIV = {"des": des.Des(), "aes": aes.Aes(), "aes192": aes192.AesBlumenthal192(),
               "aes256": aes256.AesBlumenthal256(), "aes192c": aes192.Aes192(), "aes256c": aes256.Aes256()}
COMBINATIONS = [(a, p) for a in usm.AUTH for p in usm.PRIV]


# -- RFC 3414 Appendix A.3 ----------------------------------------------------------------------------------------

def test_rfc3414_a31_md5_password_to_key_and_localisation():
    ku = usm.password_to_key(b"maplesyrup", "md5")
    assert ku.hex() == "9faf3283884e92834ebc9847d8edd963"
    assert usm.localize_key(ku, ENGINE, "md5").hex() == "526f5eed9fcce26f8964c2930787d82b"


def test_rfc3414_a32_sha_password_to_key_and_localisation():
    ku = usm.password_to_key(b"maplesyrup", "sha1")
    assert ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm.localize_key(ku, ENGINE, "sha1").hex() == "6695febc9288e36282235fc7151f128497b38f3f"


# -- against pysnmp, every combination ------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", sorted(usm.AUTH))
def test_auth_keys_match_pysnmp(auth):
    ref = PYSNMP_AUTH[auth]
    ku = ref.hash_passphrase(b"auth-" + auth.encode() + b"-pw")
    expected = ref.localize_key(ku, univ.OctetString(ENGINE))
    user = usm.UsmUser(b"u", auth, b"auth-" + auth.encode() + b"-pw")
    assert user.auth_key(ENGINE) == bytes(expected)


@pytest.mark.parametrize("auth,priv", COMBINATIONS)
def test_priv_keys_and_ciphers_match_pysnmp(auth, priv):
    password = f"priv-{priv}-pw".encode()
    ref = PYSNMP_PRIV[priv]
    ref_key = ref.localize_key(PYSNMP_AUTH_ID[auth], ref.hash_passphrase(PYSNMP_AUTH_ID[auth], password),
                               univ.OctetString(ENGINE))
    user = usm.UsmUser(b"u", auth, b"auth-pw-123", priv, password)
    ours = user.priv_key(ENGINE)
    assert ours == bytes(ref_key)[:len(ours)]
    plain = usm.encode_scoped(ENGINE, b"", encode_pdu(GET, 42, ["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.3.0"]))
    boots, engine_time = 7, 123456
    # ours encrypts, pysnmp decrypts
    cipher, salt = usm.encrypt(plain, user, ENGINE, boots, engine_time)
    back = ref.decrypt_data(univ.OctetString(bytes(ref_key)), (boots, engine_time, univ.OctetString(salt)),
                            univ.OctetString(cipher))
    assert bytes(back)[:len(plain)] == plain
    # pysnmp encrypts, ours decrypts
    cipher2, salt2 = ref.encrypt_data(univ.OctetString(bytes(ref_key)), (boots, engine_time, None), plain)
    message = usm.V3Message(1, usm.FLAG_AUTH | usm.FLAG_PRIV, ENGINE, boots, engine_time, b"u", b"", 0,
                            bytes(salt2), bytes(cipher2))
    assert usm.decrypt(message, user)[:len(plain)] == plain


@pytest.mark.parametrize("auth", sorted(usm.AUTH))
def test_digests_match_pysnmp_and_one_flipped_bit_fails(auth):
    user = usm.UsmUser(b"ops", auth, b"auth-pw-123")
    scoped = usm.encode_scoped(ENGINE, b"ctx", encode_pdu(GET, 9, ["1.3.6.1.2.1.1.5.0"]))
    datagram, offset = usm.encode_v3(9, usm.FLAG_AUTH | usm.FLAG_REPORTABLE, ENGINE, 3, 1000, b"ops",
                                     user.mac_length(), b"", scoped)
    data = usm.authenticate(datagram, offset, user, ENGINE)
    message = usm.decode_v3(data)
    assert len(message.auth_params) == usm.AUTH[auth][1] and usm.verify(data, message, user)
    ref = PYSNMP_AUTH[auth]
    ref.authenticate_incoming_message(univ.OctetString(user.auth_key(ENGINE)),
                                      univ.OctetString(message.auth_params), data)  # raises when wrong
    for position in (0, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        try:
            assert not usm.verify(bytes(flipped), usm.decode_v3(bytes(flipped)), user)
        except WireError:
            pass  # the flip broke the BER itself
    other = usm.UsmUser(b"ops", auth, b"another-pw-9")
    assert not usm.verify(data, message, other)


def test_the_message_is_what_pysnmp_decodes_and_encodes():
    user = usm.UsmUser(b"noc", "sha256", b"auth-pw-123", "aes", b"priv-pw-123")
    scoped = usm.encode_scoped(ENGINE, b"vrf-a", encode_pdu(GET, 77, ["1.3.6.1.2.1.1.5.0"]))
    cipher, salt = usm.encrypt(scoped, user, ENGINE, 5, 600)
    datagram, offset = usm.encode_v3(77, user.flags | usm.FLAG_REPORTABLE, ENGINE, 5, 600, b"noc",
                                     user.mac_length(), salt, cipher)
    data = usm.authenticate(datagram, offset, user, ENGINE)
    msg, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b"" and int(msg["msgVersion"]) == 3
    header = msg["msgGlobalData"]
    assert int(header["msgID"]) == 77 and bytes(header["msgFlags"]) == bytes((7,))
    assert int(header["msgSecurityModel"]) == 3
    params, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert bytes(params["msgAuthoritativeEngineId"]) == ENGINE and int(params["msgAuthoritativeEngineBoots"]) == 5
    assert int(params["msgAuthoritativeEngineTime"]) == 600 and bytes(params["msgUserName"]) == b"noc"
    assert bytes(params["msgPrivacyParameters"]) == salt
    assert bytes(msg["msgData"]["encryptedPDU"]) == cipher
    # and the other way: pysnmp's encoding of the same fields decodes to the same message
    again = usm.decode_v3(encoder.encode(msg))
    assert again == usm.decode_v3(data)


# -- fuzz ---------------------------------------------------------------------------------------------------------

@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_ber_error(data):
    from probes.ber import BerError

    try:
        usm.decode_v3(b"\x30" + bytes((len(data) & 0x7F,)) + b"\x02\x01\x03" + data)
    except BerError:  # UsmError is one
        pass
    try:
        usm.decode_v3(data)
    except BerError:
        pass


USER = usm.UsmUser(b"noc", "sha", b"auth-pw-123", "aes", b"priv-pw-123")
PEER = ("127.0.0.1", 161)


def agent_response(msg_id: int, boots: int = 9, engine_time: int = 20_000, user: usm.UsmUser = USER) -> bytes:
    """An authPriv Response such as an agent sends."""
    from probes.snmp_wire import _integer, _oid, _tlv  # the same BER pieces the codec uses

    binds = _tlv(0x30, _tlv(0x30, _oid("1.3.6.1.2.1.1.5.0") + _tlv(0x04, b"router-1")))
    pdu = _tlv(RESPONSE, _integer(msg_id) + _integer(0) + _integer(0) + binds)
    scoped = usm.encode_scoped(ENGINE, b"", pdu)
    cipher, salt = usm.encrypt(scoped, user, ENGINE, boots, engine_time)
    datagram, offset = usm.encode_v3(msg_id, usm.FLAG_AUTH | usm.FLAG_PRIV, ENGINE, boots, engine_time,
                                     user.name, user.mac_length(), salt, cipher)
    return usm.authenticate(datagram, offset, user, ENGINE)


def deliver(datagrams: list[bytes], msg_id: int = 1001, engine: tuple[int, int] = (9, 20_000)):
    """Feed datagrams to a client waiting for ``msg_id``; (the result or None, the client's drop counts)."""

    async def go():
        client = WireClient()
        client._engines[PEER] = _Engine(ENGINE, engine[0], engine[1], time.monotonic(), engine[1])
        future = asyncio.get_running_loop().create_future()
        client._pending[msg_id] = _Pending(PEER, 3, b"", future, USER, msg_id)
        for data in datagrams:
            client._received(data, PEER)  # must never raise
        return (future.result() if future.done() else None), dict(client.dropped_by)

    return asyncio.run(go())


def test_a_good_answer_is_accepted_and_decrypted():
    got, drops = deliver([agent_response(1001)])
    assert drops == {} and got[0] == "response" and got[1].binds == [("1.3.6.1.2.1.1.5.0", "router-1")]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 400), st.integers(0, 7))
def test_truncated_and_bit_flipped_answers_are_counted_drops(cut, bit):
    good = agent_response(1001)
    position = cut % len(good)
    flipped = bytearray(good)
    flipped[position] ^= 1 << bit
    got, drops = deliver([good[:cut] if cut < len(good) else good[:-1], bytes(flipped)])
    if got is not None:  # a flip outside what the digest covers cannot happen: every octet is covered
        pytest.fail(f"a corrupted answer was accepted: flip at {position}")
    assert sum(drops.values()) == 2 and set(drops) <= {"malformed", "wrong_digest", "unmatched"}, drops


def test_a_wrong_key_a_stranger_and_a_replay_are_dropped_by_reason():
    wrong_key = agent_response(1001, user=usm.UsmUser(b"noc", "sha", b"not-the-key", "aes", b"priv-pw-123"))
    wrong_priv = agent_response(1001, user=usm.UsmUser(b"noc", "sha", b"auth-pw-123", "aes", b"not-the-priv"))
    replay = agent_response(1001, boots=9, engine_time=20_000 - 10_000)  # an old message of this boot
    old_boot = agent_response(1001, boots=8, engine_time=20_000)
    other_id = agent_response(1002)
    got, drops = deliver([wrong_key, wrong_priv, replay, old_boot, other_id])
    assert got is None
    assert drops == {"wrong_digest": 1, "decryption_error": 1, "not_in_time_window": 2, "unmatched": 1}, drops


def test_an_unauthenticated_response_to_an_authenticated_request_is_dropped():
    from probes.snmp_wire import _integer, _tlv

    pdu = _tlv(RESPONSE, _integer(1001) + _integer(0) + _integer(0) + _tlv(0x30, b""))
    datagram, _ = usm.encode_v3(1001, 0, ENGINE, 9, 20_000, b"noc", 0, b"", usm.encode_scoped(ENGINE, b"", pdu))
    got, drops = deliver([bytes(datagram)])
    assert got is None and drops == {"unauthenticated": 1}


def test_keys_never_show_in_repr_or_reasons():
    text = repr(USER)
    assert "auth-pw-123" not in text and "priv-pw-123" not in text
    assert hashlib.sha1(b"x").hexdigest() not in text
    assert isinstance(Reply(error="x"), Reply)
    _ = decode_pdu  # the PDU decoder is shared with v1/v2c (tests/test_snmp_wire.py)
