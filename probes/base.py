"""The probe Protocol and the interface every probe result offers the core.

A result carries its own meaning, so the core never asks what kind it is:

* :meth:`ProbeResult.evidence` -- good, bad or no evidence about the target, with a human reason, and whether
  the probe is *primary* (its silence leaves the target unknown: ICMP and the service probes) or *secondary*
  (its answer counts only when no primary probe ran: SNMP, whose timeout while ICMP answers is no outage);
* :meth:`ProbeResult.samples` -- the figures the quality objectives are judged on (RTT, loss, jitter, a
  service's response time, a certificate's days left) and the packets and RTTs the rollups keep;
* :func:`judge` -- the one place a cycle's samples meet the contract's objectives (used by the state machine's
  quality flag, the voice figures and the rollups);
* :meth:`ProbeResult.lines` -- the evidence in words, for ``slawatch probe``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal, Protocol, runtime_checkable

from monitor.exact import at_least, at_most, exact

__all__ = ["Probe", "ProbeResult", "ProbeContext", "Evidence", "Samples", "judge", "shortfalls",
           "QUALITY_OBJECTIVES", "fmt_ms", "exact", "at_most", "at_least"]


EvidenceVerdict = Literal["good", "bad", "none"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one probe says about its target this cycle."""

    verdict: EvidenceVerdict
    reason: str | None = None
    primary: bool = True


@dataclass(frozen=True, slots=True)
class Samples:
    """A cycle's figures for the quality objectives (seconds, ratios 0..1); None where the probe has none."""

    sent: int | None = None  # packets (ICMP)
    received: int | None = None
    rtts: tuple[float, ...] = ()  # the replies' RTTs, for the latency sketch
    rtt: float | None = None  # the cycle's RTT (median of the replies)
    loss: float | None = None
    jitter: float | None = None
    response: float | None = None  # a service's response time (SIP final response, HTTP total, DNS answer, ...)
    tls_days_left: float | None = None  # the peer certificate's days until notAfter
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_exact(self) -> Fraction | None:
        """The loss ratio as an exact fraction: lost over sent where the packets are counted (7 of 1,000 is
        7/1000, never ``0.007000000000000001``), else the ratio as given."""
        if self.sent and self.received is not None:
            return Fraction(self.sent - self.received, self.sent)
        return None if self.loss is None else exact(self.loss)


#: the objectives one cycle is judged on for the state machine's quality flag (degraded)
QUALITY_OBJECTIVES = ("loss", "latency", "jitter", "response_time", "tls_expiry")


def judge(samples: Samples, objectives: Any) -> dict[str, bool]:
    """The one judgement of a cycle's samples against a contract's objectives: objective -> met, for each
    objective the contract sets and the samples have a figure for (loss as a percentage, exact decimal)."""
    out: dict[str, bool] = {}
    if objectives is None:
        return out
    loss = getattr(objectives, "loss", None)
    loss_exact = samples.loss_exact
    if loss is not None and loss_exact is not None:
        out["loss"] = at_most(loss_exact * 100, loss)
    latency = getattr(objectives, "latency", None)
    if latency is not None and samples.rtt is not None:
        out["latency"] = at_most(samples.rtt, latency.max)
    jitter = getattr(objectives, "jitter", None)
    if jitter is not None and samples.jitter is not None:
        out["jitter"] = at_most(samples.jitter, jitter)
    one_way = getattr(objectives, "one_way_delay", None)
    if one_way is not None and samples.rtt is not None:
        out["one_way_delay"] = at_most(exact(samples.rtt) / 2, one_way)
    response = getattr(objectives, "response_time", None)
    if response is not None and samples.response is not None:
        out["response_time"] = at_most(samples.response, response.max)
    expiry = getattr(objectives, "tls_expiry_min", None)
    if expiry is not None and samples.tls_days_left is not None:
        out["tls_expiry"] = at_least(exact(samples.tls_days_left) * 86400, expiry)
    return out


def shortfalls(samples: Samples, objectives: Any, only: tuple[str, ...] = QUALITY_OBJECTIVES) -> dict[str, str]:
    """The objectives of :func:`judge` the samples miss (among ``only``), each in words with the figure and the
    limit, as a NOC engineer reads them in a degradation ticket (``tls_expiry`` -> ``TLS certificate expires in
    3.0 days, under the 14-day minimum``)."""
    out: dict[str, str] = {}
    for name, met in judge(samples, objectives).items():
        if met or name not in only:
            continue
        if name == "loss":
            words = f"loss {float(samples.loss_exact * 100):.2f} % above {objectives.loss} %"  # type: ignore[operator]
        elif name == "latency":
            words = f"RTT {fmt_ms(samples.rtt)} above {fmt_ms(objectives.latency.max)}"
        elif name == "jitter":
            words = f"jitter {fmt_ms(samples.jitter)} above {fmt_ms(objectives.jitter)}"
        elif name == "one_way_delay":
            words = f"one-way delay {fmt_ms(samples.rtt / 2)} above {fmt_ms(objectives.one_way_delay)}"  # type: ignore[operator]
        elif name == "response_time":
            words = f"response time {fmt_ms(samples.response)} above {fmt_ms(objectives.response_time.max)}"
        else:  # tls_expiry
            days: float = samples.tls_days_left  # type: ignore[assignment]
            words = (f"TLS certificate expired {-days:.1f} days ago" if days < 0
                     else f"TLS certificate expires in {days:.1f} days") \
                + f", under the {objectives.tls_expiry_min / 86400:g}-day minimum"
        out[name] = words
    return out


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds for people (``-`` for none)."""
    return "-" if seconds is None else f"{seconds * 1000:.3f} ms"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What every probe result carries. Subclasses add their raw samples and override the interface below."""

    probe: str
    target: str
    address: str
    started: float  # unix seconds, wall clock, when the cycle began
    duration: float  # seconds the probe took
    ok: bool
    reason: str | None = None

    # -- the interface the core uses -------------------------------------------------------------
    def evidence(self) -> Evidence:
        """A plain result (a probe that could not be set up, a canary's stand-in): good when ok, else none."""
        return Evidence("good" if self.ok else "none", self.reason)

    def samples(self) -> Samples:
        """The figures the objectives are judged on (packets, RTTs, jitter, response time)."""
        return Samples()

    def lines(self) -> list[str]:
        """The evidence in words, one line each, beyond the status line."""
        return []

    def record_samples(self) -> dict[str, Any]:
        """What the raw cycle record keeps of the samples (JSON), enough to rebuild the cycle's rollup."""
        return {}

    def metrics(self) -> dict[str, float]:
        """The result's own figures for the exporter (name suffix -> value, base units); ``name:value`` keys carry
        a label's value (``phase_seconds:connect``)."""
        return {}

    @classmethod
    def from_record(cls, probe: str, target: str, started: float, duration: float, ok: bool, reason: str | None,
                    sent: int | None, received: int | None, samples: dict[str, Any]) -> "ProbeResult | None":
        """A stored cycle (:meth:`record_samples` and the packet counts) back as a result of this kind, to rebuild
        a rollup from raw cycles; None where the record holds no samples for the rollups (SNMP)."""
        return None

    def as_failed(self, reason: str) -> "ProbeResult":
        """This result stripped of its evidence (the canary's: the monitoring host is cut off)."""
        return replace(self, ok=False, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for JSON output)."""
        return asdict(self)


@dataclass(slots=True)
class ProbeContext:
    """Shared resources a probe may use, passed in by whoever runs it (the daemon, the CLI)."""

    icmp_engine: Any = None
    snmp_engine: Any = None
    snmp_profiles: Any = None  # the config's user-defined SNMP profiles


@runtime_checkable
class Probe(Protocol):
    """``await probe(target_id, address, settings, context=ctx) -> ProbeResult``; never raises for a bad target.
    ``settings`` is the probe's own config model (``probes.<kind>.<Kind>ProbeConfig``, a
    :class:`probes.settings.ProbeSettings`), typed in each probe's signature."""

    async def __call__(self, target_id: str, address: str, settings: Any, *, context: ProbeContext | None = None) -> ProbeResult:
        """Probe ``address`` for ``target_id`` with the probe's settings; a failing target is a result, never an
        exception."""
        ...
