"""SIP OPTIONS (phone lines, voice gateways, SBCs) over UDP, TCP or TLS, as VoIP NOCs ping with sipsak or
Kamailio's dispatcher keepalives.

The request is a proper one (RFC 3261 8.1.1): Via with a ``z9hG4bK`` branch and ``rport``, Max-Forwards,
From with a tag, To, Call-ID, CSeq, Contact, User-Agent. A response matches on the Via branch, the Call-ID and
the CSeq. Over UDP the request is retransmitted on RFC 3261's non-INVITE client timer E (T1, doubling up to
T2; the doubling of timer A, capped) and a provisional response moves it to T2. The response time is from the
first send to the final response. Any final response proves by default that the SIP stack is alive (a 404 or
a 403 is an answering stack); ``valid_status`` narrows it, e.g. to make 5xx and 6xx bad.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import time
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .service import Phases, ServiceFailure, describe_oserror, ServiceResult, TlsInfo, client_context, open_tcp, resolve
from .settings import CaFile, NoControl, Port, PositiveDuration, ProbeSettings

__all__ = ["SipProbeConfig", "sip_probe", "build_options", "parse_response", "SipResponse"]

USER_AGENT = "slawatch-probe/1"
_COMPACT = {"v": "via", "i": "call-id", "f": "from", "t": "to", "l": "content-length", "m": "contact"}


def _status(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[1-6]([0-9]{2}|xx)", text) or text.startswith("1"):
        raise PydanticCustomError("slawatch", "must be a final SIP status such as 200 or a class such as 2xx")
    return text


class SipProbeConfig(ProbeSettings):
    """A SIP OPTIONS check: transport, port, Request-URI, statuses that prove the stack, T1/T2 and TLS."""

    transport: Literal["udp", "tcp", "tls"] = "udp"
    port: Port | None = None  # 5060, 5061 for TLS
    #: the Request-URI; ``sip:<address>:<port>`` by default
    uri: NoControl | None = Field(None, pattern=r"^sips?:[^\s]+$")
    from_user: str = Field("slawatch", pattern=r"^[A-Za-z0-9._~!$&'()*+,;=-]+$")
    #: final statuses that prove the stack alive: every final response by default
    valid_status: list[str] = Field(default_factory=lambda: ["2xx", "3xx", "4xx", "5xx", "6xx"])
    #: RFC 3261 T1 and T2 (UDP retransmission)
    t1: PositiveDuration = 0.5
    t2: PositiveDuration = 4.0
    verify: bool = True
    ca_file: CaFile | None = None
    server_name: NoControl | None = None

    @field_validator("valid_status", mode="before")
    @classmethod
    def _check_status(cls, value: Any) -> Any:
        return [_status(v) for v in value] if isinstance(value, list) else value

    @property
    def effective_port(self) -> int:
        """The port to use: the configured one, or 5060 (5061 over TLS)."""
        return self.port or (5061 if self.transport == "tls" else 5060)


class SipResponse:
    """A SIP response's status and headers (compact forms expanded)."""

    def __init__(self, code: int, phrase: str, headers: dict[str, list[str]]):
        self.code, self.phrase, self.headers = code, phrase, headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        values = self.headers.get(name)
        return values[0] if values else None


def parse_response(data: bytes) -> tuple[SipResponse, int] | None:
    """A response's status and headers, and the length of its head plus body; None when incomplete or not SIP."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("utf-8", "replace").split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", head[0])
    if not m:
        raise ValueError(f"not a SIP response: {head[0][:60]!r}")
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            last = next(reversed(headers))
            headers[last][-1] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.setdefault(_COMPACT.get(key, key), []).append(value.strip())
    length = int((headers.get("content-length") or ["0"])[0] or 0)
    total = end + 4 + length
    if len(data) < total:
        return None
    return SipResponse(int(m.group(1)), m.group(2), headers), total


def build_options(uri: str, transport: str, local: tuple[str, int], host: str, from_user: str, branch: str,
                  tag: str, call_id: str) -> bytes:
    """An RFC 3261 OPTIONS request from ``local`` for ``uri`` with the given branch, tag and Call-ID."""
    via_host = f"[{local[0]}]" if ":" in local[0] else local[0]
    proto = transport.upper()
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/{proto} {via_host}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@{via_host}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:{from_user}@{via_host}:{local[1]};transport={transport}>",
        "Accept: application/sdp",
        f"User-Agent: {USER_AGENT}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _matches(resp: SipResponse, branch: str, call_id: str) -> bool:
    via = resp.header("via") or ""
    cseq = resp.header("cseq") or ""
    return f"branch={branch}" in via and resp.header("call-id") == call_id and cseq.upper().endswith("OPTIONS")


def _status_ok(code: int, valid: list[str]) -> bool:
    text = str(code)
    return any(v == text or (v.endswith("xx") and v[0] == text[0]) for v in valid)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


async def _over_udp(sockaddr: tuple, family: int, cfg: SipProbeConfig, ids: tuple[str, str, str], uri: str,
                    phases: Phases, details: dict[str, Any]) -> SipResponse:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Udp, remote_addr=sockaddr[:2], family=family)
    try:
        local = transport.get_extra_info("sockname")
        request = build_options(uri, "udp", local[:2], sockaddr[0], cfg.from_user, *ids)
        deadline = loop.time() + cfg.timeout
        interval, sends = cfg.t1, 0
        next_send = loop.time()
        provisional = False
        while True:
            now = loop.time()
            if now >= next_send:
                transport.sendto(request)
                sends += 1
                next_send = now + interval
                interval = min(interval * 2, cfg.t2) if not provisional else cfg.t2
            wait = min(next_send, deadline) - loop.time()
            if loop.time() >= deadline:
                details["requests_sent"] = sends
                raise ServiceFailure(f"no final response to OPTIONS within {cfg.timeout:g} s ({sends} sent"
                                     + (", a provisional response came" if provisional else "") + ")")
            try:
                item = await asyncio.wait_for(proto.queue.get(), max(wait, 0.0))
            except asyncio.TimeoutError:
                continue
            if isinstance(item, Exception):
                details["requests_sent"] = sends
                raise ServiceFailure(f"{sockaddr[0]} port {sockaddr[1]}: "
                                     f"{describe_oserror(item) if isinstance(item, OSError) else item}")
            try:
                parsed = parse_response(item)
            except (ValueError, UnicodeError):
                continue  # not ours, or garbage: keep waiting
            if parsed is None or not _matches(parsed[0], ids[0], ids[2]):
                continue
            resp = parsed[0]
            if resp.code < 200:
                if not provisional:
                    phases.done("provisional")
                provisional = True
                next_send = min(next_send, loop.time() + cfg.t2)
                continue
            details["requests_sent"] = sends
            return resp
    finally:
        transport.close()


async def _over_stream(host: str, cfg: SipProbeConfig, ids: tuple[str, str, str], uri: str, phases: Phases,
                       tls: bool) -> tuple[SipResponse, TlsInfo | None]:
    loop = asyncio.get_running_loop()
    ctx = phases.untimed(client_context, cfg.ca_file, cfg.verify) if tls else None
    reader, writer, info = await open_tcp(host, cfg.effective_port, cfg.timeout, phases, tls=ctx,
                                          server_name=cfg.server_name)
    deadline = loop.time() + max(cfg.timeout - phases.elapsed(), 0.001)
    try:
        local = writer.get_extra_info("sockname")
        writer.write(build_options(uri, cfg.transport, local[:2], host, cfg.from_user, *ids))
        await writer.drain()
        buffer = b""
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise ServiceFailure(f"no final response to OPTIONS within {cfg.timeout:g} s")
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                raise ServiceFailure(f"no final response to OPTIONS within {cfg.timeout:g} s") from None
            except OSError as exc:
                raise ServiceFailure(f"connection: {exc}") from None
            if not chunk:
                raise ServiceFailure("connection closed before a final response")
            buffer += chunk
            while True:
                try:
                    parsed = parse_response(buffer)
                except (ValueError, UnicodeError) as exc:
                    raise ServiceFailure(str(exc)) from None
                if parsed is None:
                    break
                resp, used = parsed
                buffer = buffer[used:]
                if _matches(resp, ids[0], ids[2]) and resp.code >= 200:
                    return resp, info
            if len(buffer) > 65536:
                raise ServiceFailure("oversized SIP message")
    finally:
        writer.transport.abort()


async def sip_probe(target_id: str, address: str, settings: SipProbeConfig, *, context: Any = None) -> ServiceResult:
    """The registered ``sip`` probe: one OPTIONS transaction, its final response judged."""
    started, phases = time.time(), Phases()
    port = settings.effective_port
    host_part = f"[{address}]" if ":" in address else address
    uri = settings.uri or f"sip:{host_part}:{port}" + (";transport=tcp" if settings.transport == "tcp" else "")
    if settings.transport == "tls" and not settings.uri:
        uri = f"sips:{host_part}:{port}"
    ids = (f"z9hG4bK{secrets.token_hex(8)}", secrets.token_hex(6), f"{secrets.token_hex(10)}@slawatch")
    details: dict[str, Any] = {}
    info: TlsInfo | None = None
    try:
        if settings.transport == "udp":
            family, sockaddr = await resolve(address, port, kind=socket.SOCK_DGRAM)
            phases.done("resolve")
            resp = await _over_udp(sockaddr, family, settings, ids, uri, phases, details)
        else:
            resp, info = await _over_stream(address, settings, ids, uri, phases, settings.transport == "tls")
    except ServiceFailure as failure:
        return ServiceResult("sip", target_id, address, started, phases.elapsed(), False, failure.reason,
                             phases=dict(phases.values), attempted=failure.attempted, tls=failure.tls or info,
                             details=details)
    response = phases.elapsed()
    phases.done("final_response")
    agent = resp.header("server") or resp.header("user-agent")
    if agent:
        details["server"] = agent
    status = f"SIP/2.0 {resp.code} {resp.phrase}".rstrip()
    if not _status_ok(resp.code, settings.valid_status):
        return ServiceResult("sip", target_id, address, started, response, False,
                             f"{status} is not one of {', '.join(settings.valid_status)}", response=response,
                             phases=dict(phases.values), tls=info, status=status, details=details)
    return ServiceResult("sip", target_id, address, started, response, True, None, response=response,
                         phases=dict(phases.values), tls=info, status=status, details=details)
