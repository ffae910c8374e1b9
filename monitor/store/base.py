"""The storage Protocol. SQLite implements it now; PostgreSQL can join later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..events import BreachEvent
    from ..rollup import Rollup

__all__ = ["Store", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord", "UnknownRecord", "Batch"]


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """One probe cycle of one target: the verdict plus the probe's raw samples."""

    target: str
    probe: str
    started: float
    duration: float
    ok: bool
    verdict: str
    reason: str | None
    sent: int | None = None
    received: int | None = None
    rtt_median: float | None = None
    jitter: float | None = None
    samples: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StateRecord:
    target: str
    state: str
    since: float | None
    updated: float
    tracker: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutageRecord:
    """An outage (kind 'down') or degradation (kind 'degraded'); ``end`` None while open."""

    target: str
    contract: str
    kind: str
    start: float
    end: float | None = None
    #: probe evidence: last good and first bad sample, failed cycles
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UnknownRecord:
    """Time without evidence: a gap between cycles, or a cycle whose probes could not run."""

    target: str
    start: float
    end: float
    reason: str


@dataclass(slots=True)
class Batch:
    """Everything one store transaction writes."""

    cycles: list[CycleRecord] = field(default_factory=list)
    states: dict[str, StateRecord] = field(default_factory=dict)
    outages: list[OutageRecord] = field(default_factory=list)
    unknown: list[UnknownRecord] = field(default_factory=list)
    events: list["BreachEvent"] = field(default_factory=list)
    #: (target, hour start in unix seconds) -> snapshot of that hour's rollup
    hourly: dict[tuple[str, int], "Rollup"] = field(default_factory=dict)
    #: (target, "YYYY-MM") -> snapshot of that month's rollup
    monthly: dict[tuple[str, str], "Rollup"] = field(default_factory=dict)

    def __len__(self) -> int:
        return (len(self.cycles) + len(self.states) + len(self.outages) + len(self.unknown) + len(self.events)
                + len(self.hourly) + len(self.monthly))

    def absorb(self, newer: "Batch") -> None:
        """Put a newer batch after this one (used to retry a failed write together with new data)."""
        self.cycles.extend(newer.cycles)
        self.states.update(newer.states)
        self.outages.extend(newer.outages)
        self.unknown.extend(newer.unknown)
        self.events.extend(newer.events)
        self.hourly.update(newer.hourly)
        self.monthly.update(newer.monthly)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    started: float
    stopped: float | None
    version: str
    clean: bool


@runtime_checkable
class Store(Protocol):
    def migrate(self) -> int: ...
    def write(self, batch: Batch) -> None: ...
    def unknown_intervals(self, target: str | None, start: float, end: float) -> list[UnknownRecord]: ...
    def monthly_rollups(self, month: str) -> dict[str, "Rollup"]: ...
    def hourly_rollups(self, target: str, start: float, end: float) -> dict[int, "Rollup"]: ...
    def events(self, start: float | None = None, end: float | None = None) -> list["BreachEvent"]: ...
    def load_states(self) -> dict[str, StateRecord]: ...
    def last_cycles(self) -> dict[str, CycleRecord]: ...
    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]: ...
    def outages(self, target: str | None = None) -> list[OutageRecord]: ...
    def begin_run(self, started: float, version: str) -> int: ...
    def end_run(self, run_id: int, stopped: float) -> None: ...
    def runs(self) -> list[RunRecord]: ...
    def close(self) -> None: ...
