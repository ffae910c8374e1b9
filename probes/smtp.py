"""SMTP (the support mailbox's server): banner, EHLO, optionally STARTTLS (or TLS from the start) and the
certificate's expiry, then QUIT. No mail is sent."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from typing import Any, Literal

from pydantic import Field

from .service import Phases, ServiceFailure, ServiceResult, TlsInfo, client_context, open_tcp, read_line, tls_info
from .settings import CaFile, NoControl, Port, ProbeSettings, Regex

__all__ = ["SmtpProbeConfig", "smtp_probe"]


class SmtpProbeConfig(ProbeSettings):
    """An SMTP check: port, TLS (none, STARTTLS or implicit), EHLO name and the banner expected."""

    port: Port = 25
    #: none; starttls (required: a server that does not offer it fails); implicit (SMTPS, port 465)
    tls: Literal["none", "starttls", "implicit"] = "none"
    verify: bool = True
    ca_file: CaFile | None = None
    server_name: NoControl | None = None
    ehlo_name: NoControl = Field("slawatch.invalid", min_length=1, max_length=255)
    expect_banner: Regex | None = None


async def _reply(reader: asyncio.StreamReader, deadline: float, step: str) -> tuple[int, list[str]]:
    """One (multi-line) SMTP reply: its code and text lines."""
    lines: list[str] = []
    while True:
        text = await read_line(reader, deadline, step, "no reply")
        m = re.match(r"(\d{3})([ -])(.*)", text)
        if not m:
            raise ServiceFailure(f"{step}: not an SMTP reply: {text[:60]!r}")
        lines.append(m.group(3))
        if m.group(2) == " ":
            return int(m.group(1)), lines


async def _unverified(target_id: str, address: str, settings: SmtpProbeConfig, deadline: float,
                      verify_error: str) -> TlsInfo | None:
    """The certificate of a server that failed verification after STARTTLS: one more session without
    verification (within what is left of the check's time), so its expiry is still evidence."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        return None
    again = await smtp_probe(target_id, address, settings.model_copy(update={"verify": False, "timeout": left}))
    return None if again.tls is None else again.tls.unverified(verify_error)


async def smtp_probe(target_id: str, address: str, settings: SmtpProbeConfig, *, context: Any = None) -> ServiceResult:
    """The registered ``smtp`` probe: banner, EHLO, optional STARTTLS, QUIT; no mail is sent."""
    started, phases = time.time(), Phases()
    deadline = asyncio.get_running_loop().time() + settings.timeout
    ctx = phases.untimed(client_context, settings.ca_file, settings.verify) if settings.tls != "none" else None
    name = settings.server_name or address
    writer = None
    info: TlsInfo | None = None
    details: dict[str, Any] = {}
    try:
        reader, writer, info = await open_tcp(address, settings.port, settings.timeout, phases,
                                              tls=ctx if settings.tls == "implicit" else None, server_name=name)
        code, text = await _reply(reader, deadline, "banner")
        phases.done("banner")
        details["banner"] = text[0]
        if code != 220:
            raise ServiceFailure(f"banner {code} {text[0]}")
        if settings.expect_banner and not re.search(settings.expect_banner, text[0]):
            raise ServiceFailure(f"banner {text[0]!r} does not match /{settings.expect_banner}/")
        writer.write(f"EHLO {settings.ehlo_name}\r\n".encode())
        code, text = await _reply(reader, deadline, "EHLO")
        phases.done("ehlo")
        if code != 250:
            raise ServiceFailure(f"EHLO answered {code} {' '.join(text)}")
        extensions = [t.split()[0].upper() for t in text[1:] if t]
        details["extensions"] = " ".join(extensions)
        if settings.tls == "starttls":
            if "STARTTLS" not in extensions:
                raise ServiceFailure("the server does not offer STARTTLS")
            writer.write(b"STARTTLS\r\n")
            code, text = await _reply(reader, deadline, "STARTTLS")
            if code != 220:
                raise ServiceFailure(f"STARTTLS answered {code} {' '.join(text)}")
            assert ctx is not None
            try:
                await asyncio.wait_for(writer.start_tls(ctx, server_hostname=name),
                                       max(deadline - asyncio.get_running_loop().time(), 0.001))
            except ssl.SSLCertVerificationError as exc:
                raise ServiceFailure(f"TLS certificate not valid for {name}: {exc.verify_message}",
                                     tls=await _unverified(target_id, address, settings, deadline,
                                                           exc.verify_message)) from None
            except asyncio.TimeoutError:
                raise ServiceFailure("STARTTLS handshake: no answer in time") from None
            except (ssl.SSLError, OSError) as exc:
                raise ServiceFailure(f"STARTTLS handshake: {exc}") from None
            phases.done("tls")
            info = tls_info(writer.get_extra_info("ssl_object"), settings.verify)
            writer.write(f"EHLO {settings.ehlo_name}\r\n".encode())
            code, text = await _reply(reader, deadline, "EHLO after STARTTLS")
            if code != 250:
                raise ServiceFailure(f"EHLO after STARTTLS answered {code} {' '.join(text)}")
        response = phases.elapsed()
        writer.write(b"QUIT\r\n")
        return ServiceResult("smtp", target_id, address, started, response, True, None, response=response,
                             phases=dict(phases.values), tls=info, status=f"220 {details['banner']}", details=details)
    except ServiceFailure as failure:
        return ServiceResult("smtp", target_id, address, started, phases.elapsed(), False, failure.reason,
                             phases=dict(phases.values), attempted=failure.attempted, tls=failure.tls or info,
                             details=details)
    finally:
        if writer is not None:
            writer.transport.abort()
