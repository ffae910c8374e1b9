"""The base of the probes' typed settings (each probe's config model lives beside it) and shared field types."""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from monitor.units import parse_duration

__all__ = ["ProbeSettings", "StrictSettings", "Regex", "CaFile", "Duration", "PositiveDuration", "Port", "TlsSettings",
           "as_text", "ip_version", "is_ip_literal", "HeaderName", "HeaderValue", "Headers", "NoControl", "Token"]

# -- what goes on a wire line: no CR, LF, NUL or other control character (header injection, request smuggling)
_NAMES = {0: "NUL", 9: "TAB", 10: "LF", 13: "CR", 127: "DEL"}


def _control(value: str, allow_tab: bool = False) -> str | None:
    for ch in value:
        code = ord(ch)
        if (code < 32 and not (allow_tab and code == 9)) or code == 127:
            return _NAMES.get(code, f"0x{code:02x}")
    return None


def _no_control(value: str) -> str:
    found = _control(value)
    if found:
        raise PydanticCustomError("slawatch", "must not contain control characters such as CR, LF or NUL "
                                  "(found {c}): it would end the line it is sent on", {"c": found})
    if value != value.strip():
        raise PydanticCustomError("slawatch", "must not begin or end with spaces")
    return value


def _header_value(value: str) -> str:
    found = _control(value, allow_tab=True)
    if found:
        raise PydanticCustomError("slawatch", "must not contain control characters such as CR, LF or NUL "
                                  "(found {c}): it would end the header and start another", {"c": found})
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _token(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise PydanticCustomError("slawatch", "must be a token: letters, digits and !#$%&'*+.^_`|~- only, no "
                                  "spaces, colons or control characters")
    return value


#: one line of a protocol (a URL, a SIP URI, an EHLO name): no control characters, no surrounding spaces
NoControl = Annotated[str, AfterValidator(_no_control)]
#: an HTTP header name or method (RFC 9110 token)
Token = Annotated[str, AfterValidator(_token)]
HeaderName = Token
#: an HTTP header value: visible characters, spaces and tabs (RFC 9110 field-value)
HeaderValue = Annotated[str, AfterValidator(_header_value)]
Headers = dict[HeaderName, HeaderValue]


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("slawatch", str(exc)) from None


def _positive(value: float) -> float:
    if value <= 0:
        raise PydanticCustomError("slawatch", "must be a duration greater than 0, like 30s")
    return value


def ip_version(value: str) -> int | None:
    """4 or 6 when ``value`` is an IPv4 or IPv6 literal (without a ``%scope``), None otherwise. The C library's
    inet_pton accepts exactly what :func:`ipaddress.ip_address` does for text (no leading zeros, no short IPv4
    forms; tests/test_config.py compares them) at a tenth of its cost, which a config of 10,000 targets pays
    three times per address."""
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            socket.inet_pton(family, value)
            return version
        except (OSError, ValueError):
            continue
    return None


def is_ip_literal(value: str) -> bool:
    """Whether ``value`` is an IPv4 or IPv6 literal (a scope such as ``%eth0`` allowed)."""
    return ip_version(value.partition("%")[0]) is not None


def as_text(value: object) -> object:
    """YAML reads `version: 3` as an int; literals of the config are text."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


#: ``30s``, ``500ms``, ``2m`` or a number of seconds (shared with monitor.config.types)
Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_duration), AfterValidator(_positive)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("slawatch", "regular expression does not compile: {err}", {"err": str(exc)}) \
            from None
    return value


def _ca_file(value: str) -> str:
    if not os.path.isfile(value):
        raise PydanticCustomError("slawatch", "CA file {path} does not exist or is not a file", {"path": value})
    if not os.access(value, os.R_OK):
        raise PydanticCustomError("slawatch", "CA file {path} is not readable", {"path": value})
    return value


Regex = Annotated[str, AfterValidator(_regex)]
CaFile = Annotated[str, AfterValidator(_ca_file)]
Port = Annotated[int, Field(ge=1, le=65535)]


class StrictSettings(BaseModel):
    """Unknown keys are rejected, values are frozen, no NaN or infinity (as every config model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProbeSettings(StrictSettings):
    """A probe's settings: with its timeout and the worst case the target's interval must fit."""

    timeout: PositiveDuration = 5.0

    def worst_case(self, address: str) -> tuple[float, str]:
        """The longest one check of ``address`` can take when nothing answers (the interval must fit it), and
        how, in words."""
        return self.timeout, f"{self.timeout:g} s timeout"


class TlsSettings(StrictSettings):
    """TLS on a service: verify the chain (against ``ca_file`` or the system store) and the host name."""

    verify: bool = True
    ca_file: CaFile | None = None
    #: the name to send (SNI) and verify; the target's address by default
    server_name: str | None = None
