"""DNS: one query (name, type) to a server over UDP or TCP, judged on its rcode and answers (dnspython does the
wire format; it is the reference implementation in Python and handles every record type)."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .service import ServiceFailure, ServiceResult, resolve
from .settings import Port, ProbeSettings, Regex

__all__ = ["DnsProbeConfig", "dns_probe"]


class DnsProbeConfig(ProbeSettings):
    """A DNS check: the name and type asked, the server and transport, the rcodes and answers expected."""

    query_name: str = Field(min_length=1, max_length=253)
    query_type: str = "A"
    transport: Literal["udp", "tcp"] = "udp"
    port: Port = 53
    #: the server to ask; the target's address by default
    server: str | None = None
    valid_rcodes: list[str] = Field(default_factory=lambda: ["NOERROR"])
    #: each pattern must match at least one answer record (``192.0.2.1``, ``mail.example.net``)
    expect_answers: list[Regex] = Field(default_factory=list)
    recursion_desired: bool = True

    @field_validator("query_type")
    @classmethod
    def _type(cls, value: str) -> str:
        import dns.rdatatype

        try:
            dns.rdatatype.from_text(value.upper())
        except dns.rdatatype.UnknownRdatatype:
            raise PydanticCustomError("slawatch", "not a DNS record type") from None
        return value.upper()

    @field_validator("valid_rcodes")
    @classmethod
    def _rcodes(cls, value: list[str]) -> list[str]:
        import dns.rcode

        out = []
        for code in value:
            try:
                dns.rcode.from_text(code.upper())
            except dns.rcode.UnknownRcode:
                raise PydanticCustomError("slawatch", "not a DNS rcode such as NOERROR or NXDOMAIN") from None
            out.append(code.upper())
        return out

    @field_validator("query_name")
    @classmethod
    def _name(cls, value: str) -> str:
        import dns.exception
        import dns.name

        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise PydanticCustomError("slawatch", "not a DNS name: {err}", {"err": str(exc)}) from None
        return value


async def dns_probe(target_id: str, address: str, settings: DnsProbeConfig, *, context: Any = None) -> ServiceResult:
    """The registered ``dns`` probe: one query, judged on its rcode and answers."""
    # dnspython is imported here and in the validators, not with the module: a config without DNS probes loads
    # without it (dns.name alone costs 32 ms)
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype

    started, t0 = time.time(), time.perf_counter()
    server = settings.server or address

    def fail(reason: str, attempted: bool = True, details: dict | None = None) -> ServiceResult:
        return ServiceResult("dns", target_id, address, started, time.perf_counter() - t0, False, reason,
                             attempted=attempted, details=details or {})

    try:
        _, sockaddr = await resolve(server, settings.port)
    except ServiceFailure as failure:
        return fail(failure.reason, failure.attempted)
    query = dns.message.make_query(settings.query_name, settings.query_type)
    if not settings.recursion_desired:
        query.flags &= ~dns.flags.RD
    where = f"{sockaddr[0]} port {settings.port} ({settings.transport})"
    sent = time.perf_counter()
    try:
        if settings.transport == "udp":
            answer = await dns.asyncquery.udp(query, sockaddr[0], timeout=settings.timeout, port=settings.port,
                                              raise_on_truncation=False)
        else:
            answer = await dns.asyncquery.tcp(query, sockaddr[0], timeout=settings.timeout, port=settings.port)
    except dns.exception.Timeout:
        return fail(f"no answer from {where} within {settings.timeout:g} s")
    except (OSError, EOFError) as exc:
        return fail(f"{where}: {exc}")
    except dns.exception.DNSException as exc:
        return fail(f"{where}: malformed answer ({exc})")
    response = time.perf_counter() - sent
    rcode = dns.rcode.to_text(answer.rcode())
    records = [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
               for rrset in answer.answer for rd in rrset]
    status = f"{rcode}, {len(records)} answer{'s' if len(records) != 1 else ''}" + \
        (" (truncated)" if answer.flags & dns.flags.TC else "")
    details = {"answers": "; ".join(records) or "none", "server": where}
    if rcode not in settings.valid_rcodes:
        return fail(f"{settings.query_name} {settings.query_type}: {rcode}, expected "
                    f"{' or '.join(settings.valid_rcodes)}", details=details)
    texts = [rd.to_text() for rrset in answer.answer for rd in rrset]
    for pattern in settings.expect_answers:
        if not any(re.search(pattern, t) for t in texts):
            return fail(f"{settings.query_name} {settings.query_type}: no answer matches /{pattern}/", details=details)
    return ServiceResult("dns", target_id, address, started, time.perf_counter() - t0, True, None, response=response,
                         phases={"query": response}, status=status, details=details)
