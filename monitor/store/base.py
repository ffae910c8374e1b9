"""The storage Protocol. SQLite implements it now; PostgreSQL can join later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol, runtime_checkable

__all__ = ["Store", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord"]


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
    def write_batch(
        self,
        cycles: Iterable[CycleRecord] = (),
        states: Iterable[StateRecord] = (),
        outages: Iterable[OutageRecord] = (),
    ) -> None: ...
    def load_states(self) -> dict[str, StateRecord]: ...
    def last_cycles(self) -> dict[str, CycleRecord]: ...
    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]: ...
    def outages(self, target: str | None = None) -> list[OutageRecord]: ...
    def begin_run(self, started: float, version: str) -> int: ...
    def end_run(self, run_id: int, stopped: float) -> None: ...
    def runs(self) -> list[RunRecord]: ...
    def close(self) -> None: ...
