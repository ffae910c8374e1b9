"""Typed configuration models. Unknown keys are rejected everywhere.

``config/reference.yaml`` documents every key defined here.
"""

from __future__ import annotations

import re

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from monitor.tickets.sinks import TicketSink  # each sink's settings live beside it
from probes.dns import DnsProbeConfig
from probes.settings import ip_version, is_ip_literal
from probes.http import HttpProbeConfig
from probes.icmp import IcmpProbeConfig
from probes.sip import SipProbeConfig
from probes.smtp import SmtpProbeConfig
from probes.snmp import SnmpProbeConfig
from probes.tcp import TcpProbeConfig
from probes.websocket import WebSocketProbeConfig

from monitor.config.types import (
    ClockTime,
    CurrencyCode,
    Duration,
    HostPort,
    Identifier,
    Money,
    Percent,
    PositiveDuration,
    Secret,
    TargetShare,
    TimeZoneName,
)

__all__ = [
    "is_ip",
    "Config",
    "Contract",
    "Target",
    "IcmpProbeConfig",
    "SnmpProbeConfig",
    "ProbesConfig",
    "Objectives",
    "LatencyObjective",
    "CreditTier",
    "MaintenanceWindow",
    "EscalationTier",
    "ResponseTarget",
    "StorageConfig",
    "ExporterConfig",
    "TicketSink",
    "SnmpProfile",
    "SEVERITIES",
]

SEVERITIES = ("critical", "major", "minor")


class _Model(BaseModel):
    # no NaN or infinity in any number: `.nan` and `.inf` are valid YAML floats, never valid settings
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- probes


#: the service probes, each with its config model beside it in probes/
SERVICE_PROBES = ("sip", "http", "tcp", "dns", "smtp", "websocket")


class ProbesConfig(_Model):
    """A target's probes, each kind's settings model from probes/ (ICMP on by default)."""

    icmp: IcmpProbeConfig | None = Field(default_factory=IcmpProbeConfig)
    snmp: SnmpProbeConfig | None = None
    sip: SipProbeConfig | None = None
    http: HttpProbeConfig | None = None
    tcp: TcpProbeConfig | None = None
    dns: DnsProbeConfig | None = None
    smtp: SmtpProbeConfig | None = None
    websocket: WebSocketProbeConfig | None = None

    def enabled(self) -> list[str]:
        """The probe kinds configured for the target, in the order they run."""
        return [name for name in ("icmp", "snmp", *SERVICE_PROBES) if getattr(self, name) is not None]


class SnmpProfile(_Model):
    """A named OID set, like an snmp_exporter module."""

    scalars: dict[str, str] = Field(default_factory=dict)
    tables: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- contracts


class _LocalEnd(_Model):
    """``until``: the window's local end (it stays 02:00-04:00 local across DST), instead of a duration.
    An end before the start is the next day, and must say so with ``overnight: true``."""

    at: ClockTime
    until: ClockTime | None = None
    overnight: bool = False

    @model_validator(mode="after")
    def _until(self) -> "_LocalEnd":
        if self.until is None:
            if self.overnight:
                raise PydanticCustomError("slawatch", "overnight goes with until")
            return self
        if self.until == self.at:
            raise PydanticCustomError("slawatch", "until must differ from at (got {u} for both)", {"u": self.until})
        if (self.until < self.at) != self.overnight:
            raise PydanticCustomError(
                "slawatch", "until {u} is before at {a}: a window across midnight needs overnight: true"
                if self.until < self.at else "until {u} is after at {a}: overnight: true would make it last over a day",
                {"u": self.until, "a": self.at})
        return self


class WeeklyRecurrence(_LocalEnd):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)


class MonthlyRecurrence(_LocalEnd):
    day: int = Field(ge=1, le=31)


class MaintenanceWindow(_Model):
    """One-off (start + end or duration) or recurring (weekly, monthly or cron + duration).
    Times are in the contract's time zone unless they carry an offset."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    weekly: WeeklyRecurrence | None = None
    monthly: MonthlyRecurrence | None = None
    cron: str | None = None
    duration: PositiveDuration | None = None

    @model_validator(mode="after")
    def _shape(self) -> "MaintenanceWindow":
        kinds = [k for k in ("start", "weekly", "monthly", "cron") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise PydanticCustomError(
                "slawatch", "give exactly one of start, weekly, monthly or cron (got {n})", {"n": len(kinds)}
            )
        if kinds[0] == "start":
            if (self.end is None) == (self.duration is None):
                raise PydanticCustomError("slawatch", "a one-off window needs end or duration (one of them)")
            if self.end is not None and self.start is not None and self.end <= self.start:
                raise PydanticCustomError("slawatch", "end must be after start")
        else:
            local_end = self.weekly or self.monthly
            has_until = local_end is not None and local_end.until is not None
            if self.duration is None and not has_until:
                raise PydanticCustomError("slawatch", "a recurring window needs duration")
            if self.duration is not None and has_until:
                raise PydanticCustomError("slawatch", "give duration or until, not both")
            if self.end is not None:
                raise PydanticCustomError("slawatch", "end is only for one-off windows")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise PydanticCustomError(
                    "slawatch", "cron must be a 5-field crontab like '0 2 * * sun' ({err})", {"err": str(exc)}
                ) from None
        return self


class LatencyObjective(_Model):
    """A percentile objective: the month's ``percentile`` of the samples at most ``max`` seconds."""

    percentile: float = Field(95.0, gt=0, lt=100)
    max: PositiveDuration


class Objectives(_Model):
    """A contract's service levels: availability (required), latency, loss, jitter, MOS, one-way delay, response time
    and certificate expiry."""

    availability: Percent

    @field_validator("availability")
    @classmethod
    def _availability(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise PydanticCustomError("slawatch", "must be above 0 %")
        return value

    latency: LatencyObjective | None = None
    loss: Percent | None = None
    jitter: PositiveDuration | None = None
    mos: float | None = Field(None, ge=1.0, le=4.5)
    one_way_delay: PositiveDuration | None = None
    #: the service probes' response time (SIP final response, HTTP total, DNS answer, SMTP EHLO, WebSocket)
    response_time: LatencyObjective | None = None
    #: a peer certificate closer than this to its expiry degrades the target (and opens a ticket) before it expires
    tls_expiry_min: PositiveDuration | None = None


class CreditTier(_Model):
    """A billing credit: ``credit`` % of the fee when ``objective`` is below ``below`` % this month."""

    below: Percent
    credit: Percent
    #: first_response and resolution: the share of the month's customer requests (#28) whose clock met its target
    objective: Literal["availability", "latency", "loss", "jitter", "mos", "response_time", "first_response",
                       "resolution"] = "availability"


class EscalationTier(_Model):
    """Who is told, through which sinks, ``after`` a ticket opened while nobody acknowledged it."""

    tier: int = Field(ge=1, le=10)
    after: Duration = 0.0
    sinks: list[str] = Field(min_length=1)
    recipients: list[str] = Field(default_factory=list)


RequestClock = Literal["first_response", "resolution"]
REQUEST_CLOCKS: tuple[RequestClock, ...] = ("first_response", "resolution")


class RequestEscalationTier(_Model):
    """Who is told about a customer request whose clock has run ``at`` (a share of its target, 150 % = half as
    long again) without a first response (that clock) or a resolution (that one): contacts of the provider and of
    the reseller, through the named ticket sinks. The first response stops the response clock's escalation, the
    resolution the rest."""

    at: TargetShare
    sinks: list[str] = Field(min_length=1)
    provider: list[str] = Field(default_factory=list)
    reseller: list[str] = Field(default_factory=list)
    clocks: list[RequestClock] = Field(default_factory=lambda: list(REQUEST_CLOCKS), min_length=1)


class ResponseTarget(_Model):
    """The agreed time to acknowledge and to resolve a ticket of one severity."""

    acknowledge: PositiveDuration
    resolve: PositiveDuration


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKING_WEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class HolidayCalendar(_Model):
    """Public holidays of a country (ISO 3166-1 alpha-2) and optionally one subdivision (US-VT: ``subdiv: VT``),
    from the maintained ``holidays`` package."""

    country: str = Field(min_length=2, max_length=3)
    subdiv: str | None = None

    @model_validator(mode="after")
    def _known(self) -> "HolidayCalendar":
        import holidays

        supported = holidays.list_supported_countries()
        if self.country not in supported:
            raise PydanticCustomError("slawatch", "unknown holiday country {c} (ISO 3166-1 alpha-2, e.g. US, CA, DE)",
                                      {"c": repr(self.country), "at": "country"})
        if self.subdiv is not None and self.subdiv not in supported[self.country]:
            raise PydanticCustomError("slawatch", "{c} has no subdivision {s} (known: {k})",
                                      {"c": self.country, "s": repr(self.subdiv),
                                       "k": ", ".join(supported[self.country][:12]) + (", ..." if len(
                                           supported[self.country]) > 12 else ""), "at": "subdiv"})
        return self


class SupportHours(_Model):
    """When the contract's support clocks run (customer requests' response and resolution, #28): the weekdays and
    local opening hours in ``timezone`` (the contract's by default), less public holidays; ``always`` names the
    severities whose clocks run 24x7."""

    timezone: TimeZoneName | None = None
    days: list[Weekday] = Field(default_factory=lambda: list(WORKING_WEEK), min_length=1)
    opens: ClockTime = "08:00"
    closes: ClockTime = "18:00"
    holidays: HolidayCalendar | None = None
    always: list[Literal["critical", "major", "minor"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hours(self) -> "SupportHours":
        if self.closes <= self.opens:
            raise PydanticCustomError("slawatch", "closes {c} is not after opens {o}: support hours end the day they "
                                      "start", {"c": self.closes, "o": self.opens, "at": "closes"})
        return self


class GroupingRule(_Model):
    """Outages of at least ``min_targets`` targets of one contract starting within ``window``
    become children of one parent ticket; only the parent is delivered to the sinks."""

    min_targets: int = Field(3, ge=2)
    window: PositiveDuration = 120.0


class ChronicRule(_Model):
    missed_months: int = Field(ge=1)
    window_months: int = Field(ge=1)


class VoiceSettings(_Model):
    """E-model inputs; every added delay term is a documented, configurable value."""

    codec: Literal["g711", "g711-plc", "g729a", "g723.1"] = "g711-plc"
    codec_delay: Duration = 0.025
    jitter_buffer_factor: float = Field(2.0, ge=0)
    advantage: float = Field(0.0, ge=0, le=20)


class Contract(_Model):
    """A customer service agreement: objectives, credits, maintenance, escalation, time zone and currency."""

    id: Identifier
    customer: str
    provider: str
    timezone: TimeZoneName = "UTC"
    currency: CurrencyCode = "EUR"
    monthly_fee: Money = Decimal("0")
    credit_basis: Literal["contract", "target"] = "contract"
    objectives: Objectives
    credit_tiers: list[CreditTier] = Field(default_factory=list)
    credit_cap: Percent | None = None
    credit_combine: Literal["sum", "max"] = "max"
    #: below this measured share of the eligible time, credits are provisional (or withheld)
    credit_min_coverage: Percent = Decimal("90")
    credit_low_coverage: Literal["provisional", "withhold"] = "provisional"
    #: the customer's contact, made the requestor of tickets in systems that have one (Request Tracker)
    customer_email: str | None = None
    #: the contract's service dates; each target's own dates narrow them
    in_service: datetime | None = None
    out_of_service: datetime | None = None
    #: the customer's locale (``de_DE``, ``en-US``): the report's paper size follows its territory
    locale: str | None = None
    #: the report's paper size, overriding the locale's
    paper: Literal["A4", "Letter"] | None = None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z]{2,3}([_-]([A-Z]{2}|[0-9]{3}))?", value):
            raise PydanticCustomError("slawatch", "must be a locale such as de_DE or en-US", {})
        return value

    @field_validator("credit_tiers")
    @classmethod
    def _tiers(cls, tiers: list[CreditTier], info: ValidationInfo) -> list[CreditTier]:
        objectives = info.data.get("objectives")
        by_objective: dict[str, list[tuple[int, CreditTier]]] = {}
        for i, t in enumerate(tiers):
            by_objective.setdefault(t.objective, []).append((i, t))
            if t.objective == "availability" and objectives is not None and t.below > objectives.availability:
                raise PydanticCustomError(
                    "slawatch", "tier {i} (below {b} %) is above the availability objective ({o} %): a month that "
                    "meets the objective would be credited", {"i": i, "b": str(t.below), "o": str(objectives.availability)})
        for objective, items in by_objective.items():
            ranked = sorted(items, key=lambda it: it[1].below, reverse=True)  # better service first
            for (i, better), (j, worse) in zip(ranked, ranked[1:]):
                if worse.credit < better.credit:
                    raise PydanticCustomError(
                        "slawatch", "tiers {i} and {j} are inverted: worse {o} (below {wb} %) earns a smaller credit "
                        "({wc} %) than better (below {bb} %: {bc} %)",
                        {"i": i, "j": j, "o": objective, "wb": str(worse.below), "wc": str(worse.credit),
                         "bb": str(better.below), "bc": str(better.credit)})
        return tiers

    @field_validator("request_escalation")
    @classmethod
    def _request_tiers(cls, tiers: list[RequestEscalationTier], info: ValidationInfo) -> list[RequestEscalationTier]:
        if tiers and not info.data.get("response_targets"):
            raise PydanticCustomError("slawatch", "needs response_targets: a tier is a share of a severity's target", {})
        seen: dict[Decimal, int] = {}
        for i, t in enumerate(tiers):
            if t.at in seen:
                raise PydanticCustomError("slawatch", "tiers {j} and {i} are both at {at} %: one tier per share",
                                          {"i": i, "j": seen[t.at], "at": str(t.at)})
            seen[t.at] = i
        return sorted(tiers, key=lambda t: t.at)

    @model_validator(mode="after")
    def _dates(self) -> "Contract":
        _check_service_dates(self.in_service, self.out_of_service)
        return self
    unknown_time: Literal["exclude", "downtime"] = "exclude"
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    escalation: list[EscalationTier] = Field(default_factory=list)
    response_targets: dict[Literal["critical", "major", "minor"], ResponseTarget] = Field(default_factory=dict)
    #: when the support clocks of customer requests run (monitor.sla.business); None: 24x7
    support_hours: SupportHours | None = None
    #: escalation of customer requests (#28) at shares of their response targets, lowest first
    request_escalation: list[RequestEscalationTier] = Field(default_factory=list)
    chronic: ChronicRule | None = None
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    auto_resolve: bool = True
    ticket_merge_window: Duration = 600.0
    grouping: GroupingRule | None = None


def is_ip(value: str) -> bool:
    """Whether ``value`` is an IPv4 or IPv6 literal (a scope such as ``%eth0`` allowed)."""
    return is_ip_literal(value)


_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_address(value: str) -> str:
    """An IPv4 or IPv6 literal (a link-local one with ``%interface`` naming an interface this host has), or a
    host name of RFC 1123 labels. Names must also resolve when the config is loaded (``resolve: at_load``, the
    loader's :func:`monitor.config.loader.check_names`) and are resolved again at each cycle (a name that
    does not resolve then is that cycle's unknown time, with the resolver's reason)."""
    import socket

    text = value.strip()
    address, _, scope = text.partition("%")
    version = ip_version(address)
    if version is not None:
        if scope:
            if version != 6:
                raise PydanticCustomError("slawatch", "an IPv4 address takes no %interface")
            try:
                socket.if_nametoindex(scope)
            except OSError:
                raise PydanticCustomError("slawatch", "no network interface named '{s}' on this host",
                                          {"s": scope}) from None
        return text
    name = text[:-1] if text.endswith(".") else text
    if scope or not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")) \
            or name.replace(".", "").isdigit():
        raise PydanticCustomError("slawatch", "must be an IPv4 or IPv6 address or a host name")
    return text


def _check_service_dates(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None:
        aware = (start.tzinfo is None) == (end.tzinfo is None)
        if aware and end <= start:
            raise PydanticCustomError("slawatch", "out_of_service must be after in_service")


class VantageConfig(_Model):
    """Probe a target from several sites; it is down only when ``quorum`` of them see it down
    (:mod:`monitor.cluster.consensus`). One site: the target is probed from that site only."""

    sites: list[Identifier] = Field(min_length=1)
    quorum: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _quorum(self) -> "VantageConfig":
        if len(set(self.sites)) != len(self.sites):
            raise PydanticCustomError("slawatch", "sites must not repeat")
        if self.quorum > len(self.sites):
            raise PydanticCustomError("slawatch", "quorum {q} is larger than the number of sites ({n})",
                                      {"q": self.quorum, "n": len(self.sites)})
        return self


#: what a cycle needs beyond its probes' worst case (scheduling, judging, handing the result on): measured at
#: 3-4 ms at 1.4 s; the margin is 2 % of the worst case, at least 50 ms (a busy machine that needs more still
#: loses nothing: the scheduler starts a late slot's cycle the moment the late one ends)
CYCLE_MARGIN_MIN, CYCLE_MARGIN_SHARE = 0.05, 0.02


def cycle_margin(worst: float) -> float:
    """The seconds an interval must leave beyond the probes' worst case."""
    return max(CYCLE_MARGIN_MIN, worst * CYCLE_MARGIN_SHARE)


class Target(_Model):
    """A monitored circuit or service: its address, contract, kind, probes and thresholds."""

    id: Identifier
    contract: str
    #: internet and voice circuits; support channels (portal, email, chat) probed as services
    kind: Literal["internet", "voice", "support"]
    address: str = Field(min_length=1, max_length=253)
    interval: PositiveDuration = 30.0
    failure_threshold: int = Field(3, ge=1, le=100)
    recovery_threshold: int = Field(2, ge=1, le=100)
    degraded_threshold: int = Field(3, ge=1, le=100)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    monthly_fee: Money | None = None
    reference: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    #: in a cluster: the sites that probe this target (default: any one node of any site)
    vantage: VantageConfig | None = None
    #: a host name must resolve when the config is loaded (check-config, start, reload), or only at each cycle
    resolve: Literal["at_load", "at_runtime"] = "at_load"
    #: the circuit's service dates (contract's time zone unless they carry an offset): time outside is
    #: neither unknown nor downtime
    in_service: datetime | None = None
    out_of_service: datetime | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @model_validator(mode="after")
    def _service_dates(self) -> "Target":
        _check_service_dates(self.in_service, self.out_of_service)
        return self

    def worst_case(self) -> tuple[float, str]:
        """The longest a cycle's probes can take when nothing answers (they run one after the other), and how:
        each probe's settings say their own (``worst_case``)."""
        parts, total = [], 0.0
        for name in self.probes.enabled():
            seconds, how = getattr(self.probes, name).worst_case(self.address)
            total += seconds
            parts.append(f"{name} {how}")
        return total, ", ".join(parts)

    @model_validator(mode="after")
    def _interval_fits(self) -> "Target":
        # an interval shorter than the probes' worst case overruns exactly when it matters (in an outage): the
        # skipped slots would become unknown time and hide downtime
        worst, how = self.worst_case()
        need = worst + cycle_margin(worst)
        if self.interval < need:
            raise PydanticCustomError(
                "slawatch", "interval {i} s is shorter than the probes' worst case of {w} s ({how}) plus {m} s for "
                "the cycle's own work: during an outage cycles would overrun; make the interval at least {n} s or "
                "shorten the probes",
                {"i": f"{self.interval:g}", "w": f"{worst:.4g}", "how": how, "m": f"{need - worst:.3g}",
                 "n": f"{need:.4g}", "at": "interval"})
        return self

    @model_validator(mode="after")
    def _has_probe(self) -> "Target":
        if not self.probes.enabled():
            raise PydanticCustomError("slawatch", "at least one probe (icmp, snmp, sip, http, tcp, dns, smtp or websocket) must be enabled")
        return self


# --------------------------------------------------------------------------- infrastructure


class StorageConfig(_Model):
    """Where evidence is kept: SQLite (``path``, the embedded default) or PostgreSQL (``dsn``)."""

    backend: Literal["sqlite", "postgresql"] = "sqlite"
    path: str = "var/slawatch.db"
    #: libpq connection string or URI (postgresql backend); a secret: use ${ENV} or dsn_file
    dsn: Secret | None = None
    pool_size: int = Field(4, ge=1, le=64)
    connect_timeout: PositiveDuration = 5.0
    raw_retention: PositiveDuration = 14 * 86400.0
    rollup_retention: PositiveDuration = 800 * 86400.0
    batch_size: int = Field(500, ge=1, le=100000)
    flush_interval: PositiveDuration = 1.0
    #: cycles held in memory while the store cannot be written; past it, the oldest are dropped and
    #: their span is recorded as unknown time
    backlog_max_cycles: int = Field(200_000, ge=100, le=10_000_000)
    #: where batches the store cannot take wait on local disk (monitor.measure.spool), so a crash or restart
    #: during a database outage loses nothing; by default, for PostgreSQL, var/spool/<node>-<database> relative
    #: to the working directory (like path); "" turns it off. SQLite keeps its backlog in memory unless given one.
    spool_dir: str | None = None
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20, le=1 << 40)

    def spool_path(self, node: str | None) -> str | None:
        """The spool directory in force: the configured one, PostgreSQL's default for this node and database, or
        None (off). One directory serves one daemon (it is locked)."""
        if self.spool_dir is not None:
            return self.spool_dir or None
        if self.backend != "postgresql" or self.dsn is None:
            return None
        import hashlib

        where = hashlib.sha256(self.dsn.get_secret_value().encode()).hexdigest()[:12]  # never the DSN itself
        return f"var/spool/{node or 'local'}-{where}"

    @model_validator(mode="after")
    def _backend(self) -> "StorageConfig":
        if self.backend == "postgresql" and self.dsn is None:
            raise PydanticCustomError("slawatch", "the postgresql backend needs dsn (or dsn_file)")
        if self.backend == "postgresql" and self.dsn is not None:
            hosts, attrs = _dsn_hosts(self.dsn.get_secret_value())
            if len(hosts) > 1 and attrs not in ("read-write", "primary"):
                raise PydanticCustomError(
                    "slawatch", "lists {n} hosts ({hosts}) without target_session_attrs=read-write: after a "
                    "failover slawatch could connect to a standby that refuses every write; add "
                    "target_session_attrs=read-write", {"n": str(len(hosts)), "hosts": ", ".join(hosts), "at": "dsn"})
        return self


def _dsn_hosts(dsn: str) -> tuple[list[str], str | None]:
    """The hosts a libpq DSN (URI or keywords) lists, and its target_session_attrs; nothing else of it (the
    password never leaves here)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    dsn = dsn.strip()
    if dsn.startswith(("postgresql://", "postgres://")):
        rest = dsn.split("://", 1)[1]
        netloc = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        hosts = [unquote(h[:h.index("]") + 1] if h.startswith("[") and "]" in h else h.rsplit(":", 1)[0])
                 for h in netloc.split(",") if h]
        query = parse_qs(urlsplit(dsn).query)
        values = query.get("target_session_attrs")
        return [h for h in hosts if h], values[0] if values else None
    params: dict[str, str] = {m.group(1): m.group(2).strip("'")
                              for m in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)", dsn)}
    hosts = [h for h in params.get("host", "").split(",") if h]
    return hosts, params.get("target_session_attrs")


class BasicAuth(_Model):
    username: str
    password: Secret


class ExporterTls(_Model):
    cert_file: str
    key_file: str


#: an availability window the exporter can give per target
Window = Literal["month", "1h", "24h", "7d", "30d"]
#: a monthly report's file format
ReportFormat = Literal["json", "csv", "html", "pdf"]


class PerTargetMetrics(_Model):
    """Which per-target families the exporter writes beyond the default budget (monitor/metrics/targets.py):
    10 series an internet target, 15 a voice target by default."""

    #: slawatch_icmp_rtt_seconds (15 buckets, sum, count: +17 a target); the RTT quantile rules need it
    histograms: bool = False
    #: availability windows: month (the default) and the rolling 1h, 24h, 7d, 30d (+1 a target each)
    windows: list[Window] = Field(default_factory=lambda: list[Window](["month"]))
    #: slawatch_sla_burn_rate for the six burn windows (+6); the shipped rules compute them from slawatch_target_up
    burn_rates: bool = False
    #: budget seconds, excluded time by reason, at-risk, breached, last cycle time, RFC 3550 jitter, internet
    #: targets' last-burst loss and IPDV jitter, voice R-factor windows and the 1 h MOS window, the service
    #: probes' negotiated TLS version
    detail: bool = False
    #: slawatch_probe_phase_seconds{probe,phase}: each service probe's phases (HTTP: resolve, connect, tls,
    #: first_byte, transfer: +5 a probe), as blackbox_exporter's probe_http_duration_seconds
    phases: bool = False


class ExporterConfig(_Model):
    """The Prometheus exporter's listener, TLS, basic auth, reload token and per-target series."""

    enabled: bool = True
    per_target: PerTargetMetrics = Field(default_factory=PerTargetMetrics)
    tls: ExporterTls | None = None
    listen: HostPort = "127.0.0.1:9842"
    basic_auth: BasicAuth | None = None
    reload_token: Secret | None = None  # enables POST /-/reload with "Authorization: Bearer <token>"


class ReportsConfig(_Model):
    """Monthly reports made by the daemon: the previous month's, on ``day`` at ``at`` (in ``timezone``)."""

    enabled: bool = True
    directory: str = "var/reports"
    day: int = Field(1, ge=1, le=28)
    at: ClockTime = "06:00"
    timezone: TimeZoneName = "UTC"
    formats: list[ReportFormat] = Field(default_factory=lambda: list[ReportFormat](["json", "csv", "html"]), min_length=1)
    mail_sink: str | None = None  # an email ticket sink to mail the reports through


class SelfMonitoring(_Model):
    """Reference targets (``reference: true``) are canaries: when at least this share of them fails
    at once, the monitoring host itself is cut off, and failures are recorded as unknown time."""

    reference_failure_ratio: float = Field(0.5, gt=0, le=1)


class TrapUser(_Model):
    user: str
    engine_id: str  # the sender's snmpEngineID, hex

    @field_validator("engine_id")
    @classmethod
    def _engine_id(cls, value: str) -> str:
        digits = value.removeprefix("0x")
        if not re.fullmatch(r"[0-9A-Fa-f]*", digits) or len(digits) % 2:
            raise PydanticCustomError("slawatch", "must be an snmpEngineID in hex, optionally after 0x, an even number "
                                      "of hex digits like 0x80001f8880e9630000d61ff449")
        if not 10 <= len(digits) <= 64:
            raise PydanticCustomError("slawatch", "must be 5 to 32 octets (10 to 64 hex digits; got {n})",
                                      {"n": str(len(digits))})
        return value
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] | None = None
    auth_key: Secret | None = None
    priv_protocol: Literal["des", "aes", "aes192", "aes256", "aes192c", "aes256c"] | None = None
    priv_key: Secret | None = None


class TrapsConfig(_Model):
    """The SNMP trap receiver: linkDown moves the sending target's state at once; the next poll confirms or clears it."""

    listen: HostPort = "127.0.0.1:10162"
    community: Secret | None = None
    users: list[TrapUser] = Field(default_factory=list)
    oids: dict[str, str] = Field(default_factory=dict)  # extra trap OIDs to accept, name -> OID


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "text", "json"] = "auto"
    #: per component, e.g. {slawatch.tickets: debug, slawatch.cycle: warning}
    levels: dict[str, Literal["debug", "info", "warning", "error"]] = Field(default_factory=dict)


class ClusterConfig(_Model):
    """This node's place in a cluster of slawatch nodes sharing one PostgreSQL store."""

    node: Identifier
    site: Identifier
    heartbeat: PositiveDuration = 2.0
    failover_delay: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _delays(self) -> "ClusterConfig":
        if self.failover_delay < 3 * self.heartbeat:
            raise PydanticCustomError(
                "slawatch", "must be at least 3 heartbeats of {h} s, so {m} s or more (got {f} s): a node's lease "
                "must survive two missed heartbeats before another node takes its targets",
                {"h": f"{self.heartbeat:g}", "m": f"{3 * self.heartbeat:g}", "f": f"{self.failover_delay:g}",
                 "at": "failover_delay"})
        return self


#: RT priority -> request severity by default (slawatch's own tickets use 90 and 70 for these: monitor.tickets.sinks.rt)
_PRIORITIES: dict[Literal["critical", "major"], int] = {"critical": 90, "major": 70}


class RequestSource(_Model):
    """Where customer requests are read from (#28): Request Tracker 5 over REST 2. ``queues`` maps each RT queue
    to the contract whose requests it holds; a request's severity is the first of ``severity_from_priority`` whose
    RT priority it reaches (minor below them)."""

    name: Identifier
    type: Literal["rt"] = "rt"
    url: HttpUrl
    token: SecretStr
    verify_tls: bool = True
    queues: dict[str, Identifier] = Field(min_length=1)
    #: a requestor's mail domain -> the contract its requests belong to, over the queue's (a shared queue)
    requestor_domains: dict[str, Identifier] = Field(default_factory=dict)
    #: an RT custom field whose value names the request's contract, over the domain and the queue (a value that
    #: is no contract's id is ignored)
    contract_field: str | None = None
    severity_from_priority: dict[Literal["critical", "major"], int] = Field(default_factory=lambda: dict(_PRIORITIES))
    #: an RT custom field holding critical, major or minor, over the priority (other values are ignored)
    severity_field: str | None = None
    #: statuses in which the request waits on the customer (its clocks pause), and those that resolve it
    waiting_statuses: list[str] = Field(default_factory=lambda: ["stalled"], min_length=0)
    resolved_statuses: list[str] = Field(default_factory=lambda: ["resolved"], min_length=1)
    interval: PositiveDuration = 60.0

    @field_validator("requestor_domains")
    @classmethod
    def _domains(cls, value: dict[str, str]) -> dict[str, str]:
        for domain in value:
            if "@" in domain or not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", domain):
                raise PydanticCustomError("slawatch", "{d}: must be a mail domain like reseller.example",
                                          {"d": domain})
        return {k.lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _statuses(self) -> "RequestSource":
        both = set(self.waiting_statuses) & set(self.resolved_statuses)
        if both:
            raise PydanticCustomError("slawatch", "status {s} cannot both pause and resolve a request",
                                      {"s": ", ".join(sorted(both))})
        return self


#: the least argon2id cost a portal password hash may have (OWASP's password storage minimum: 19 MiB, 2 passes)
ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME = 19456, 2


def check_password_hash(value: str) -> str:
    """An argon2id hash in its PHC string form with at least OWASP's minimum cost; never a password."""
    m = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", value.strip())
    if m is None:
        raise PydanticCustomError("slawatch", "must be an argon2id hash ($argon2id$v=19$m=...), never a password: "
                                  "make one with `slawatch portal-hash`", {})
    if int(m.group(1)) < ARGON2_MIN_MEMORY_KIB or int(m.group(2)) < ARGON2_MIN_TIME:
        raise PydanticCustomError("slawatch", "too weak an argon2id hash (m={m}, t={t}): at least m={mm}, t={mt}",
                                  {"m": m.group(1), "t": m.group(2), "mm": ARGON2_MIN_MEMORY_KIB,
                                   "mt": ARGON2_MIN_TIME})
    return value.strip()


class PortalUser(_Model):
    """A login of the customer portal: its argon2id password hash (``password_hash_file`` or ``${ENV}``; never a
    password) and the contracts it may read (a provider's operator may read several)."""

    name: Identifier
    password_hash: SecretStr
    contracts: list[Identifier] = Field(min_length=1)

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_password_hash(value.get_secret_value()))


class PortalToken(_Model):
    """An API token for the portal's JSON views: the SHA-256 of the token (hex; the token itself is never
    stored) and the contracts it may read."""

    name: Identifier
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    contracts: list[Identifier] = Field(min_length=1)


class PortalConfig(_Model):
    """The customer portal (``slawatch portal``): a read-only web view of each contract on the daemon's store."""

    listen: HostPort = "127.0.0.1:9843"
    tls: ExporterTls | None = None
    #: signs the session cookies (at least 32 characters; ``session_secret_file`` or ``${ENV}``)
    session_secret: SecretStr
    session_lifetime: PositiveDuration = 28800.0
    #: failed logins per client address and user name within ``login_window`` before further tries are refused
    login_attempts: int = Field(5, ge=1, le=100)
    login_window: PositiveDuration = 300.0
    users: list[PortalUser] = Field(default_factory=list)
    tokens: list[PortalToken] = Field(default_factory=list)

    @field_validator("session_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise PydanticCustomError("slawatch", "must be at least 32 characters (random; from a file or the "
                                      "environment)", {})
        return value


class Config(_Model):
    """The whole configuration, validated: every error reported at once with its YAML path."""

    version: Literal[1] = 1
    #: a link to a target's dashboard in ticket texts; {target} and {contract} are filled in
    dashboard_url: str | None = None
    #: a link to the month's report in ticket texts; {contract} and {month} (YYYY-MM, the contract's zone) filled in
    report_url: str | None = None
    #: several nodes against one PostgreSQL store (absent: a single node)
    cluster: ClusterConfig | None = None
    storage: StorageConfig = Field(default_factory=StorageConfig)
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    reports: ReportsConfig | None = None
    self_monitoring: SelfMonitoring = Field(default_factory=SelfMonitoring)
    traps: TrapsConfig | None = None
    contracts: list[Contract] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    ticket_sinks: list[TicketSink] = Field(default_factory=list)
    #: customer requests read from the provider's ticket system (#28)
    request_sources: list[RequestSource] = Field(default_factory=list)
    #: the customer portal (#29); absent: `slawatch portal` refuses to start
    portal: PortalConfig | None = None
    snmp_profiles: dict[str, SnmpProfile] = Field(default_factory=dict)
    #: directories of MIB modules (sources, or pysmi JSON) for MIB::name OIDs, beside the shipped ones
    mib_dirs: list[str] = Field(default_factory=list)

    def contract(self, contract_id: str) -> Contract:
        """The contract ``contract_id`` (KeyError when there is none)."""
        return next(c for c in self.contracts if c.id == contract_id)

    def target(self, target_id: str) -> Target | None:
        """The target ``target_id``, or None."""
        return next((t for t in self.targets if t.id == target_id), None)

    def by_contract(self) -> dict[str, list[Target]]:
        """The targets of each contract, in config order (one pass, for loops over contracts)."""
        out: dict[str, list[Target]] = {}
        for t in self.targets:
            out.setdefault(t.contract, []).append(t)
        return out

    def summary(self) -> str:
        """A one-line summary (contracts, targets, sinks) for logs and systemd's status line."""
        probes = sum(len(t.probes.enabled()) for t in self.targets)
        return (
            f"{len(self.contracts)} contracts, {len(self.targets)} targets, {probes} probes, "
            f"{len(self.ticket_sinks)} ticket sinks"
        )
