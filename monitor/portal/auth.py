"""The portal's access: argon2id password hashes, HMAC-signed session cookies, CSRF tokens bound to a cookie,
login rate limiting per client and user, and API tokens (their SHA-256 in the config)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Principal", "Sessions", "LoginLimiter", "hash_password", "verify_password", "token_principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks, and the contracts they may read."""

    name: str
    contracts: frozenset[str]


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id, RFC 9106's second recommended parameters (64 MiB, 3 passes)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` in PHC string form (what ``portal.users[].password_hash`` holds)."""
    return str(_hasher().hash(password))


_DUMMY: list[str] = []


def _dummy() -> str:
    """A hash verified against when the user is unknown, so an unknown name costs what a known one does."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches the hash (constant work whether or not the user exists)."""
    from argon2.exceptions import Argon2Error, InvalidHashError

    try:
        return bool(_hasher().verify(password_hash or _dummy(), password)) and password_hash is not None
    except (Argon2Error, InvalidHashError):
        return False


def token_principal(token: str, tokens: list) -> Principal | None:
    """The API token's principal: its SHA-256 compared (in constant time) with each configured one."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    for t in tokens:
        if hmac.compare_digest(digest, t.sha256):
            return Principal(f"token:{t.name}", frozenset(t.contracts))
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Sessions:
    """Session cookies: ``user.expires.nonce.signature`` signed with HMAC-SHA256 of the portal's secret."""

    def __init__(self, secret: str, lifetime: float):
        self.key = hashlib.sha256(b"slawatch-portal-session\0" + secret.encode()).digest()
        self.lifetime = lifetime

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self.key, text.encode(), hashlib.sha256).digest())

    def make(self, user: str, now: float | None = None) -> str:
        """A cookie value for ``user``, valid for the session lifetime."""
        # the name encoded: a user name may hold dots (portal.users[].name is an id of letters, digits, . _ : -)
        body = f"{_b64(user.encode())}.{int((now or time.time()) + self.lifetime)}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def user(self, cookie: str | None, now: float | None = None) -> str | None:
        """The user a cookie was made for, if it is ours and not expired."""
        if not cookie or cookie.count(".") != 3:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        encoded, expires, _nonce = body.split(".")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except ValueError:
            return None

    def csrf(self, nonce: str) -> str:
        """The CSRF token for the form of a client whose CSRF cookie is ``nonce``."""
        return self._sign(f"csrf.{nonce}")

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        """Whether a posted form's token belongs to the client's cookie."""
        return bool(nonce and token) and hmac.compare_digest(self.csrf(nonce or ""), token or "")


class LoginLimiter:
    """At most ``attempts`` failed logins per (client address, user name) within ``window`` seconds."""

    def __init__(self, attempts: int, window: float, clock=time.monotonic):
        self.attempts, self.window, self.clock = attempts, window, clock
        self.failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self.failures.setdefault(key, deque())
        cutoff = self.clock() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self.failures[key]
            return deque()
        return q

    def blocked(self, client: str, user: str) -> bool:
        """Whether this client may not try this user (or any user: the client's total counts too) now."""
        return len(self._recent((client, user))) >= self.attempts or len(self._recent((client, "*"))) >= 4 * self.attempts

    def failed(self, client: str, user: str) -> None:
        """Count a failed login."""
        now = self.clock()
        for key in ((client, user), (client, "*")):
            self.failures.setdefault(key, deque()).append(now)
        if len(self.failures) > 100_000:  # bounded memory under a spray of names
            self.failures.clear()
