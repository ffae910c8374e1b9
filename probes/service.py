"""What the service probes (SIP, HTTP, TCP, DNS, SMTP, WebSocket) share: their result, phase timing, TLS.

A service result's evidence: the service answered as it must (good); it was asked and did not (bad: a SIP
stack that is dead while the host answers ping is an outage of a phone line); or nothing could be asked (no
evidence: the target's name did not resolve, a local socket error), as ICMP's "nothing sent".
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .base import Evidence, ProbeResult, Samples, fmt_ms

__all__ = ["ServiceResult", "Phases", "TlsInfo", "tls_info", "client_context", "resolve", "ServiceFailure",
           "unverified_tls_info",
           "open_tcp", "describe_oserror", "read_line"]


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """The negotiated TLS session and the peer's leaf certificate."""

    version: str | None
    cipher: str | None
    subject: str | None
    issuer: str | None
    not_after: float | None  # unix seconds
    verified: bool
    verify_error: str | None = None

    def unverified(self, verify_error: str) -> "TlsInfo":
        """This session's facts, marked as failing verification with ``verify_error``."""
        return replace(self, verified=False, verify_error=verify_error)

    def days_left(self, now: float) -> float | None:
        """Days until the certificate expires at ``now`` (negative once expired), or None."""
        return None if self.not_after is None else (self.not_after - now) / 86400


@dataclass(frozen=True, slots=True)
class ServiceResult(ProbeResult):
    """One service check. ``response``: seconds to the answer that proves the service (SIP's final response,
    HTTP's last body byte, DNS's answer, the SMTP EHLO reply, the WebSocket pong); ``phases``: the steps'
    durations (resolve, connect, tls, first_byte, ...); ``attempted``: False when nothing reached the wire."""

    response: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    attempted: bool = True
    tls: TlsInfo | None = None
    #: the answer in a few words (``SIP/2.0 200 OK``, ``HTTP/1.1 200``, ``NOERROR 1 answer``) and facts worth
    #: keeping (Server/User-Agent, the negotiated versions, the answers)
    status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, probe: str, target: str, started: float, duration: float, ok: bool, reason: str | None,
                    sent: int | None, received: int | None, samples: dict[str, Any]) -> "ServiceResult | None":
        """A stored check back as a result: its response time and certificate (None without a response time)."""
        if "response" not in samples:
            return None
        days = samples.get("tls_days_left")
        not_after = None if days is None else started + days * 86400
        tls = None if days is None else TlsInfo(None, None, None, None, not_after, True)
        return cls(probe, target, "", started, duration, ok, reason, response=samples.get("response"), tls=tls)

    # -- the result interface ------------------------------------------------------------------
    def evidence(self) -> Evidence:
        """Good, bad or no evidence, with the reason."""
        if self.ok:
            return Evidence("good")
        return Evidence("bad" if self.attempted else "none", self.reason)

    @property
    def tls_days_left(self) -> float | None:
        """Days until the peer's certificate expires, or None without TLS."""
        return None if self.tls is None else self.tls.days_left(self.started)

    def samples(self) -> Samples:
        """The response time (the service probes send no packet trains)."""
        return Samples(response=self.response if self.ok else None, tls_days_left=self.tls_days_left)

    def record_samples(self) -> dict[str, Any]:
        """The response time and certificate for the rollups, and the answer (``SIP/2.0 503 ...``, its Server) as
        the cycle's evidence."""
        out: dict[str, Any] = {}
        if self.status:
            out["status"] = self.status[:120]
        if not self.ok and self.details.get("server"):
            out["server"] = str(self.details["server"])[:120]
        if self.ok and self.response is not None:
            out["response"] = round(self.response, 7)
        if self.tls_days_left is not None:
            out["tls_days_left"] = round(self.tls_days_left, 4)
        return out

    def metrics(self) -> dict[str, float]:
        """The probe's figures for the exporter: response time, certificate expiry, each phase's duration
        (``phase_seconds:connect``) and the negotiated TLS version (``tls_version:TLSv1.3``, value 1)."""
        out = {"duration_seconds": self.duration}
        if self.response is not None and self.ok:
            out["response_seconds"] = self.response
        for name, value in self.phases.items():
            out[f"phase_seconds:{name}"] = value
        if self.tls is not None:
            if self.tls.not_after is not None:
                out["tls_cert_not_after_seconds"] = self.tls.not_after
            if self.tls.version:
                out[f"tls_version:{self.tls.version}"] = 1.0
        return out

    def lines(self) -> list[str]:
        """The evidence in words, for ``slawatch probe``."""
        out = []
        if self.status:
            out.append(f"answer: {self.status}")
        if self.phases:
            out.append("phases: " + ", ".join(f"{name} {fmt_ms(value)}" for name, value in self.phases.items()))
        if self.response is not None:
            out.append(f"response time {fmt_ms(self.response)}")
        if self.tls is not None:
            t = self.tls
            expiry = "unknown" if t.not_after is None else (
                datetime.fromtimestamp(t.not_after, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
                + f" ({self.tls_days_left:.1f} days left)")
            out.append(f"tls {t.version or '-'} {t.cipher or ''}".rstrip()
                       + f"; certificate {t.subject or '-'} issued by {t.issuer or '-'}, expires {expiry}; "
                       + ("verified" if t.verified else f"NOT verified ({t.verify_error or 'verification off'})"))
        for key, value in self.details.items():
            out.append(f"{key}: {value}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for JSON output)."""
        out = ProbeResult.to_dict(self)
        out["tls_days_left"] = self.tls_days_left
        return out


class ServiceFailure(Exception):
    """A probe step failed; ``attempted`` says whether anything reached the wire (bad evidence) or not (none)."""

    def __init__(self, reason: str, attempted: bool = True, tls: TlsInfo | None = None):
        super().__init__(reason)
        self.reason, self.attempted, self.tls = reason, attempted, tls


class Phases:
    """Durations of a probe's steps on the monotonic clock."""

    def __init__(self) -> None:
        self.t0 = self.mark = time.perf_counter()
        self.values: dict[str, float] = {}

    def done(self, name: str) -> float:
        """End the phase ``name`` now; returns the time since the start."""
        now = time.perf_counter()
        self.values[name] = self.values.get(name, 0.0) + now - self.mark
        self.mark = now
        return now - self.t0

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.t0

    def untimed(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, its time left out (building a TLS context on a probe's first check)."""
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.exclude(time.perf_counter() - t0)

    def exclude(self, seconds: float) -> None:
        """Leave out time the probe spent on itself (parsing a certificate), not waiting on the peer."""
        self.t0 += seconds
        self.mark += seconds


def _literal(host: str, port: int, family: int) -> tuple[int, tuple] | None:
    """``host`` as a socket address when it is an IP literal of an allowed family, else None."""
    for fam, sockaddr in ((socket.AF_INET, (host, port)), (socket.AF_INET6, (host, port, 0, 0))):
        if family in (0, fam):
            try:
                socket.inet_pton(fam, host)
            except OSError:
                continue
            return fam, sockaddr
    return None


async def resolve(host: str, port: int, family: int = 0, kind: int = socket.SOCK_STREAM) -> tuple[int, tuple]:
    """The first address of ``host``; a failure is no evidence. An IP literal needs no lookup: asyncio's
    getaddrinfo runs in a thread, which added about 3 ms to every check's response time."""
    literal = _literal(host, port, family)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=kind)
    except socket.gaierror as exc:
        raise ServiceFailure(f"cannot resolve {host}: {exc.strerror}", attempted=False) from None
    if not infos:
        raise ServiceFailure(f"cannot resolve {host}: no address", attempted=False)
    fam, _, _, _, sockaddr = infos[0]
    return fam, sockaddr


async def read_line(reader: asyncio.StreamReader, deadline: float, step: str, waiting_for: str,
                    closed: str = "connection closed") -> str:
    """One line (without its end) before ``deadline`` (the loop's clock); a ServiceFailure naming ``step`` and
    what it waited for otherwise."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise ServiceFailure(f"{step}: {waiting_for} in time")
    try:
        raw = await asyncio.wait_for(reader.readline(), left)
    except asyncio.TimeoutError:
        raise ServiceFailure(f"{step}: {waiting_for} in time") from None
    except (OSError, ValueError) as exc:
        raise ServiceFailure(f"{step}: {exc}") from None
    if not raw:
        raise ServiceFailure(f"{step}: {closed}")
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def describe_oserror(exc: OSError) -> str:
    """``Connection refused`` rather than asyncio's ``Connect call failed ('127.0.0.1', 5060)``."""
    import os

    return os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))


@functools.lru_cache(maxsize=64)
def client_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """A client context: verifying against ``ca_file`` (or the system store), or not at all (still reading the
    certificate for its expiry). One per (CA file, verify), shared: loading the system store costs milliseconds,
    and a context is safe to share between connections."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _name(name: Any) -> str:
    return name.rfc4514_string()


def tls_info(ssl_object: Any, verified: bool, verify_error: str | None = None) -> TlsInfo:
    """The session's version and cipher and the leaf certificate's subject, issuer and notAfter (from its DER, so
    also when it was not verified)."""
    from cryptography import x509  # here, not at import: the config loads without it

    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    subject = issuer = None
    not_after = None
    if der:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = _name(cert.subject), _name(cert.issuer)
        not_after = cert.not_valid_after_utc.timestamp()
    return TlsInfo(ssl_object.version(), cipher[0] if cipher else None, subject, issuer, not_after, verified,
                   verify_error)


async def open_tcp(host: str, port: int, timeout: float, phases: Phases, *, family: int = 0,
                   tls: ssl.SSLContext | None = None, server_name: str | None = None,
                   fetch_unverified: bool = True) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, TlsInfo | None]:
    """Resolve, connect and (with ``tls``) handshake, each phase timed. A certificate that fails verification is
    a failure whose reason says why; with ``fetch_unverified`` the certificate is fetched once more without
    verification so its expiry is still evidence (``ServiceFailure.tls``)."""
    fam, sockaddr = await resolve(host, port, family)
    phases.done("resolve")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(sockaddr[0], sockaddr[1], family=fam),
                                                timeout)
    except asyncio.TimeoutError:
        raise ServiceFailure(f"connect to {sockaddr[0]} port {port}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ServiceFailure(f"connect to {sockaddr[0]} port {port}: {describe_oserror(exc)}") from None
    phases.done("connect")
    if tls is None:
        return reader, writer, None
    name = server_name or host
    try:
        await asyncio.wait_for(writer.start_tls(tls, server_hostname=name), max(timeout - phases.elapsed(), 0.001))
    except ssl.SSLCertVerificationError as exc:
        writer.transport.abort()
        info = await _unverified_info(sockaddr, fam, name, timeout, exc.verify_message) if fetch_unverified else None
        raise ServiceFailure(f"TLS certificate not valid for {name}: {exc.verify_message}", tls=info) from None
    except asyncio.TimeoutError:
        writer.transport.abort()
        raise ServiceFailure(f"TLS handshake with {name}: no answer within {timeout:g} s") from None
    except (ssl.SSLError, OSError) as exc:
        writer.transport.abort()
        raise ServiceFailure(f"TLS handshake with {name}: {getattr(exc, 'reason', None) or exc}") from None
    phases.done("tls")
    t0 = time.perf_counter()
    info = tls_info(writer.get_extra_info("ssl_object"), tls.verify_mode != ssl.CERT_NONE)
    phases.exclude(time.perf_counter() - t0)
    return reader, writer, info


async def _unverified_info(sockaddr: tuple, family: int, name: str, timeout: float,
                           verify_error: str) -> TlsInfo | None:
    """The peer's certificate fetched without verification (it failed with ``verify_error``), or None."""
    ctx = client_context(None, verify=False)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(sockaddr[0], sockaddr[1], family=family, ssl=ctx, server_hostname=name), timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return None
    try:
        return tls_info(writer.get_extra_info("ssl_object"), False, verify_error)
    finally:
        writer.transport.abort()


async def unverified_tls_info(host: str, port: int, name: str, timeout: float, verify_error: str) -> TlsInfo | None:
    """The certificate of a peer that failed verification, fetched once more without it, so its expiry is still
    evidence; None when that fails too."""
    try:
        family, sockaddr = await resolve(host, port)
    except ServiceFailure:
        return None
    return await _unverified_info(sockaddr, family, name, timeout, verify_error)
