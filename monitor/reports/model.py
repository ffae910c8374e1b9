"""The monthly report as a typed model: what :func:`monitor.reports.report.build_report` returns and every
renderer reads (JSON here, CSV in ``report``, HTML and PDF in ``html``).

Types are exact where the figure is compared or paid: ratios are :class:`~fractions.Fraction`, objectives and
money :class:`~decimal.Decimal`, times aware :class:`~datetime.datetime` in the contract's zone. Units are
converted once, where the model is built: the engine's integer milliseconds become seconds (``*_s``) there, and
no renderer converts a unit again (it only rounds for display). The JSON document (schema ``slawatch.report/1``)
is this model written out by :func:`report_dict`, key for key as before the model existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping

from monitor.sla.credits import display_pct
from monitor.sla.reconcile import Reconciled

__all__ = ["SCHEMA", "Report", "ContractReport", "TargetReport", "Period", "ContractPeriod", "Availability",
           "ContractAvailability", "Excluded", "OutageItem", "Outages", "Percentiles", "Loss", "Jitter", "Voice",
           "Cycles", "Day", "Credits", "CreditLine", "Chronic", "ChronicMonth", "ResponseCount", "SeverityResponse",
           "Tickets", "Vantage", "RequestsReport", "RequestFigures", "RequestBreach", "pct", "report_dict",
           "shown_ms"]

SCHEMA = "slawatch.report/1"


def pct(ratio: Fraction | None) -> str | None:
    """A ratio as a percentage with 4 decimals, truncated (display only): a month just short of its objective
    never shows the objective itself."""
    return None if ratio is None else str(display_pct(ratio * 100, 4))


def shown_ms(seconds: float | None) -> float | None:
    """A duration in seconds shown in milliseconds to 3 decimals (display only: the model keeps seconds)."""
    return None if seconds is None else round(seconds * 1000, 3)


def _exact(ratio: Fraction | None) -> str | None:
    return None if ratio is None else f"{ratio.numerator}/{ratio.denominator}"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _decimal(value: float | None, places: int) -> str | None:
    """A measured float as a decimal string rounded half up to ``places`` (display: JSON and CSV never carry a
    binary float's noise such as 0.7000000000000001)."""
    if value is None:
        return None
    from decimal import ROUND_HALF_UP

    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Period:
    """A period in the contract's zone: [start, end) and its length."""

    start: datetime
    end: datetime
    seconds: float

    def _json(self) -> dict[str, Any]:
        return {"start": _iso(self.start), "end": _iso(self.end), "seconds": self.seconds}


@dataclass(frozen=True, slots=True)
class ContractPeriod(Period):
    """The contract's period, and how much of it has passed when the report was made."""

    month_to_date: bool = False
    up_to: datetime | None = None

    def _json(self) -> dict[str, Any]:
        return {**Period._json(self), "month_to_date": self.month_to_date, "up_to": _iso(self.up_to)}


@dataclass(frozen=True, slots=True)
class Availability:
    """Availability against its objective, judged exactly."""

    objective_pct: Decimal
    ratio: Fraction | None
    met: bool | None

    @property
    def value_pct(self) -> str | None:
        """The ratio as a display percentage (4 decimals, truncated)."""
        return pct(self.ratio)

    def _json(self) -> dict[str, Any]:
        return {"objective_pct": str(self.objective_pct), "value_pct": self.value_pct, "met": self.met,
                "exact": _exact(self.ratio)}


@dataclass(frozen=True, slots=True)
class ContractAvailability(Availability):
    """A contract's availability over its targets, with the time it is computed on."""

    eligible_s: float = 0.0
    downtime_s: float = 0.0

    def _json(self) -> dict[str, Any]:
        return {"objective_pct": str(self.objective_pct), "value_pct": self.value_pct, "met": self.met,
                "eligible_s": self.eligible_s, "downtime_s": self.downtime_s, "exact": _exact(self.ratio)}


@dataclass(frozen=True, slots=True)
class Excluded:
    """Time left out of a target's availability, by cause."""

    maintenance_s: float
    out_of_service_s: float
    unknown_s: float
    total_s: float
    unknown_policy: str

    def _json(self) -> dict[str, Any]:
        return {"maintenance": self.maintenance_s, "out_of_service": self.out_of_service_s, "unknown": self.unknown_s,
                "total": self.total_s, "unknown_policy": self.unknown_policy}


@dataclass(frozen=True, slots=True)
class OutageItem:
    """One outage clipped to the period, with the downtime it counts, its probe evidence and its tickets."""

    start: datetime
    end: datetime
    duration_s: float
    ongoing: bool
    targets: tuple[str, ...]
    counted_downtime_s: float
    probe_evidence: Mapping[str, Any]
    tickets: tuple[int, ...]

    def _json(self) -> dict[str, Any]:
        return {"start": _iso(self.start), "end": _iso(self.end), "duration_s": self.duration_s,
                "ongoing": self.ongoing, "targets": list(self.targets), "counted_downtime_s": self.counted_downtime_s,
                "probe_evidence": self.probe_evidence, "tickets": list(self.tickets)}


@dataclass(frozen=True, slots=True)
class Outages:
    """A target's outages in the period: how many, mean and longest time to repair, and each one."""

    count: int
    mttr_s: float | None
    longest_s: float | None
    items: tuple[OutageItem, ...]

    def _json(self) -> dict[str, Any]:
        return {"count": self.count, "mttr_s": self.mttr_s, "longest_s": self.longest_s,
                "items": [o._json() for o in self.items]}


@dataclass(frozen=True, slots=True)
class Percentiles:
    """A distribution's p50/p95/p99 (seconds) and, when an objective applies, its percentile, target and value."""

    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    met: bool | None
    #: the objective's figures as the engine judged them (percentile, target_s, value_s[, samples]); empty when
    #: the contract sets no such objective
    objective: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target_s(self) -> float | None:
        """The objective's bound, seconds (None without an objective)."""
        return self.objective.get("target_s")

    @property
    def value_s(self) -> float | None:
        """The figure at the objective's percentile, seconds."""
        return self.objective.get("value_s")

    def _json(self) -> dict[str, Any]:
        return {**self.objective, "p50_s": self.p50_s, "p95_s": self.p95_s, "p99_s": self.p99_s, "met": self.met}


@dataclass(frozen=True, slots=True)
class Loss:
    """Packet loss of the cycles that got a reply, against the contract's target."""

    ratio: Fraction | None  # lost / sent, exact
    target_pct: Decimal | None
    met: bool | None
    basis: str

    @property
    def value_pct(self) -> str | None:
        """The loss as a display percentage (4 decimals, truncated)."""
        return pct(self.ratio)

    def _json(self) -> dict[str, Any]:
        return {"value_pct": self.value_pct, "target_pct": _str(self.target_pct), "met": self.met, "basis": self.basis}


@dataclass(frozen=True, slots=True)
class Jitter:
    """Mean and largest jitter against the contract's target."""

    mean_s: float | None
    max_s: float | None
    target_s: float | None
    met: bool | None

    def _json(self) -> dict[str, Any]:
        return {"mean_s": self.mean_s, "max_s": self.max_s, "target_s": self.target_s, "met": self.met}


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice target's quality figures (G.107 E-model), as the engine judged them."""

    figures: Mapping[str, Any]

    @property
    def mos_mean(self) -> str | None:
        """The mean of the cycles' MOS, as a decimal string."""
        return _decimal(self.figures.get("mos_mean"), 3)

    @property
    def mos_min(self) -> str | None:
        """The lowest cycle MOS, as a decimal string."""
        return _decimal(self.figures.get("mos_min"), 3)

    def _json(self) -> dict[str, Any]:
        """Every figure as a decimal string (MOS and R to 3 places, shares to 6), never a binary float's noise."""
        return {k: _decimal(v, 6 if k.startswith("share_") else 3) if isinstance(v, float) else
                (str(v) if isinstance(v, Decimal) else v) for k, v in self.figures.items()}


@dataclass(frozen=True, slots=True)
class Cycles:
    """The month's probe cycles by verdict."""

    total: int
    good: int
    bad: int
    unknown: int
    maintenance: int
    #: maintenance changed after ingestion: how the month was rebuilt (monitor.sla.reconcile)
    reconciled: Reconciled | None = None

    def _json(self) -> dict[str, Any]:
        return {"total": self.total, "good": self.good, "bad": self.bad, "unknown": self.unknown,
                "maintenance": self.maintenance,
                "maintenance_reconciled": self.reconciled.as_dict() if self.reconciled else None}


@dataclass(frozen=True, slots=True)
class Day:
    """One local day's availability, from the month's own intervals (the days add up to the month)."""

    date: str
    ratio: Fraction | None
    downtime_s: float

    def _json(self) -> dict[str, Any]:
        return {"date": self.date, "availability_pct": pct(self.ratio), "downtime_s": self.downtime_s}


@dataclass(frozen=True, slots=True)
class Vantage:
    """A multi-site target's sites and the quorum that must agree."""

    sites: tuple[str, ...]
    quorum: int


@dataclass(frozen=True, slots=True)
class TargetReport:
    """One target's month."""

    id: str
    kind: str
    period: Period
    coverage: Fraction | None
    vantage: Vantage | None
    excluded: Excluded
    downtime_s: float
    availability: Availability
    outages: Outages
    latency: Percentiles
    response_time: Percentiles
    loss: Loss
    jitter: Jitter
    voice: Voice | None
    cycles: Cycles
    daily: tuple[Day, ...]

    def _json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "period": self.period._json(), "coverage_pct": pct(self.coverage),
            **({"vantage": {"sites": list(self.vantage.sites), "quorum": self.vantage.quorum}}
               if self.vantage is not None else {}),
            "excluded_s": self.excluded._json(), "downtime_s": self.downtime_s,
            "availability": self.availability._json(), "outages": self.outages._json(),
            "latency": self.latency._json(), "response_time": self.response_time._json(),
            "loss": self.loss._json(), "jitter": self.jitter._json(),
            "voice": None if self.voice is None else self.voice._json(), "cycles": self.cycles._json(),
            "daily": [d._json() for d in self.daily],
        }


@dataclass(frozen=True, slots=True)
class CreditLine:
    """One objective's credit for one scope (the contract or a target), with the outages behind it."""

    scope: str
    objective: str
    compliance_pct: Decimal | None
    tier_below_pct: Decimal | None
    credit_pct: Decimal
    fee: Decimal
    amount: Decimal
    evidence: tuple[OutageItem, ...]

    def _json(self) -> dict[str, Any]:
        return {"scope": self.scope, "objective": self.objective, "compliance_pct": _str(self.compliance_pct),
                "tier_below_pct": str(self.tier_below_pct), "credit_pct": str(self.credit_pct), "fee": str(self.fee),
                "amount": str(self.amount), "evidence": [e._json() for e in self.evidence]}


@dataclass(frozen=True, slots=True)
class Credits:
    """A contract's credit for the month (monitor.sla.credits), money exact."""

    basis: str
    combine: str
    fees: Decimal
    cap_pct: Decimal | None
    uncapped: Decimal
    total: Decimal
    capped: bool
    status: str
    min_coverage_pct: Decimal
    coverage_notes: tuple[str, ...]
    lines: tuple[CreditLine, ...]

    def _json(self) -> dict[str, Any]:
        return {"basis": self.basis, "combine": self.combine, "fees": str(self.fees), "cap_pct": _str(self.cap_pct),
                "uncapped": str(self.uncapped), "total": str(self.total), "capped": self.capped,
                "status": self.status, "min_coverage_pct": str(self.min_coverage_pct),
                "coverage_notes": list(self.coverage_notes), "lines": [line._json() for line in self.lines]}


@dataclass(frozen=True, slots=True)
class ChronicMonth:
    """One month of the chronic-failure window."""

    month: str
    ratio: Fraction | None
    missed: bool | None

    def _json(self) -> dict[str, Any]:
        return {"month": self.month, "availability_pct": pct(self.ratio), "missed": self.missed}


@dataclass(frozen=True, slots=True)
class Chronic:
    """Chronic failure: the window's months that missed an objective, and whether termination is reached."""

    missed_months_required: int
    window_months: int
    months: tuple[ChronicMonth, ...]

    @property
    def missed(self) -> int:
        """How many months of the window missed an objective."""
        return sum(1 for m in self.months if m.missed)

    @property
    def termination_right_reached(self) -> bool:
        """Whether enough months missed for the termination right."""
        return self.missed >= self.missed_months_required

    def _json(self) -> dict[str, Any]:
        return {"missed_months_required": self.missed_months_required, "window_months": self.window_months,
                "months": [m._json() for m in self.months], "missed": self.missed,
                "termination_right_reached": self.termination_right_reached}


@dataclass(slots=True)
class ResponseCount:
    """Of a severity's tickets: how many were measured against a response target, and how many met it."""

    met: int = 0
    measured: int = 0
    target_s: float | None = None

    def _json(self) -> dict[str, Any]:
        return {"met": self.met, "measured": self.measured, "target_s": self.target_s}


@dataclass(slots=True)
class SeverityResponse:
    """A severity's tickets and how many met their acknowledge and resolve targets."""

    tickets: int = 0
    acknowledge: ResponseCount = field(default_factory=ResponseCount)
    resolve: ResponseCount = field(default_factory=ResponseCount)

    def _json(self) -> dict[str, Any]:
        return {"tickets": self.tickets, "acknowledge": self.acknowledge._json(), "resolve": self.resolve._json()}


@dataclass(frozen=True, slots=True)
class Tickets:
    """The contract's tickets of the period and their response figures per severity."""

    ids: tuple[int, ...]
    response: Mapping[str, SeverityResponse]

    def _json(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "response": {k: v._json() for k, v in self.response.items()}}


@dataclass(frozen=True, slots=True)
class ContractReport:
    """One contract's month: its period, availability, credits with their evidence, chronic failure, tickets."""

    id: str
    customer: str
    provider: str
    timezone: str
    currency: str
    locale: str | None
    paper: str
    period: ContractPeriod
    coverage: Fraction | None
    availability: ContractAvailability
    credits: Credits
    chronic: Chronic | None
    tickets: Tickets
    targets: tuple[TargetReport, ...]
    #: customer requests of the month (#28); None when the config reads none for this contract
    requests: "RequestsReport | None" = None

    def _json(self) -> dict[str, Any]:
        return {
            "id": self.id, "customer": self.customer, "provider": self.provider, "timezone": self.timezone,
            "currency": self.currency, "locale": self.locale, "paper": self.paper, "period": self.period._json(),
            "coverage_pct": pct(self.coverage), "availability": self.availability._json(),
            "credits": self.credits._json(), "chronic": None if self.chronic is None else self.chronic._json(),
            "tickets": self.tickets._json(), "targets": [t._json() for t in self.targets],
            **({"requests": self.requests._json()} if self.requests is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The monthly report: per contract and target the figures, credits and the evidence behind each."""

    month: str
    generated_at: datetime
    slawatch_version: str
    contracts: tuple[ContractReport, ...]

    @property
    def target_count(self) -> int:
        """How many targets the report covers."""
        return sum(len(c.targets) for c in self.contracts)


def report_dict(report: Report) -> dict[str, Any]:
    """The report as the JSON document of schema ``slawatch.report/1``."""
    return {"schema": SCHEMA, "version": 1, "month": report.month, "generated_at": _iso(report.generated_at),
            "slawatch_version": report.slawatch_version, "contracts": [c._json() for c in report.contracts]}


@dataclass(frozen=True, slots=True)
class RequestBreach:
    """A customer request that missed a target: which clock, by how much (business seconds)."""

    source: str
    external_id: str
    severity: str
    clock: str  # first_response | resolution
    business_s: float
    target_s: float
    #: the request in its system (RT's display page), when the source is known
    link: str | None = None
    subject: str = ""

    def _json(self) -> dict[str, Any]:
        return {"source": self.source, "id": self.external_id, "severity": self.severity, "clock": self.clock,
                "business_s": self.business_s, "target_s": self.target_s, "link": self.link, "subject": self.subject}


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """One severity's customer requests of the month: how many, and each clock met/measured with its median
    and 90th percentile in business seconds (None when nothing was measured)."""

    severity: str
    count: int
    first_response_met: int
    first_response_measured: int
    resolution_met: int
    resolution_measured: int
    first_response_p50_s: float | None
    first_response_p90_s: float | None
    resolution_p50_s: float | None
    resolution_p90_s: float | None

    def _json(self) -> dict[str, Any]:
        return {"severity": self.severity, "count": self.count,
                "first_response": {"met": self.first_response_met, "measured": self.first_response_measured,
                                   "p50_s": self.first_response_p50_s, "p90_s": self.first_response_p90_s},
                "resolution": {"met": self.resolution_met, "measured": self.resolution_measured,
                               "p50_s": self.resolution_p50_s, "p90_s": self.resolution_p90_s}}


@dataclass(frozen=True, slots=True)
class RequestsReport:
    """A contract's customer requests of the month (#28), in its support hours."""

    by_severity: tuple[RequestFigures, ...]
    breaches: tuple[RequestBreach, ...]
    #: each source's last successful read (UTC): running clocks are judged up to it, the time after is unknown
    sources_read: tuple[tuple[str, datetime | None], ...] = ()

    def _json(self) -> dict[str, Any]:
        return {"by_severity": [f._json() for f in self.by_severity], "breaches": [b._json() for b in self.breaches],
                "sources_read": {s: None if at is None else at.isoformat().replace("+00:00", "Z")
                                 for s, at in self.sources_read}}
