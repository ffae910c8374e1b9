"""The storage Protocol: everything the rest of slawatch reads from or writes to a store.

Nothing outside :mod:`monitor.store` touches a connection, a cursor, a lock or
SQL text (``tests/test_boundary.py`` enforces it). The ticket ledger works
through a :class:`TicketTx`, a unit of work that lives inside one store
transaction, so a ticket and its outbox rows commit with the event that caused
them. Times are unix seconds (floats) on both sides of the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Collection, Callable, ContextManager, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:
    from monitor.measure.events import BreachEvent
    from monitor.sla.rollup import Rollup

__all__ = ["Store", "TicketTx", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord", "UnknownRecord", "Batch",
           "Ticket", "OutboxItem", "Delivered", "StoreInfo", "TABLES", "NodeInfo", "Fence"]


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
    #: in a cluster: the node that probed, and the site (vantage point) it probed from
    node: str | None = None
    site: str | None = None


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A target's persisted state: the tracker's snapshot and when it was last seen."""

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


#: every table of a store, in the order ``store copy`` copies them (parents before children), with each
#: column's kind: "" plain, "t" a time (unix seconds), "j" JSON, "b" a boolean
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "runs": (("id", ""), ("started", "t"), ("stopped", "t"), ("version", "")),
    "targets": (("id", ""), ("name", "")),
    "target_state": (("target", ""), ("state", ""), ("since", "t"), ("updated", "t"), ("tracker", "j")),
    "cycles": (("target", ""), ("probe", ""), ("started", "t"), ("duration", ""), ("ok", "b"), ("verdict", ""),
               ("reason", ""), ("sent", ""), ("received", ""), ("rtt_median", ""), ("jitter", ""), ("samples", "j"),
               ("node", ""), ("site", "")),
    "outages": (("id", ""), ("target", ""), ("contract", ""), ("kind", ""), ("start", "t"), ("end", "t"),
                ("evidence", "j")),
    "unknown_intervals": (("id", ""), ("target", ""), ("start", "t"), ("end", "t"), ("reason", "")),
    "events": (("key", ""), ("kind", ""), ("contract", ""), ("target", ""), ("at", "t"), ("data", "j")),
    "rollups_hourly": (("target_id", ""), ("hour", ""), ("counts", ""), ("rtt", "")),
    "rollups_monthly": (("target_id", ""), ("month", ""), ("counts", ""), ("rtt", "")),
    "tickets": (("id", ""), ("uid", ""), ("incident_key", ""), ("contract", ""), ("targets", "j"), ("severity", ""),
                ("kind", ""), ("state", ""), ("title", ""), ("opened", "t"), ("acknowledged", "t"), ("resolved", "t"),
                ("tier", ""), ("parent_id", ""), ("updated", "t")),
    "ticket_events": (("id", ""), ("ticket_id", ""), ("at", "t"), ("kind", ""), ("text", "")),
    "ticket_refs": (("ticket_id", ""), ("sink", ""), ("external_id", ""), ("last_action", "")),
    "outbox": (("id", ""), ("ticket_id", ""), ("sink", ""), ("action", ""), ("text", ""), ("recipients", "j"),
               ("idempotency_key", ""), ("created", "t"), ("attempts", ""), ("next_attempt", "t"), ("delivered", "t"),
               ("last_error", "")),
}


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of the daemon: when it started and stopped, and its version."""

    id: int
    started: float
    stopped: float | None
    version: str
    clean: bool


@dataclass(frozen=True, slots=True)
class Ticket:
    """One row of the ticket ledger."""

    id: int
    uid: str
    incident_key: str
    contract: str
    targets: list[str]
    severity: str
    kind: str
    state: str
    title: str
    opened: float
    acknowledged: float | None
    resolved: float | None
    tier: int
    parent_id: int | None
    updated: float


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One delivery of a ticket to a sink (an outbox row), with the sink's reference if it has one."""

    id: int
    ticket_id: int
    sink: str
    action: str
    text: str
    recipients: list[str]
    idempotency_key: str
    created: float
    attempts: int
    next_attempt: float
    delivered: float | None
    last_error: str | None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a successful delivery records: the sink's reference for the ticket."""

    outbox_id: int
    ticket_id: int
    sink: str
    action: str
    external_id: str
    at: float


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A cluster member as the database sees it; ``age`` is seconds since its last heartbeat (database clock)."""

    node: str
    site: str
    instance: str
    epoch: int
    age: float
    started: float
    config_hash: str
    version: str
    host: str
    pid: int
    owned: int
    left: bool

    def alive(self, failover_delay: float) -> bool:
        return not self.left and self.age < failover_delay


@dataclass(frozen=True, slots=True)
class Fence:
    """The fencing token a cluster node's writes carry: the write commits only while this instance holds an
    unexpired lease (its heartbeat younger than ``failover_delay``) under this epoch."""

    node: str
    instance: str
    epoch: int
    failover_delay: float


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``slawatch store status`` shows."""

    backend: str
    location: str  # a path, or a DSN without its password
    schema_version: int
    code_version: int
    rows: dict[str, int]


class TicketTx(Protocol):
    """The ticket ledger's unit of work: every call runs inside one open store transaction."""

    def ticket(self, ticket_id: int) -> Ticket | None: ...
    def unresolved(self, incident_key: str) -> Ticket | None: ...
    def resolved_since(self, incident_key: str, since: float) -> Ticket | None: ...
    def open_roots(self, contract: str, kind: str, opened_since: float) -> list[Ticket]: ...
    def open_root_ids(self) -> list[int]: ...
    def open_children(self, parent_id: int) -> int: ...
    def insert_ticket(self, uid: str, incident_key: str, contract: str, targets: list[str], severity: str,
                      kind: str, title: str, opened: float, parent_id: int | None) -> int: ...
    def set_state(self, ticket_id: int, state: str, *, acknowledged: float | None = None,
                  resolved: float | None = None) -> None: ...
    def set_targets(self, ticket_id: int, targets: list[str]) -> None: ...
    def set_tier(self, ticket_id: int, tier: int) -> None: ...
    def set_parent(self, ticket_id: int, parent_id: int) -> None: ...
    def note(self, ticket_id: int, kind: str, text: str, at: float) -> None: ...
    def outbox_count(self, ticket_id: int) -> int: ...
    def enqueue(self, ticket_id: int, sink: str, action: str, text: str, recipients: list[str], key: str,
                at: float) -> None: ...
    def drop_pending(self, ticket_id: int) -> int: ...


@runtime_checkable
class Store(Protocol):
    """Every operation the daemon, the CLI, the reports and the ticket ledger perform on stored evidence."""

    backend: str
    #: where it is, for messages: a path, or the DSN without its password
    location: str

    # schema and lifecycle
    def migrate(self) -> int: ...
    def schema_version(self) -> int: ...
    def info(self) -> StoreInfo: ...
    def close(self) -> None: ...
    # evidence: writes
    def write(self, batch: Batch, on_new_event: "Callable[[TicketTx, BreachEvent], None] | None" = None) -> None: ...
    def purge(self, raw_before: float, rollups_before: float) -> tuple[int, int]: ...
    def compact(self) -> None: ...
    def size_bytes(self) -> int: ...
    # evidence: reads
    def count_cycles(self) -> int: ...
    def outages_between(self, start: float, end: float) -> list[OutageRecord]: ...
    def unknown_intervals(self, target: str | None, start: float, end: float) -> list[UnknownRecord]: ...
    def monthly_rollups(self, month: str, target: str | None = None) -> dict[str, "Rollup"]: ...
    def state(self, target: str) -> StateRecord | None: ...
    def hourly_rollups(self, target: str, start: float, end: float) -> dict[int, "Rollup"]: ...
    def events(self, start: float | None = None, end: float | None = None) -> list["BreachEvent"]: ...
    def load_states(self, names: "Collection[str] | None" = None) -> dict[str, StateRecord]: ...
    def last_cycles(self) -> dict[str, CycleRecord]:
        """Each target's latest cycle, without its samples (``slawatch status`` shows the cycle's figures)."""
        ...
    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]: ...
    def outages(self, target: str | None = None) -> list[OutageRecord]: ...
    def begin_run(self, started: float, version: str) -> int: ...
    def end_run(self, run_id: int, stopped: float) -> None: ...
    def runs(self) -> list[RunRecord]: ...
    # tickets: the unit of work and its reads
    def tickets_tx(self) -> "ContextManager[TicketTx]": ...
    def ticket(self, ticket_id: int) -> Ticket | None: ...
    def tickets(self, *, contract: str | None = None, state: str | None = None, since: float | None = None,
                until: float | None = None) -> list[Ticket]: ...
    def tickets_overlapping(self, contract: str, start: float, end: float) -> list[Ticket]: ...
    def ticket_timeline(self, ticket_id: int) -> list[tuple[float, str, str]]: ...
    def ticket_refs(self, ticket_id: int) -> dict[str, str]: ...
    def ticket_counts(self) -> dict[tuple[str, str], int]: ...
    def open_incidents(self, prefix: str) -> dict[str, int]: ...
    def refs_of_open(self, states: tuple[str, ...]) -> list[tuple[Ticket, str, str, str]]: ...
    # tickets: the outbox
    def outbox_due(self, now: float, limit: int) -> list[OutboxItem]: ...
    def outbox(self, ticket_id: int | None = None) -> list[OutboxItem]: ...
    def outbox_pending(self) -> dict[str, int]: ...
    def outbox_pending_by_ticket(self) -> dict[int, tuple[int, list[str], str | None]]: ...
    def outbox_failed(self, outbox_id: int, attempts: int, next_attempt: float, error: str) -> None: ...
    def outbox_delivered(self, done: Delivered) -> None: ...
    def outbox_retry(self, ticket_id: int | None) -> int: ...
    # whole tables, for ``store copy``: rows as tuples in TABLES' column order, canonical values
    def dump_table(self, table: str, chunk: int = 5000) -> "Iterator[list[tuple[Any, ...]]]": ...
    def load_table(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...
    def finish_load(self) -> None: ...
    def clear(self) -> None: ...
