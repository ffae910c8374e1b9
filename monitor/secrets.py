"""Redaction of secrets in every form an upstream can echo them.

An upstream that answers 401 may echo the request back: the Authorization header as ``Basic <base64 of
user:token>``, a bearer token, the token URL-encoded in a query string, JSON-escaped in a body, or hex. One
function, :func:`redact`, removes all of them; the log filter (:mod:`monitor.logs`), every sink's errors
(:mod:`monitor.tickets.sinks.base`), the ticket ledger's stored errors and ``slawatch tickets show`` use it.

Forms found: the secret as it is, percent-encoded (however much of it: any run with escapes that decodes to
hold it), JSON-escaped, hex (either case), and any base64 or base64url token (padded or not) whose decoded bytes contain the secret at any offset
(``user:token`` in Basic auth, or the secret inside a longer encoded blob).

May import: nothing of slawatch.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote_plus

__all__ = ["redact", "forms", "MASK"]

MASK = "***"
#: a run of base64 or base64url characters long enough to hold a secret of 3 bytes or more
_B64 = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")
#: a run holding percent escapes (a query string's value, a path segment), however much of it is encoded
_PCT = re.compile(r"[^\s\"'<>&=?/]*%[0-9A-Fa-f]{2}[^\s\"'<>&=?/]*")


def forms(secret: str) -> set[str]:
    """The plain-text forms of ``secret`` an upstream may echo (base64 is found by decoding, not listed)."""
    raw = secret.encode()
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], raw.hex(),
           raw.hex().upper()}
    return {f for f in out if f}


def _decoded(token: str) -> list[bytes]:
    body = token.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    out = []
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            out.append(decode(padded))
        except (binascii.Error, ValueError):
            continue
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret (3 characters or more) replaced by ``***``."""
    secrets = [s for s in secrets if s and len(s) >= 3]
    if not secrets or not text:
        return text
    plain = sorted({f for s in secrets for f in forms(s)}, key=len, reverse=True)
    for f in plain:
        if f in text:
            text = text.replace(f, MASK)
    raws = [s.encode() for s in secrets]

    def encoded(m: re.Match[str]) -> str:
        token = m.group(0)
        for data in _decoded(token):
            if any(r in data for r in raws):
                return MASK
        return token

    def percent(m: re.Match[str]) -> str:
        token = m.group(0)
        return MASK if any(sec in unquote_plus(token) for sec in secrets) else token

    if "%" in text:
        text = _PCT.sub(percent, text)
    return _B64.sub(encoded, text)
