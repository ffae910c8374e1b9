"""Annotated field types used by the config models.

Each raises ``PydanticCustomError('slawatch', ...)`` with the message the
user sees, so the loader can print it unchanged after the YAML path.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

from probes.settings import Duration, PositiveDuration

from monitor.units import parse_percent

__all__ = [
    "Duration",
    "PositiveDuration",
    "Percent",
    "TargetShare",
    "Identifier",
    "TimeZoneName",
    "Secret",
    "HostPort",
    "Money",
    "CurrencyCode",
    "ClockTime",
]


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("slawatch", message)


def _percent(value: object) -> Decimal:
    try:
        return parse_percent(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _share_of_target(value: object) -> Decimal:
    try:
        pct = parse_percent(value, maximum=1000)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if pct == 0:
        raise _fail("must be more than 0% of the target")
    return pct


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _identifier(value: object) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not _ID_RE.match(str(value)):
        raise _fail("must be an id of letters, digits, '.', '_', ':' or '-' (at most 128 characters)")
    return str(value)


def _timezone(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("must be an IANA time zone like Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail("must be an IANA time zone like Europe/Berlin") from None
    return value


def _host_port(value: object) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise _fail("must be host:port like 127.0.0.1:9842")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]+$", bare):
            raise _fail("must be host:port like 127.0.0.1:9842") from None
    return text


def _money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise _fail("must be an amount like 1200.00")
    # floats from YAML are turned back into their shortest decimal text, not their binary value
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value))
    except ArithmeticError:
        raise _fail("must be an amount like 1200.00") from None
    if not amount.is_finite() or amount < 0:
        raise _fail("must be an amount like 1200.00, not negative")
    return amount


def _currency(value: object) -> str:
    """An active ISO 4217 code with a minor unit (from the iso4217 package's copy of the standard's list)."""
    from iso4217 import Currency

    if not isinstance(value, str) or not re.match(r"^[A-Z]{3}$", value):
        raise _fail("must be an ISO 4217 currency code like EUR")
    try:
        currency = Currency(value)
    except ValueError:
        raise _fail("is not an ISO 4217 currency code") from None
    if currency.exponent is None:
        raise _fail("is an ISO 4217 code without a minor unit (a fund or commodity), not a billing currency")
    return value


def _clock(value: object) -> str:
    # YAML 1.1 reads 02:00 as the sexagesimal integer 120; accept that too
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
        return f"{value // 60:02d}:{value % 60:02d}"
    if isinstance(value, str):
        m = re.match(r"^(\d{1,2}):(\d{2})$", value)
        if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
            return f"{int(m.group(1)):02d}:{m.group(2)}"
    raise _fail("must be a time of day like 02:00")


Percent = Annotated[Decimal, BeforeValidator(_percent)]
#: a share of a time target, ``150%`` past it at most 1000 %
TargetShare = Annotated[Decimal, BeforeValidator(_share_of_target)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
TimeZoneName = Annotated[str, BeforeValidator(_timezone)]
Secret = SecretStr
HostPort = Annotated[str, BeforeValidator(_host_port)]
Money = Annotated[Decimal, BeforeValidator(_money)]
CurrencyCode = Annotated[str, BeforeValidator(_currency)]
ClockTime = Annotated[str, BeforeValidator(_clock)]
