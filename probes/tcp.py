"""TCP connect, optionally TLS, with an optional send/expect dialogue (a banner check)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .service import Phases, ServiceFailure, ServiceResult, client_context, open_tcp, read_line
from .settings import StrictSettings, Port, ProbeSettings, Regex, TlsSettings

__all__ = ["TcpProbeConfig", "DialogueStep", "tcp_probe", "converse"]


class DialogueStep(StrictSettings):
    """Send ``send`` (with escapes such as ``\\r\\n``), then wait for a line matching ``expect``."""

    send: str | None = None
    expect: Regex | None = None

    @model_validator(mode="after")
    def _something(self) -> "DialogueStep":
        if self.send is None and self.expect is None:
            raise PydanticCustomError("slawatch", "a dialogue step needs send or expect")
        return self


class TcpProbeConfig(ProbeSettings):
    """A TCP check: port, optional TLS, optional send/expect dialogue."""

    port: Port
    tls: TlsSettings | None = None
    dialogue: list[DialogueStep] = Field(default_factory=list)
    #: the most bytes read while waiting for an expected line
    max_read: int = Field(65536, ge=64, le=16 * 1024 * 1024)


def _unescape(text: str) -> bytes:
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1")


async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, steps: list[DialogueStep],
                   deadline: float, max_read: int) -> list[str]:
    """Run the dialogue; each expect reads lines until one matches. Returns the matched lines."""
    matched = []
    for i, step in enumerate(steps):
        if step.send is not None:
            writer.write(_unescape(step.send))
            await writer.drain()
        if step.expect is None:
            continue
        pattern, seen = re.compile(step.expect), 0
        while True:
            text = await read_line(reader, deadline, f"dialogue step {i + 1}", f"nothing matching /{step.expect}/",
                                   f"connection closed before /{step.expect}/")
            seen += len(text) + 1
            if pattern.search(text):
                matched.append(text)
                break
            if seen > max_read:
                raise ServiceFailure(f"dialogue step {i + 1}: {seen} bytes without /{step.expect}/")
    return matched


async def tcp_probe(target_id: str, address: str, settings: TcpProbeConfig, *, context: Any = None) -> ServiceResult:
    """The registered ``tcp`` probe: connect (and handshake), then the dialogue."""
    started, phases = time.time(), Phases()
    deadline = asyncio.get_running_loop().time() + settings.timeout
    tls = settings.tls
    ctx = None if tls is None else phases.untimed(client_context, tls.ca_file, tls.verify)
    writer = None
    info = None
    try:
        reader, writer, info = await open_tcp(address, settings.port, settings.timeout, phases, tls=ctx,
                                              server_name=tls.server_name if tls else None)
        matched = await converse(reader, writer, settings.dialogue, deadline, settings.max_read)
        if settings.dialogue:
            phases.done("dialogue")
        response = phases.elapsed()
        status = f"connected to port {settings.port}" + (f", {info.version}" if info else "")
        details = {"matched": " | ".join(matched)} if matched else {}
        return ServiceResult("tcp", target_id, address, started, response, True, None, response=response,
                             phases=dict(phases.values), tls=info, status=status, details=details)
    except ServiceFailure as failure:
        return ServiceResult("tcp", target_id, address, started, phases.elapsed(), False, failure.reason,
                             phases=dict(phases.values), attempted=failure.attempted,
                             tls=failure.tls or info)
    finally:
        if writer is not None:
            writer.transport.abort()
