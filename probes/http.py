"""HTTP(S): one request (following redirects by policy), timed per phase as blackbox_exporter does (resolve,
connect, tls, first byte, transfer), with expected status codes, a body regex or a JSON value, and the TLS
certificate's expiry as evidence.

A small HTTP/1.1 client on asyncio streams rather than a general library: the phases must be timed one by one
(``httpx`` and ``aiohttp`` expose no per-phase timing), and one connection per check with ``Connection: close``
is all a probe needs.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .service import Phases, ServiceFailure, ServiceResult, TlsInfo, client_context, open_tcp
from .settings import StrictSettings, CaFile, Headers, NoControl, ProbeSettings, Regex

__all__ = ["HttpProbeConfig", "JsonExpectation", "http_probe", "json_path"]

USER_AGENT = "slawatch-probe/1"


def _url(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise PydanticCustomError("slawatch", "URL must not contain spaces (percent-encode them as %20)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise PydanticCustomError("slawatch", "URL must start with http:// or https://")
    if not parts.hostname:
        raise PydanticCustomError("slawatch", "URL has no host")
    try:
        parts.port  # noqa: B018 -- raises for a port out of range
    except ValueError as exc:
        raise PydanticCustomError("slawatch", "URL port: {err}", {"err": str(exc)}) from None
    return value


def _status(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[1-5]([0-9]{2}|xx)", text):
        raise PydanticCustomError("slawatch", "must be a status code such as 200 or a class such as 2xx")
    return text


class JsonExpectation(StrictSettings):
    """The body is JSON and the value at ``path`` (``status``, ``checks[0].ok``) equals ``equals``."""

    path: str = Field(min_length=1)
    equals: Any = None


class HttpProbeConfig(ProbeSettings):
    """An HTTP(S) check: the request, what its answer must be, redirects and TLS verification."""

    url: NoControl
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str | None = None
    #: status codes (200) or classes (2xx) that count as an answer; redirects are followed before judging
    valid_status: list[str] = Field(default_factory=lambda: ["2xx"])
    body_regex: Regex | None = None
    expect_json: JsonExpectation | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(5, ge=0, le=20)
    ip_version: Literal[4, 6] | None = None
    verify: bool = True
    ca_file: CaFile | None = None
    server_name: NoControl | None = None
    max_body: int = Field(1024 * 1024, ge=0, le=64 * 1024 * 1024)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value)

    @field_validator("valid_status", mode="before")
    @classmethod
    def _check_status(cls, value: Any) -> Any:
        return [_status(v) for v in value] if isinstance(value, list) else value


def json_path(doc: Any, path: str) -> Any:
    """``a.b[0].c`` in ``doc``; KeyError when absent."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(doc, list) or index >= len(doc):
                raise KeyError(path)
            doc = doc[index]
        else:
            if not isinstance(doc, dict) or part not in doc:
                raise KeyError(path)
            doc = doc[part]
    return doc


def _status_ok(code: int, valid: list[str]) -> bool:
    text = str(code)
    return any(v == text or (v.endswith("xx") and v[0] == text[0]) for v in valid)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], limit: int, deadline: float) -> bytes:
    loop = asyncio.get_running_loop()

    def left() -> float:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise asyncio.TimeoutError
        return remaining

    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size_line = await asyncio.wait_for(reader.readline(), left())
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise ServiceFailure(f"malformed chunk size {size_line[:40]!r}") from None
            if size == 0:
                while (await asyncio.wait_for(reader.readline(), left())) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), left())
            if len(out) < limit:
                out += chunk[:-2][: limit - len(out)]
    length = headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise ServiceFailure(f"malformed Content-Length {length!r}") from None
        data = await asyncio.wait_for(reader.readexactly(n), left()) if n <= limit else \
            (await asyncio.wait_for(reader.readexactly(limit), left()))
        return data
    out = bytearray()  # no length and no chunks: the body ends when the server closes the connection
    while len(out) < limit:
        chunk = await asyncio.wait_for(reader.read(limit - len(out)), left())
        if not chunk:
            break
        out += chunk
    return bytes(out)


async def _exchange(url: str, cfg: HttpProbeConfig, phases: Phases, deadline: float, method: str,
                    body: str | None) -> tuple[int, str, dict[str, str], bytes, TlsInfo | None]:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(cfg.ip_version or 0, 0)
    loop = asyncio.get_running_loop()
    ctx = phases.untimed(client_context, cfg.ca_file, cfg.verify) if https else None
    reader, writer, info = await open_tcp(host, port, max(deadline - loop.time(), 0.001), phases, family=family,
                                          tls=ctx, server_name=cfg.server_name)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if https else 80
        host_header = (f"[{host}]" if ":" in host else host) + ("" if port == default_port else f":{port}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {USER_AGENT}",
                 "Accept: */*", "Connection: close"]
        payload = (body or "").encode("utf-8")
        if body is not None:
            lines.append(f"Content-Length: {len(payload)}")
        lines += [f"{k}: {v}" for k, v in cfg.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
        try:
            status_line = await asyncio.wait_for(reader.readline(), max(deadline - loop.time(), 0.001))
        except asyncio.TimeoutError:
            raise ServiceFailure(f"no response from {host} port {port} within {cfg.timeout:g} s") from None
        phases.done("first_byte")
        m = re.match(rb"HTTP/(\d\.\d) (\d{3})", status_line)
        if not m:
            raise ServiceFailure(f"not an HTTP response: {status_line[:60]!r}" if status_line
                                 else "connection closed without a response")
        version, code = m.group(1).decode(), int(m.group(2))
        headers: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), max(deadline - loop.time(), 0.001))
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        data = b""
        if method != "HEAD" and code not in (204, 304) and not 100 <= code < 200:
            data = await _read_body(reader, headers, cfg.max_body, deadline)
        phases.done("transfer")
        return code, version, headers, data, info
    except asyncio.TimeoutError:
        raise ServiceFailure(f"response from {host} port {port} incomplete within {cfg.timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise ServiceFailure(f"connection to {host} port {port} closed in the middle of the response") from None
    except (ConnectionError, OSError) as exc:
        raise ServiceFailure(f"connection to {host} port {port}: {exc}") from None
    finally:
        writer.transport.abort()


async def http_probe(target_id: str, address: str, settings: HttpProbeConfig, *, context: Any = None) -> ServiceResult:
    """``address`` is the target's; the request goes to ``settings.url``."""
    started, phases = time.time(), Phases()
    deadline = asyncio.get_running_loop().time() + settings.timeout
    url, method, body = settings.url, settings.method, settings.body
    info: TlsInfo | None = None
    redirects: list[str] = []
    details: dict[str, Any] = {}

    def fail(reason: str, attempted: bool = True, tls: TlsInfo | None = None) -> ServiceResult:
        return ServiceResult("http", target_id, address, started, phases.elapsed(), False, reason,
                             phases=dict(phases.values), attempted=attempted, tls=tls or info, details=details)

    try:
        while True:
            code, version, headers, data, hop_tls = await _exchange(url, settings, phases, deadline, method, body)
            info = hop_tls or info
            location = headers.get("location")
            if settings.follow_redirects and code in (301, 302, 303, 307, 308) and location:
                if len(redirects) >= settings.max_redirects:
                    return fail(f"more than {settings.max_redirects} redirects (last to {location})")
                url = urljoin(url, location)
                redirects.append(url)
                if code == 303 or (code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            break
    except ServiceFailure as failure:
        return fail(failure.reason, failure.attempted, failure.tls)
    response = phases.elapsed()
    if redirects:
        details["redirects"] = " -> ".join(redirects)
    if headers.get("server"):
        details["server"] = headers["server"]
    details["body_bytes"] = len(data)
    status = f"HTTP/{version} {code}"
    if not _status_ok(code, settings.valid_status):
        return fail(f"{status} is not one of {', '.join(settings.valid_status)}")
    text = data.decode("utf-8", "replace")
    if settings.body_regex is not None and not re.search(settings.body_regex, text):
        return fail(f"{status}: body does not match /{settings.body_regex}/")
    if settings.expect_json is not None:
        try:
            value = json_path(json.loads(text), settings.expect_json.path)
        except (ValueError, KeyError):
            return fail(f"{status}: body has no JSON value at {settings.expect_json.path}")
        if settings.expect_json.equals is not None and value != settings.expect_json.equals:
            return fail(f"{status}: JSON {settings.expect_json.path} is {value!r}, not {settings.expect_json.equals!r}")
    return ServiceResult("http", target_id, address, started, response, True, None, response=response,
                         phases=dict(phases.values), tls=info, status=status, details=details)
