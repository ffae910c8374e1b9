"""WebSocket (the online chat): the opening handshake, an optional send/expect message and a ping/pong RTT
(the ``websockets`` library speaks RFC 6455, with TLS from the ssl module)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .service import Phases, describe_oserror, ServiceResult, TlsInfo, client_context, tls_info, unverified_tls_info
from .settings import CaFile, Headers, NoControl, ProbeSettings, Regex, Token

__all__ = ["WebSocketProbeConfig", "websocket_probe"]


class WebSocketProbeConfig(ProbeSettings):
    """A WebSocket check: URL, headers, subprotocols, a message and its answer, a ping."""

    url: NoControl
    headers: Headers = Field(default_factory=dict)
    subprotocols: list[Token] = Field(default_factory=list)
    send: str | None = None
    expect: Regex | None = None
    #: measure a ping/pong round trip after the handshake (and the dialogue)
    ping: bool = True
    verify: bool = True
    ca_file: CaFile | None = None
    server_name: NoControl | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise PydanticCustomError("slawatch", "URL must not contain spaces (percent-encode them as %20)")
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise PydanticCustomError("slawatch", "URL must start with ws:// or wss:// and name a host")
        return value


async def websocket_probe(target_id: str, address: str, settings: WebSocketProbeConfig, *,
                          context: Any = None) -> ServiceResult:
    """The registered ``websocket`` probe: handshake, optional send/expect, ping/pong RTT."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

    started, phases = time.time(), Phases()
    secure = settings.url.startswith("wss:")
    ctx = phases.untimed(client_context, settings.ca_file, settings.verify) if secure else None
    info: TlsInfo | None = None
    details: dict[str, Any] = {}

    def fail(reason: str, attempted: bool = True) -> ServiceResult:
        return ServiceResult("websocket", target_id, address, started, phases.elapsed(), False, reason,
                             phases=dict(phases.values), attempted=attempted, tls=info, details=details)

    try:
        async with asyncio.timeout(settings.timeout):
            async with connect(settings.url, ssl=ctx, server_hostname=settings.server_name if secure else None,
                               additional_headers=settings.headers or None, proxy=None,
                               subprotocols=settings.subprotocols or None,  # type: ignore[arg-type]
                               open_timeout=settings.timeout, ping_interval=None, close_timeout=1,
                               user_agent_header="slawatch-probe/1") as ws:
                phases.done("handshake")
                ssl_object = ws.transport.get_extra_info("ssl_object")
                if ssl_object is not None:
                    info = tls_info(ssl_object, settings.verify)
                if ws.subprotocol:
                    details["subprotocol"] = ws.subprotocol
                if settings.send is not None:
                    await ws.send(settings.send)
                if settings.expect is not None:
                    pattern = re.compile(settings.expect)
                    while True:
                        message = await ws.recv()
                        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                        if pattern.search(text):
                            details["matched"] = text[:200]
                            break
                    phases.done("dialogue")
                if settings.ping:
                    waiter = await ws.ping()
                    latency = await waiter
                    phases.done("ping")
                    details["ping_rtt"] = f"{latency * 1000:.3f} ms"
                response = phases.elapsed()
    except TimeoutError:
        step = "handshake" if "handshake" not in phases.values else \
            (f"message matching /{settings.expect}/" if settings.expect and "dialogue" not in phases.values
             else "pong")
        return fail(f"no {step} within {settings.timeout:g} s")
    except InvalidStatus as exc:
        return fail(f"handshake refused: HTTP {exc.response.status_code}")
    except ssl.SSLCertVerificationError as exc:
        parts = urlsplit(settings.url)
        host = parts.hostname or ""
        info = await unverified_tls_info(host, parts.port or 443, settings.server_name or host, settings.timeout,
                                         exc.verify_message)
        return fail(f"TLS certificate not valid: {exc.verify_message}")
    except (InvalidHandshake, WebSocketException) as exc:
        return fail(f"websocket: {exc}")
    except socket.gaierror as exc:  # our resolver failed: nothing was asked of the chat service
        return fail(f"cannot resolve {urlsplit(settings.url).hostname}: {exc.strerror}", attempted=False)
    except OSError as exc:
        parts = urlsplit(settings.url)
        return fail(f"connect to {parts.hostname} port {parts.port or (443 if secure else 80)}: "
                    f"{describe_oserror(exc)}")
    return ServiceResult("websocket", target_id, address, started, response, True, None, response=response,
                         phases=dict(phases.values), tls=info, status="101 Switching Protocols", details=details)
