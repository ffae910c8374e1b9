"""Typed breach events with stable keys: replaying the same data yields the same keys.

Consumed by tickets (issue #6) and metrics. Stored with INSERT OR IGNORE on
the key, so a replay or a restart never doubles an event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["BreachEvent", "EVENT_KINDS", "outage_event", "budget_burn_event", "monthly_breach_event"]

EVENT_KINDS = (
    "outage_started",
    "outage_ended",
    "degradation_started",
    "degradation_ended",
    "budget_burn",
    "monthly_breach",
    "monitoring_outage_started",
    "monitoring_outage_ended",
    "site_outage_started",  # a vantage site's own uplink (monitor.cluster.consensus): reported, no ticket
    "site_outage_ended",
)


@dataclass(frozen=True, slots=True)
class BreachEvent:
    """A breach (outage, degradation, budget burn, monthly miss) with a stable key, so a replay never doubles it."""

    kind: str  # one of EVENT_KINDS
    contract: str
    target: str | None
    at: float  # unix seconds the event is dated from
    key: str
    data: dict

    def data_json(self) -> str:
        """The event's data as compact JSON (as stored)."""
        return json.dumps(self.data, sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict:
        """The event as a plain dict (kind, contract, target, at, key, data)."""
        return asdict(self)


def outage_event(kind: str, contract: str, target: str, at: float, interval_start: float | None,
                 cause: str | None = None) -> BreachEvent:
    """Outage or degradation start/end; keyed by target and the interval's start (ms). ``cause``: the first bad
    cycle's reason (no reply, an interface down), for the ticket."""
    start = at if kind.endswith("started") else interval_start
    key = f"{kind}:{target}:{int(round((start or at) * 1000))}"
    data: dict[str, float | str | None] = {"start": start, "end": at if kind.endswith("ended") else None}
    if cause:
        data["cause"] = cause
    return BreachEvent(kind, contract, target, at, key, data)


def budget_burn_event(contract: str, target: str | None, month: str, severity: str, long_window_s: int,
                      rate: float, at: float) -> BreachEvent:
    """At most one per target (or contract), month, severity and window."""
    scope = target or "*"
    key = f"budget_burn:{contract}:{scope}:{month}:{severity}:{long_window_s}"
    return BreachEvent("budget_burn", contract, target, at, key,
                       {"month": month, "severity": severity, "window_s": long_window_s, "burn_rate": round(rate, 3)})


def monthly_breach_event(contract: str, target: str | None, month: str, objective: str, at: float,
                         figures: dict) -> BreachEvent:
    """Once per contract (or target), month and objective."""
    key = f"monthly_breach:{contract}:{target or '*'}:{month}:{objective}"
    return BreachEvent("monthly_breach", contract, target, at, key, {"month": month, "objective": objective, **figures})
