"""The storage Protocol: everything the rest of slawatch reads from or writes to a store.

Nothing outside :mod:`monitor.store` touches a connection, a cursor, a lock or
SQL text (``tests/test_boundary.py`` enforces it). The ticket ledger works
through a :class:`TicketTx`, a unit of work that lives inside one store
transaction, so a ticket and its outbox rows commit with the event that caused
them. Times are unix seconds (floats) on both sides of the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Collection, Callable, ContextManager, Iterator, Protocol, Sequence, runtime_checkable

#: every table a copy moves, in the order the history made them (parents before children), each column with its
#: canonical form: "" plain, "t" a time (unix seconds), "j" JSON, "b" a boolean (monitor.store.schema)
from monitor.store.schema import TABLES

if TYPE_CHECKING:
    from monitor.events import BreachEvent

__all__ = ["Store", "TicketTx", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord", "UnknownRecord", "Batch",
           "Ticket", "OutboxItem", "Delivered", "StoreInfo", "TABLES", "NodeInfo", "Fence", "LeaderLease", "LeaderInfo",
           "StoredRollup", "RollupBlobs", "RequestRecord", "RequestStore", "SchemaStore", "EvidenceWriter", "EvidenceReader", "TicketStore", "TableCopy",
           "ClusterStore"]


class RollupBlobs(Protocol):
    """What the store writes of a rollup (monitor.sla.rollup.Rollup, which the store does not import): its counts
    and its RTT sketch, encoded by the rollup itself."""

    def blobs(self) -> tuple[bytes, bytes]:
        """(counts, RTT sketch) as stored."""
        ...


@dataclass(frozen=True, slots=True)
class StoredRollup:
    """A rollup as the store holds it; ``monitor.sla.rollup.Rollup.decode`` makes it a rollup again."""

    counts: bytes
    rtt: bytes


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
    #: (target, hour start in unix seconds) -> snapshot of that hour's rollup (monitor.sla.rollup.Rollup)
    hourly: dict[tuple[str, int], "RollupBlobs"] = field(default_factory=dict)
    #: (target, "YYYY-MM") -> snapshot of that month's rollup
    monthly: dict[tuple[str, str], "RollupBlobs"] = field(default_factory=dict)
    #: a batch replayed from the local spool carries its id: the store applies it once, however often it is
    #: replayed (a crash between its commit and the spool file's removal)
    id: str | None = None

    def __len__(self) -> int:
        return (len(self.cycles) + len(self.states) + len(self.outages) + len(self.unknown) + len(self.events)
                + len(self.hourly) + len(self.monthly))

    def units(self) -> set[str]:
        """Every target (probe unit) a record of this batch is about."""
        return ({c.target for c in self.cycles} | set(self.states) | {o.target for o in self.outages}
                | {u.target for u in self.unknown} | {e.target for e in self.events if e.target is not None}
                | {k[0] for k in self.hourly} | {k[0] for k in self.monthly})

    def without(self, units: set[str]) -> "Batch":
        """This batch without any record of ``units`` (same id)."""
        return Batch([c for c in self.cycles if c.target not in units],
                     {k: v for k, v in self.states.items() if k not in units},
                     [o for o in self.outages if o.target not in units],
                     [u for u in self.unknown if u.target not in units],
                     [e for e in self.events if e.target not in units],
                     {k: v for k, v in self.hourly.items() if k[0] not in units},
                     {k: v for k, v in self.monthly.items() if k[0] not in units}, self.id)

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
        """Whether the node still counts as a member: it has not left, and its last heartbeat is younger than
        ``failover_delay`` seconds."""
        return not self.left and self.age < failover_delay


@dataclass(frozen=True, slots=True)
class Fence:
    """The fencing token a cluster node's writes carry: the write commits only while this instance holds an
    unexpired lease (its heartbeat younger than ``failover_delay``) under this epoch."""

    node: str
    instance: str
    epoch: int
    failover_delay: float
    #: the leader lease's term, on writes reserved to the leader: they commit only while that term's lease is
    #: this instance's and unexpired (a leader that was paused or cut off never writes under a stale term)
    term: int | None = None


@dataclass(frozen=True, slots=True)
class LeaderLease:
    """A leader lease just taken or renewed: its term (a fencing token that only grows; a renewal keeps it) and
    since when this holder has led (unix seconds, the database's clock)."""

    term: int
    since: float


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """The leader lease as the database sees it: holder, term, since, expiry (unix seconds, the database's clock)
    and the seconds it has left (0 or less: expired, no leader since ``expires``)."""

    node: str
    term: int
    since: float
    expires: float
    remaining: float


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

    def ticket(self, ticket_id: int) -> Ticket | None:
        """The ticket ``ticket_id``, or None when there is none."""
        ...

    def unresolved(self, incident_key: str) -> Ticket | None:
        """The ticket of ``incident_key`` that is not resolved yet (at most one: the store's unique index), or None."""
        ...

    def resolved_since(self, incident_key: str, since: float) -> Ticket | None:
        """The latest ticket of ``incident_key`` resolved at or after ``since`` (to reopen within the merge window),
        or None."""
        ...

    def open_roots(self, contract: str, kind: str, opened_since: float) -> list[Ticket]:
        """The unresolved tickets of ``contract`` and ``kind`` without a parent, opened at or after ``opened_since``
        (the candidates a new incident is grouped under), oldest first."""
        ...

    def open_root_ids(self) -> list[int]:
        """The ids of the open (not acknowledged, not resolved) tickets without a parent: the ones escalation walks."""
        ...

    def open_children(self, parent_id: int) -> int:
        """How many unresolved tickets are grouped under ``parent_id``."""
        ...

    def insert_ticket(self, uid: str, incident_key: str, contract: str, targets: list[str], severity: str,
                      kind: str, title: str, opened: float, parent_id: int | None) -> int:
        """Insert an open ticket at tier 0 and return its id; ``uid`` is its idempotency key for the sinks."""
        ...

    def set_state(self, ticket_id: int, state: str, *, acknowledged: float | None = None,
                  resolved: float | None = None) -> None:
        """Move the ticket to ``state``, recording when it was acknowledged or resolved."""
        ...

    def set_targets(self, ticket_id: int, targets: list[str]) -> None:
        """Replace the ticket's list of affected targets."""
        ...

    def set_tier(self, ticket_id: int, tier: int) -> None:
        """Record the escalation tier the ticket has reached."""
        ...

    def set_parent(self, ticket_id: int, parent_id: int) -> None:
        """Group the ticket under ``parent_id``."""
        ...

    def note(self, ticket_id: int, kind: str, text: str, at: float) -> None:
        """Append an entry (``kind``: opened, escalated, acknowledged, note, ...) to the ticket's timeline."""
        ...

    def outbox_count(self, ticket_id: int) -> int:
        """How many outbox rows (delivered or not) the ticket has."""
        ...

    def enqueue(self, ticket_id: int, sink: str, action: str, text: str, recipients: list[str], key: str,
                at: float) -> None:
        """Queue one delivery of ``action`` to ``sink`` for the ticket; ``key`` makes a replayed enqueue a no-op."""
        ...

    def drop_pending(self, ticket_id: int) -> int:
        """Delete the ticket's undelivered outbox rows (a sink removed from the config); returns how many."""
        ...

    def add_ref(self, ticket_id: int, sink: str, external_id: str) -> None:
        """Record that the ticket is ``external_id`` in ``sink`` before anything is delivered (a customer request's
        escalation comments on the request's own ticket in the system it came from)."""
        ...


class SchemaStore(Protocol):
    """The store's schema and lifecycle (the daemon at start and stop, ``slawatch store``)."""

    backend: str
    #: where it is, for messages: a path, or the DSN without its password
    location: str

    def migrate(self) -> int:
        """Apply the pending forward migrations; returns the schema version now in force."""
        ...

    def schema_version(self) -> int:
        """The schema version the store is at (0 before the first migration)."""
        ...

    def info(self) -> StoreInfo:
        """The backend, location, schema versions and row counts (``slawatch store status``)."""
        ...

    def close(self) -> None:
        """Release the connection(s); the store is unusable afterwards."""
        ...

    def integrity_ok(self) -> bool:
        """Whether the backend's own integrity check passes (SQLite's integrity_check; PostgreSQL: a query)."""
        ...

    def write_batch(self, cycles: Sequence[CycleRecord] = (), states: Sequence[StateRecord] = (),
                    outages: Sequence[OutageRecord] = ()) -> None:
        """:meth:`write` of a batch of just these cycles, states and outages."""
        ...




class EvidenceWriter(Protocol):
    """The writes of evidence: the daemon's writer and the retention purge."""

    def write(self, batch: Batch, on_new_event: "Callable[[TicketTx, BreachEvent], None] | None" = None,
              fence: "Fence | None" = None) -> None:
        """Write one batch of evidence atomically (all or nothing), calling ``on_new_event`` inside the same
        transaction for each event not stored before, so the tickets it opens commit with it. With ``fence`` (a
        cluster node's lease) the batch commits only while that lease is still the node's (FencedError else)."""
        ...

    def purge(self, raw_before: float, rollups_before: float) -> tuple[int, int]:
        """Delete raw cycles older than ``raw_before`` and hourly rollups older than ``rollups_before``; returns
        (cycles, hourly rollups) deleted."""
        ...

    def compact(self) -> None:
        """Return freed space to the file system (SQLite: VACUUM and a WAL checkpoint; PostgreSQL: VACUUM FULL)."""
        ...

    def size_bytes(self) -> int:
        """The store's size on disk in bytes."""
        ...


class EvidenceReader(Protocol):
    """The reads of evidence: the SLA evaluation, the reports, the consensus round, ``slawatch status``."""

    def count_cycles(self) -> int:
        """How many raw cycles the store holds."""
        ...

    def outages_between(self, start: float, end: float, contract: str | None = None) -> list[OutageRecord]:
        """Every outage overlapping [start, end) (UTC seconds), open ones included, oldest first; of one contract
        or of all."""
        ...

    def unknown_intervals(self, target: str | None, start: float, end: float) -> list[UnknownRecord]:
        """The recorded unknown intervals overlapping [start, end), of one target or (``None``) of all."""
        ...

    def monthly_rollups(self, month: str, target: str | None = None,
                        targets: "Collection[str] | None" = None) -> dict[str, StoredRollup]:
        """target -> the month's rollup as stored (``month`` as YYYY-MM), of one target, of ``targets``, or of
        all."""
        ...

    def state(self, target: str) -> StateRecord | None:
        """The target's stored state (state machine and tracker), or None before its first cycle."""
        ...

    def hourly_rollups(self, target: str, start: float, end: float) -> dict[int, StoredRollup]:
        """hour start (UTC seconds) -> the target's hourly rollup as stored, for the hours starting in [start, end)."""
        ...

    def events(self, start: float | None = None, end: float | None = None) -> list["BreachEvent"]:
        """The breach events stored with their timestamp in [start, end) (either bound open), oldest first."""
        ...

    def load_states(self, names: "Collection[str] | None" = None) -> dict[str, StateRecord]:
        """target -> stored state, of the given targets or of all."""
        ...

    def last_cycles(self) -> dict[str, CycleRecord]:
        """Each target's latest cycle, without its samples (``slawatch status`` shows the cycle's figures)."""
        ...

    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]:
        """The target's raw cycles started in [start, end), oldest first."""
        ...

    def outages(self, target: str | None = None) -> list[OutageRecord]:
        """The outages of one target or of all, oldest first."""
        ...

    def begin_run(self, started: float, version: str) -> int:
        """Record that a daemon run started; returns its id."""
        ...

    def end_run(self, run_id: int, stopped: float) -> None:
        """Record that the daemon run ``run_id`` stopped cleanly."""
        ...

    def runs(self) -> list[RunRecord]:
        """Every daemon run recorded, oldest first."""
        ...


class TicketStore(Protocol):
    """The ticket ledger's unit of work, its reads and the outbox (monitor.tickets)."""

    def tickets_tx(self, fence: "Fence | None" = None) -> "ContextManager[TicketTx]":
        """The ticket ledger's unit of work: one write transaction, committed when the block ends without an error.
        With a ``fence`` (a cluster leader's, with its term), the transaction first checks it (FencedError)."""
        ...

    def ticket(self, ticket_id: int) -> Ticket | None:
        """The ticket ``ticket_id``, or None."""
        ...

    def tickets(self, *, contract: str | None = None, state: str | None = None, since: float | None = None,
                until: float | None = None) -> list[Ticket]:
        """The tickets matching every filter given (contract, state, opened in [since, until)), oldest first."""
        ...

    def tickets_overlapping(self, contract: str, start: float, end: float) -> list[Ticket]:
        """The tickets of ``contract`` open at some time in [start, end) (the report's evidence per outage)."""
        ...

    def ticket_timeline(self, ticket_id: int) -> list[tuple[float, str, str]]:
        """The ticket's timeline: (at, kind, text), oldest first."""
        ...

    def ticket_refs(self, ticket_id: int) -> dict[str, str]:
        """sink -> the ticket's id in that sink (an RT number, a Jira key, ...)."""
        ...

    def ticket_counts(self) -> dict[tuple[str, str, str], int]:
        """(contract, state, severity) -> how many tickets, for the ticket metrics."""
        ...

    def open_incidents(self, prefix: str) -> dict[str, int]:
        """incident key -> ticket id of the unresolved tickets whose key starts with ``prefix``."""
        ...

    def refs_of_open(self, states: tuple[str, ...]) -> list[tuple[Ticket, str, str, str]]:
        """(ticket, sink, external id, last action) for every sink reference of a ticket in one of ``states``."""
        ...

    # tickets: the outbox
    def outbox_due(self, now: float, limit: int) -> list[OutboxItem]:
        """For each (ticket, sink) its oldest undelivered row, if it is due at ``now``; at most ``limit`` rows,
        oldest first, so deliveries to one sink stay in order."""
        ...

    def outbox(self, ticket_id: int | None = None) -> list[OutboxItem]:
        """The outbox rows of one ticket or of all, delivered or not, oldest first."""
        ...

    def outbox_pending(self) -> dict[str, int]:
        """sink -> undelivered rows."""
        ...

    def outbox_pending_by_ticket(self) -> dict[int, tuple[int, list[str], str | None]]:
        """ticket id -> (undelivered rows, their sinks, the last error) for tickets with pending deliveries."""
        ...

    def outbox_failed(self, outbox_id: int, attempts: int, next_attempt: float, error: str,
                      fence: "Fence | None" = None) -> None:
        """Record a failed attempt and when to try again (the error text is already free of secrets); under the
        leader's ``fence`` in a cluster."""
        ...

    def outbox_delivered(self, done: Delivered, fence: "Fence | None" = None) -> None:
        """Record a delivery and the sink's id for the ticket, in one transaction; under the leader's ``fence``
        in a cluster."""
        ...

    def outbox_retry(self, ticket_id: int | None) -> int:
        """Make the undelivered rows of one ticket (or of all) due now; returns how many."""
        ...


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A customer request as stored (#28): its timeline (monitor.tickets.requests), times in unix seconds."""

    source: str
    external_id: str
    contract: str
    severity: str
    subject: str
    opened: float
    first_response: float | None
    resolved: float | None
    status: str
    pauses: tuple[tuple[float, float], ...]
    reopened: int
    updated: float


class RequestStore(Protocol):
    """Customer requests read from the provider's ticket system, and each source's sync cursor."""

    def put_requests(self, records: Sequence[RequestRecord], cursor: tuple[str, float] | None = None,
                     checked: float | None = None) -> None:
        """Insert or replace the requests (by source and external id) and move ``cursor`` (source, the last update
        seen) in the same transaction, so a sync resumes where it stopped and applies nothing twice; ``checked``:
        when the source was read (what is known of its requests is known up to then)."""
        ...

    def requests(self, contract: str | None = None, start: float | None = None,
                 end: float | None = None) -> list[RequestRecord]:
        """The requests of one contract (or all) opened in [start, end), oldest first."""
        ...

    def request_cursor(self, source: str) -> float | None:
        """The last update a source's sync stored, or None before its first."""
        ...

    def request_sources_checked(self) -> dict[str, float]:
        """source -> when it was last read successfully (sources never read are absent)."""
        ...


class TableCopy(Protocol):
    """Whole tables in a canonical form, for ``slawatch store copy``."""

    def dump_table(self, table: str, chunk: int = 5000) -> "Iterator[list[tuple[Any, ...]]]":
        """The table's rows in chunks of ``chunk``, as tuples in TABLES' column order with canonical values."""
        ...

    def load_table(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows produced by :meth:`dump_table` of any backend."""
        ...

    def finish_load(self) -> None:
        """After a load: move sequences past the loaded ids (PostgreSQL), so new rows do not collide."""
        ...

    def clear(self) -> None:
        """Delete every row of every table, children first (``store copy --overwrite``)."""
        ...


@runtime_checkable
class Store(SchemaStore, EvidenceWriter, EvidenceReader, TicketStore, RequestStore, TableCopy, Protocol):
    """Every operation the daemon, the CLI, the reports and the ticket ledger perform on stored evidence: the
    consumers' protocols together (each consumer types against the narrow one it uses)."""


@runtime_checkable
class ClusterStore(Store, Protocol):
    """A store that can hold a cluster (PostgreSQL): membership with leases and fencing epochs, the leader's
    lease, and the published config (:mod:`monitor.cluster`)."""

    def cluster_join(self, node: str, site: str, instance: str, config_hash: str, version: str, host: str, pid: int,
                     failover_delay: float, takeover: bool = False) -> int:
        """Register this instance under ``node`` with a new epoch (returned); refuses a name another live instance
        holds unless ``takeover``."""
        ...

    def cluster_heartbeat(self, fence: Fence, owned: int, config_hash: str) -> bool:
        """Renew the lease; False when it is no longer this instance's."""
        ...

    def cluster_leave(self, fence: Fence) -> None:
        """Mark this instance as gone, so the others take its targets at once."""
        ...

    def cluster_nodes(self) -> list[NodeInfo]:
        """Every node registered, live or not, with its lease's age."""
        ...

    def cluster_publish_config(self, fence: Fence, config_hash: str, body: str) -> int:
        """Publish a config for every node under a live lease; returns its version."""
        ...

    def cluster_config(self) -> tuple[int, str, str, str] | None:
        """The latest published config: (version, hash, body, node), or None."""
        ...

    def adopt(self, batch: Batch, on_new_event: "Callable[[TicketTx, BreachEvent], None] | None",
              fence: Fence) -> set[str]:
        """Write a batch measured under this node's previous lease (one that expired while the store was out of
        reach) under its current ``fence``, for the units no other node has written a cycle of since the
        batch's first cycle: for those the node was their only prober, so its evidence stands. The records of
        the other units are left out (their new owner's evidence rules); returns those units."""
        ...

    def leader_lease(self, fence: Fence, ttl: float) -> "LeaderLease | None":
        """Take or renew the leader lease for ``ttl`` seconds of the database's clock (None: another holds it)."""
        ...

    def leader_release(self, fence: Fence) -> None:
        """End this instance's leader lease now."""
        ...

    def cluster_leadership(self) -> "LeaderInfo | None":
        """The leader lease as the database sees it now (None: never held)."""
        ...

    def leader_terms(self, since: float = 0.0) -> "list[LeaderInfo]":
        """Every leader term whose lease lasted past ``since``, oldest first (the history of leadership)."""
        ...

    def cluster_leader(self) -> str | None:
        """The node holding an unexpired leader lease now (None: no leader)."""
        ...
