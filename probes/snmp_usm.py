"""SNMPv3's User-based Security Model (RFC 3414) for the wire codec: keys, digests, privacy and the message.

What it implements, and from what:

- **Keys.** Password to key (RFC 3414 A.2: the password repeated to 1 MiB, hashed) and localisation to an
  engine ID (``H(Ku || engineID || Ku)``), with MD5, SHA-1 and the SHA-2 family (RFC 7860 uses the same
  algorithms with its hash). Both are cached: a password's key per (hash, password), a localised key per
  (hash, key, engineID), so the 1 MiB hash runs once per user and the localisation once per agent engine.
- **Authentication.** HMAC-MD5-96 and HMAC-SHA-96 (RFC 3414), HMAC-SHA-2 (RFC 7860: SHA-224/128,
  SHA-256/192, SHA-384/256, SHA-512/384 bits of MAC), by the standard library's ``hmac`` (OpenSSL).
- **Privacy.** DES-CBC (RFC 3414 8.1.1: the localised key's first 8 octets as key, the next 8 as pre-IV,
  salt = engineBoots || a local counter), AES-128-CFB (RFC 3826: IV = engineBoots || engineTime || salt),
  and AES-192/256-CFB. Where the localised key is shorter than AES-192/256 need (MD5, SHA-1, SHA-224 for
  256) it is extended one of two ways, both tested against net-snmp's snmpd:
  ``aes192``/``aes256`` the *Blumenthal* way (draft-blumenthal-aes-usm-04: append ``H(key)``), which is
  net-snmp's ``AES-192``/``AES-256``; ``aes192c``/``aes256c`` the *Reeder* way
  (draft-reeder-snmpv3-usm-3desede: append ``localise(password_to_key(key))``), which is Cisco's and
  net-snmp's ``AES-192-C``/``AES-256-C``. Ciphers come from ``cryptography``.
- **The message** (RFC 3412 6): header, the USM security parameters, a plaintext or encrypted scoped PDU;
  the offset of the authentication parameters is kept so a digest is computed and checked in place.

Nothing here logs or returns a key or a password; errors name what failed (the protocol, the user).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import random
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # CFB moved to the decrepit modes in cryptography 47 (and leaves the primitives later)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - cryptography 43..46
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from . import ber

__all__ = ["AUTH", "PRIV", "UsmUser", "UsmError", "V3Message", "password_to_key", "localize_key", "priv_key",
           "encode_v3", "decode_v3", "authenticate", "verify", "encrypt", "decrypt", "REPORT_REASONS",
           "FLAG_AUTH", "FLAG_PRIV", "FLAG_REPORTABLE", "REPORT"]

#: auth protocol -> (hash name, MAC length in octets)
AUTH = {"md5": ("md5", 12), "sha": ("sha1", 12), "sha224": ("sha224", 16), "sha256": ("sha256", 24),
        "sha384": ("sha384", 32), "sha512": ("sha512", 48)}
#: priv protocol -> key length in octets
PRIV = {"des": 16, "aes": 16, "aes192": 24, "aes256": 32, "aes192c": 24, "aes256c": 32}
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
REPORT = 0xA8
USM = 3
MAX_SIZE = 65507

#: usmStats counters an agent reports, and what each means for the poller
REPORT_REASONS = {
    "1.3.6.1.6.3.15.1.1.1.0": ("unsupported_security_level", "the agent does not allow this security level for "
                               "user {user!r} (usmStatsUnsupportedSecLevels)"),
    "1.3.6.1.6.3.15.1.1.2.0": ("not_in_time_window", "still outside the agent's time window after resynchronising "
                               "(usmStatsNotInTimeWindows)"),
    "1.3.6.1.6.3.15.1.1.3.0": ("unknown_user", "the agent does not know user {user!r} (usmStatsUnknownUserNames)"),
    "1.3.6.1.6.3.15.1.1.4.0": ("unknown_engine_id", "the agent does not accept engine ID {engine} "
                               "(usmStatsUnknownEngineIDs)"),
    "1.3.6.1.6.3.15.1.1.5.0": ("wrong_digest", "wrong authentication key or protocol ({auth}) for user {user!r} "
                               "(usmStatsWrongDigests)"),
    "1.3.6.1.6.3.15.1.1.6.0": ("decryption_error", "the agent could not decrypt the request: wrong privacy key or "
                               "protocol ({priv}) for user {user!r} (usmStatsDecryptionErrors)"),
    "1.3.6.1.6.3.12.1.1.4.0": ("unavailable_context", "the agent cannot serve context {context!r} now "
                               "(snmpUnavailableContexts)"),
    "1.3.6.1.6.3.12.1.1.5.0": ("unknown_context", "the agent has no context {context!r} (snmpUnknownContexts)"),
    "1.3.6.1.6.3.11.2.1.1.0": ("unknown_security_model", "the agent does not support the User-based Security Model "
                               "(snmpUnknownSecurityModels)"),
    "1.3.6.1.6.3.11.2.1.2.0": ("invalid_message", "the agent found the request invalid (snmpInvalidMsgs)"),
    "1.3.6.1.6.3.11.2.1.3.0": ("unknown_pdu_handler", "the agent has no handler for the request "
                               "(snmpUnknownPDUHandlers)"),
}


class UsmError(ber.BerError):
    """A v3 message that does not decode, authenticate or decrypt (a BER error too: one ``except`` for both)."""


# -- keys -------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: the password repeated to 1,048,576 octets, hashed."""
    if not password:
        raise UsmError("an empty SNMPv3 password")
    repeated = password * (1048576 // len(password) + 1)
    return hashlib.new(hash_name, repeated[:1048576]).digest()


@lru_cache(maxsize=65536)
def localize_key(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """RFC 3414 2.6: ``H(Ku || engineID || Ku)``."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


@lru_cache(maxsize=65536)
def priv_key(password: bytes, engine_id: bytes, hash_name: str, length: int, reeder: bool = False) -> bytes:
    """The localised privacy key, extended to ``length`` octets where the hash is too short: by appending
    ``H(key)`` (Blumenthal), or ``localise(password_to_key(key))`` (Reeder, ``reeder=True``)."""
    key = localize_key(password_to_key(password, hash_name), engine_id, hash_name)
    if reeder:
        while len(key) < length:
            key += localize_key(password_to_key(key, hash_name), engine_id, hash_name)
    else:
        while len(key) < length:
            key += hashlib.new(hash_name, key).digest()
    return key[:length]


@dataclass(frozen=True, slots=True)
class UsmUser:
    """A user's security settings (the passwords stay inside; ``repr`` never shows them)."""

    name: bytes
    auth: str | None = None
    auth_password: bytes = b""
    priv: str | None = None
    priv_password: bytes = b""

    def __repr__(self) -> str:
        return f"UsmUser({self.name!r}, auth={self.auth}, priv={self.priv})"

    @property
    def flags(self) -> int:
        """The msgFlags bits for this user's security level."""
        return (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)

    @property
    def level(self) -> str:
        """The security level: noAuthNoPriv, authNoPriv or authPriv."""
        return "authPriv" if self.priv else "authNoPriv" if self.auth else "noAuthNoPriv"

    def auth_key(self, engine_id: bytes) -> bytes:
        """The authentication key localized to ``engine_id`` (RFC 3414 A.2)."""
        hash_name = AUTH[self.auth][0]  # type: ignore[index]
        return localize_key(password_to_key(self.auth_password, hash_name), engine_id, hash_name)

    def priv_key(self, engine_id: bytes) -> bytes:
        """The privacy key localized to ``engine_id`` (extended for AES-192/256 and 3DES as the agent expects)."""
        return priv_key(self.priv_password, engine_id, AUTH[self.auth][0], PRIV[self.priv],  # type: ignore[index]
                        reeder=self.priv.endswith("c"))  # type: ignore[union-attr]

    def mac_length(self) -> int:
        """The length of the truncated HMAC for this user's protocol, 0 without authentication."""
        return AUTH[self.auth][1] if self.auth else 0


# -- BER pieces (probes/ber.py) ----------------------------------------------------------------------------------

_length, _tlv, _integer, _header, _expect, _octets = ber.length, ber.tlv, ber.integer, ber.header, ber.expect, ber.octets


def _int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    return ber.int_value(data, pos, end, max_octets=5)  # msgID, boots, time: 31 bits


# -- the message ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class V3Message:
    """A decoded v3 message. ``scoped`` is the plaintext scoped PDU, or the ciphertext when ``FLAG_PRIV``."""

    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_params: bytes
    auth_offset: int  # where auth_params sits in the datagram (zeroed to compute the digest)
    priv_params: bytes
    scoped: bytes


def encode_v3(msg_id: int, flags: int, engine_id: bytes, boots: int, engine_time: int, user: bytes,
              mac_length: int, priv_params: bytes, scoped: bytes) -> tuple[bytearray, int]:
    """The datagram with the authentication parameters zeroed, and their offset (for :func:`authenticate`).
    ``scoped`` is the encoded scoped PDU, or its ciphertext when ``flags`` has :data:`FLAG_PRIV`."""
    header = _tlv(0x30, _integer(msg_id) + _integer(MAX_SIZE) + _tlv(0x04, bytes((flags,))) + _integer(USM))
    before_mac = _tlv(0x04, engine_id) + _integer(boots) + _integer(engine_time) + _tlv(0x04, user)
    mac_head = bytes((0x04,)) + _length(mac_length)
    usm_body = before_mac + mac_head + bytes(mac_length) + _tlv(0x04, priv_params)
    usm_seq_head = bytes((0x30,)) + _length(len(usm_body))
    usm_octets_head = bytes((0x04,)) + _length(len(usm_seq_head) + len(usm_body))
    data = scoped if not flags & FLAG_PRIV else _tlv(0x04, scoped)
    body = _integer(3) + header + usm_octets_head + usm_seq_head + usm_body + data
    head = bytes((0x30,)) + _length(len(body))
    offset = (len(head) + len(_integer(3)) + len(header) + len(usm_octets_head) + len(usm_seq_head)
              + len(before_mac) + len(mac_head))
    return bytearray(head + body), offset


def decode_v3(data: bytes) -> V3Message:
    """Parse a v3 message's header and security parameters; raises :class:`UsmError` or another
    :class:`probes.ber.BerError`, nothing else."""
    end = len(data)
    pos, end = _expect(data, 0, end, 0x30)
    version, pos = _int(data, pos, end)
    if version != 3:
        raise UsmError("not an SNMPv3 message")
    gpos, gend = _expect(data, pos, end, 0x30)
    msg_id, gpos = _int(data, gpos, gend)
    _max_size, gpos = _int(data, gpos, gend)
    flags_octets, gpos = _octets(data, gpos, gend)
    model, gpos = _int(data, gpos, gend)
    if len(flags_octets) != 1 or model != USM:
        raise UsmError("not a USM message")
    flags = flags_octets[0]
    if flags & FLAG_PRIV and not flags & FLAG_AUTH:
        raise UsmError("privacy without authentication")
    spos, send = _expect(data, gend, end, 0x04)
    upos, uend = _expect(data, spos, send, 0x30)
    engine_id, upos = _octets(data, upos, uend)
    boots, upos = _int(data, upos, uend)
    engine_time, upos = _int(data, upos, uend)
    user, upos = _octets(data, upos, uend)
    astart, upos = _expect(data, upos, uend, 0x04)
    auth_params = data[astart:upos]
    priv_params, upos = _octets(data, upos, uend)
    if flags & FLAG_PRIV:
        scoped, _ = _octets(data, send, end)
    else:
        tag, start, stop = _header(data, send, end)
        if tag != 0x30:
            raise UsmError("no scoped PDU")
        scoped = data[send:stop]
    if len(engine_id) > 32 or len(user) > 32 or not (0 <= boots and 0 <= engine_time):
        raise UsmError("bad security parameters")
    return V3Message(msg_id, flags, engine_id, boots, engine_time, user, auth_params, astart, priv_params, scoped)


def encode_scoped(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x04, context_engine_id) + _tlv(0x04, context_name) + pdu)


def decode_scoped(scoped: bytes) -> tuple[bytes, bytes, int]:
    """(contextEngineID, contextName, offset of the PDU) of a plaintext scoped PDU (trailing padding ignored)."""
    pos, end = _expect(scoped, 0, len(scoped), 0x30)
    engine_id, pos = _octets(scoped, pos, end)
    name, pos = _octets(scoped, pos, end)
    return engine_id, name, pos


# -- authentication ---------------------------------------------------------------------------------------------

def authenticate(datagram: bytearray, offset: int, user: UsmUser, engine_id: bytes) -> bytes:
    """Fill in the MAC of an encoded message (its authentication parameters zeroed at ``offset``)."""
    hash_name, length = AUTH[user.auth]  # type: ignore[index]
    mac = hmac.digest(user.auth_key(engine_id), bytes(datagram), hash_name)[:length]
    datagram[offset:offset + length] = mac
    return bytes(datagram)


def verify(datagram: bytes, message: V3Message, user: UsmUser) -> bool:
    """True when the message's MAC is right for ``user`` at the message's engine."""
    hash_name, length = AUTH[user.auth]  # type: ignore[index]
    if len(message.auth_params) != length:
        return False
    zeroed = bytearray(datagram)
    zeroed[message.auth_offset:message.auth_offset + length] = bytes(length)
    mac = hmac.digest(user.auth_key(message.engine_id), bytes(zeroed), hash_name)[:length]
    return hmac.compare_digest(mac, message.auth_params)


# -- privacy ----------------------------------------------------------------------------------------------------

_salts = itertools.count(random.SystemRandom().randrange(1 << 62))


def encrypt(plaintext: bytes, user: UsmUser, engine_id: bytes, boots: int, engine_time: int) -> tuple[bytes, bytes]:
    """(ciphertext, msgPrivacyParameters) of a scoped PDU."""
    key = user.priv_key(engine_id)
    if user.priv == "des":
        salt = boots.to_bytes(4, "big") + (next(_salts) & 0xFFFFFFFF).to_bytes(4, "big")
        iv = bytes(a ^ b for a, b in zip(key[8:16], salt))
        padded = plaintext + bytes(-len(plaintext) % 8)
        enc = Cipher(TripleDES(key[:8] * 3), modes.CBC(iv)).encryptor()
        return enc.update(padded) + enc.finalize(), salt
    salt = (next(_salts) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
    enc = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return enc.update(plaintext) + enc.finalize(), salt


def decrypt(message: V3Message, user: UsmUser) -> bytes:
    """The plaintext scoped PDU of an encrypted message; raises :class:`UsmError` when it cannot be."""
    key = user.priv_key(message.engine_id)
    salt = message.priv_params
    if len(salt) != 8:
        raise UsmError("bad privacy parameters")
    if user.priv == "des":
        if len(message.scoped) % 8:
            raise UsmError("DES ciphertext is not a multiple of 8 octets")
        iv = bytes(a ^ b for a, b in zip(key[8:16], salt))
        dec = Cipher(TripleDES(key[:8] * 3), modes.CBC(iv)).decryptor()
    else:
        iv = message.boots.to_bytes(4, "big") + message.time.to_bytes(4, "big") + salt
        dec = Cipher(algorithms.AES(key), CFB(iv)).decryptor()
    plain = dec.update(message.scoped) + dec.finalize()
    try:
        decode_scoped(plain)
    except ber.BerError:
        raise UsmError("decryption gave no scoped PDU (wrong privacy key or protocol)") from None
    return plain


def random_msg_id() -> int:
    return int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
