"""The store's schema, written once: one migration history whose steps both dialects' DDL come from.

Each step of :data:`HISTORY` is a list of operations on logical tables and columns (a column's kind: ``time``,
``json``, ``bool``, ...); :func:`ddl` renders a step for SQLite or PostgreSQL, and an operation marked
``only=`` is one dialect's (the cluster's tables live in PostgreSQL alone; a SQLite table may be ``WITHOUT
ROWID`` where PostgreSQL partitions). The schema in force is the history folded (:func:`tables`), and
:data:`TABLES`, the canonical columns a copy between stores moves, comes from it.

Versions. A store records the steps applied as ``VERSION_BASE + step``: ``PRAGMA user_version`` in SQLite, the
``slawatch_schema`` table in PostgreSQL. Below :data:`VERSION_BASE` is a version of the two histories each
backend kept before this one (SQLite 1-5, PostgreSQL 1-6); :data:`LEGACY` says which step each one equals, so
such a store carries on from there (nothing is rebuilt: the steps render exactly the DDL those histories ran,
``tests/test_schema.py`` compares the result with theirs). A slawatch older than this one reads the new
numbers as a newer schema and refuses to run on it, as it must.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

__all__ = ["Column", "Table", "Index", "AddColumn", "Raw", "HISTORY", "SCHEMA_VERSION", "VERSION_BASE", "LEGACY",
           "ddl", "tables", "TABLES", "stored_version", "step_of", "newer_than_known"]

Dialect = Literal["sqlite", "postgresql"]

#: a logical column kind's type in each dialect
_TYPES: dict[str, tuple[str, str]] = {
    "text": ("TEXT", "text"),
    "int": ("INTEGER", "integer"),
    "smallint": ("INTEGER", "smallint"),
    "bigint": ("INTEGER", "bigint"),
    "real": ("REAL", "double precision"),
    "time": ("REAL", "timestamptz"),  # unix seconds in SQLite
    "json": ("TEXT", "jsonb"),
    "bool": ("INTEGER", "boolean"),
    "bytes": ("BLOB", "bytea"),
    "id": ("INTEGER PRIMARY KEY", "bigserial PRIMARY KEY"),  # a row id the store assigns
    "serial": ("INTEGER PRIMARY KEY", "serial PRIMARY KEY"),
}
#: the canonical form a copy moves a column's values in (TABLES): t = time, j = json, b = bool, "" = as stored
_CANONICAL = {"time": "t", "json": "j", "bool": "b"}
#: identifiers quoted everywhere (reserved words in PostgreSQL)
_QUOTED = {"end"}


def _q(name: str) -> str:
    return f'"{name}"' if name in _QUOTED else name


@dataclass(frozen=True)
class Column:
    """A column: its logical kind and constraints; ``pg_name`` when PostgreSQL stores it under another name."""

    name: str
    kind: str
    null: bool = True
    default: str | None = None
    unique: bool = False
    primary: bool = False
    references: str | None = None  # "table (column)"
    check: str | None = None
    only: Dialect | None = None
    pg_name: str | None = None

    def stored(self, dialect: Dialect) -> str:
        """The column's name in ``dialect``."""
        return self.pg_name if dialect == "postgresql" and self.pg_name else self.name

    def render(self, dialect: Dialect) -> str:
        """The column's definition in a CREATE TABLE or ADD COLUMN."""
        kind = _TYPES[self.kind][0 if dialect == "sqlite" else 1]
        parts = [_q(self.stored(dialect)), kind]
        if self.primary:
            parts.append("PRIMARY KEY")
        if not self.null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.unique:
            parts.append("UNIQUE")
        if self.references:
            parts.append(f"REFERENCES {self.references}")
        if self.check:
            parts.append(f"CHECK ({self.check})")
        return " ".join(parts)


@dataclass(frozen=True)
class Table:
    """CREATE TABLE: columns, a composite key, unique column sets and each dialect's table options."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    #: PostgreSQL's storage parameters of the composite key's index (``WITH (...)``)
    key_with: str | None = None
    unique: tuple[tuple[str, ...], ...] = ()
    sqlite_options: str = ""
    pg_options: str = ""
    only: Dialect | None = None
    #: whether a copy between stores moves its rows (TABLES)
    copied: bool = True

    def render(self, dialect: Dialect) -> str:
        """The CREATE TABLE statement."""
        by_name = {c.name: c for c in self.columns}
        lines = [c.render(dialect) for c in self.columns if c.only in (None, dialect)]
        if self.key:
            key = f"PRIMARY KEY ({', '.join(_q(by_name[k].stored(dialect)) for k in self.key)})"
            if self.key_with and dialect == "postgresql":
                key += f" WITH ({self.key_with})"
            lines.append(key)
        lines += [f"UNIQUE ({', '.join(_q(c) for c in u)})" for u in self.unique]
        options = self.sqlite_options if dialect == "sqlite" else self.pg_options
        return f"CREATE TABLE {self.name} (\n    " + ",\n    ".join(lines) + "\n)" + (f" {options}" if options else "")


@dataclass(frozen=True)
class Index:
    """CREATE [UNIQUE] INDEX on column names (stored names), partial with ``where``."""

    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None
    only: Dialect | None = None

    def render(self, dialect: Dialect) -> str:
        """The CREATE INDEX statement."""
        unique = "UNIQUE " if self.unique else ""
        where = f" WHERE {self.where}" if self.where else ""
        return f"CREATE {unique}INDEX {self.name} ON {self.table} ({', '.join(map(_q, self.columns))}){where}"


@dataclass(frozen=True)
class AddColumn:
    """ALTER TABLE ... ADD COLUMN."""

    table: str
    column: Column

    @property
    def only(self) -> Dialect | None:
        """The dialect the column is for (None: both)."""
        return self.column.only

    def render(self, dialect: Dialect) -> str:
        """The ALTER TABLE statement."""
        return f"ALTER TABLE {self.table} ADD COLUMN {self.column.render(dialect)}"


@dataclass(frozen=True)
class Raw:
    """A statement of one dialect that the operations above do not express (a sequence, a comment, a data copy)."""

    sql: str
    only: Dialect

    def render(self, dialect: Dialect) -> str:
        """The statement as written."""
        return self.sql


Op = Union[Table, Index, AddColumn, Raw]


@dataclass(frozen=True)
class Step:
    """One migration step: what it is for and its operations, applied in one transaction."""

    note: str
    ops: tuple[Op, ...] = field(default_factory=tuple)


def _c(name: str, kind: str, **kw) -> Column:
    return Column(name, kind, **kw)


def _nn(name: str, kind: str, **kw) -> Column:
    return Column(name, kind, null=False, **kw)


HISTORY: tuple[Step, ...] = (
    Step("cycles, target state, outages, daemon runs", (
        Table("cycles", (
            _c("id", "id", only="sqlite"), _nn("target", "text"), _nn("probe", "text"), _nn("started", "time"),
            _nn("duration", "real"), _nn("ok", "bool"), _nn("verdict", "text"), _c("reason", "text"),
            _c("sent", "int"), _c("received", "int"), _c("rtt_median", "real"), _c("jitter", "real"),
            _c("samples", "json")), pg_options="PARTITION BY RANGE (started)"),
        Index("cycles_target_started", "cycles", ("target", "started")),
        Table("target_state", (
            _c("target", "text", primary=True), _nn("state", "text"), _c("since", "time"), _nn("updated", "time"),
            _nn("tracker", "json"))),
        Table("outages", (
            _c("id", "id"), _nn("target", "text"), _nn("contract", "text"), _nn("kind", "text"), _nn("start", "time"),
            _c("end", "time")), unique=(("target", "kind", "start"),)),
        Table("runs", (_c("id", "id"), _nn("started", "time"), _c("stopped", "time"), _nn("version", "text"))),
    )),
    Step("the SLA engine: target ids, unknown intervals, hourly and monthly rollups, breach events", (
        Table("targets", (_c("id", "serial"), _nn("name", "text", unique=True))),
        Table("unknown_intervals", (
            _c("id", "id"), _nn("target", "text"), _nn("start", "time"), _nn("end", "time"), _nn("reason", "text")),
            unique=(("target", "start"),)),
        Index("unknown_target_start", "unknown_intervals", ("target", "start"), only="sqlite"),
        Table("rollups_hourly", (
            # PostgreSQL: hours since 1970-01-01 UTC, 4 bytes, not 8, in 744 rows a target-month
            _nn("target_id", "int"), _nn("hour", "int", pg_name="hour_no"), _nn("counts", "bytes"),
            _nn("rtt", "bytes")), key=("target_id", "hour"), key_with="fillfactor = 100",
            sqlite_options="WITHOUT ROWID"),
        Raw("COMMENT ON COLUMN rollups_hourly.hour_no IS 'the hour''s start in unix seconds / 3600'", "postgresql"),
        Table("rollups_monthly", (
            _nn("target_id", "int"), _nn("month", "text"), _nn("counts", "bytes"), _nn("rtt", "bytes")),
            key=("month", "target_id"), sqlite_options="WITHOUT ROWID"),
        Table("events", (
            _c("key", "text", primary=True), _nn("kind", "text"), _nn("contract", "text"), _c("target", "text"),
            _nn("at", "time"), _nn("data", "json"))),
        Index("events_at", "events", ("at",)),
        Index("outages_start", "outages", ("start",)),
    )),
    Step("the ticket ledger, its timeline, external references, the delivery outbox; outage evidence", (
        Table("tickets", (
            _c("id", "id"), _nn("uid", "text", unique=True), _nn("incident_key", "text"), _nn("contract", "text"),
            _nn("targets", "json"), _nn("severity", "text"), _nn("kind", "text"), _nn("state", "text"),
            _nn("title", "text"), _nn("opened", "time"), _c("acknowledged", "time"), _c("resolved", "time"),
            _nn("tier", "int", default="0"), _c("parent_id", "bigint", references="tickets (id)"),
            _nn("updated", "time"))),
        Index("tickets_open_key", "tickets", ("incident_key",), unique=True, where="state != 'resolved'"),
        Index("tickets_state", "tickets", ("state", "opened")),
        Table("ticket_events", (
            _c("id", "id"), _nn("ticket_id", "bigint", references="tickets (id)"), _nn("at", "time"),
            _nn("kind", "text"), _nn("text", "text"))),
        Index("ticket_events_ticket", "ticket_events", ("ticket_id", "at")),
        Table("ticket_refs", (
            _nn("ticket_id", "bigint", references="tickets (id)"), _nn("sink", "text"), _nn("external_id", "text"),
            _nn("last_action", "text", default="'open'")), key=("ticket_id", "sink")),
        Table("outbox", (
            _c("id", "id"), _nn("ticket_id", "bigint", references="tickets (id)"), _nn("sink", "text"),
            _nn("action", "text"), _nn("text", "text"), _nn("recipients", "json"),
            _nn("idempotency_key", "text", unique=True), _nn("created", "time"), _nn("attempts", "int", default="0"),
            _nn("next_attempt", "time"), _c("delivered", "time"), _c("last_error", "text"))),
        Index("outbox_due", "outbox", ("delivered", "next_attempt"), only="sqlite"),
        Index("outbox_due", "outbox", ("next_attempt",), where="delivered IS NULL", only="postgresql"),
        AddColumn("outages", _c("evidence", "json")),
    )),
    Step("clusters: the node and site (vantage point) of each cycle; the members with their leases and epochs", (
        AddColumn("cycles", _c("node", "text")),
        AddColumn("cycles", _c("site", "text")),
        Raw("CREATE SEQUENCE cluster_epoch", "postgresql"),
        Table("cluster_nodes", (
            _c("node", "text", primary=True), _nn("site", "text"),
            _nn("instance", "text"),  # the running process (a new one per start)
            _nn("epoch", "bigint"),  # fencing token: a new one at every (re)join
            _nn("heartbeat", "time"),  # the database's clock, so node clocks cannot disagree on liveness
            _nn("started", "time"), _nn("config_hash", "text"), _nn("version", "text"), _nn("host", "text"),
            _nn("pid", "int"), _nn("owned", "int", default="0"), _c("left_at", "time")),
            only="postgresql", copied=False),
    )),
    Step("the cluster's shared config: each reload of a node publishes its file's text; the others adopt it", (
        Table("cluster_config", (
            _c("version", "bigint", primary=True), _nn("hash", "text"),
            _nn("body", "text"),  # the config file's text (secrets only as ${ENV} or *_file references)
            _nn("node", "text"), _nn("published", "time", default="clock_timestamp()")),
            only="postgresql", copied=False),
    )),
    Step("leadership as a lease in the database's time (no longer an advisory lock on a session, which a leader cut "
         "from the database kept until the server's TCP keepalives ended it: about 2 h 11 min with the defaults)", (
        Table("cluster_leader", (
            _c("id", "smallint", primary=True, check="id = 1"), _nn("node", "text"), _nn("instance", "text"),
            _nn("epoch", "bigint"),  # the holder's node epoch (cluster_nodes)
            _nn("term", "bigint"),  # fencing token of leadership: new for every new holder, only grows
            _nn("since", "time"), _nn("expires", "time")),  # the database's clock
            only="postgresql", copied=False),
    )),
    Step("batches replayed from a node's local spool, each applied once", (
        Table("applied_batches", (_c("id", "text", primary=True), _nn("applied", "real", only="sqlite"),
                                  _nn("applied", "time", default="clock_timestamp()", only="postgresql")),
              copied=False),
    )),
    Step("every leader term's holder and its lease's last expiry, in the database's time: the history a checker "
         "reads to verify that no two terms ever overlapped (tests/faults.py), and the operator to see who led when", (
        Table("leader_terms", (
            _c("term", "bigint", primary=True), _nn("node", "text"), _nn("instance", "text"), _nn("epoch", "bigint"),
            _nn("since", "time"), _nn("expires", "time")), only="postgresql", copied=False),
        Raw("INSERT INTO leader_terms SELECT term, node, instance, epoch, since, expires FROM cluster_leader",
            "postgresql"),
    )),
    Step("customer requests read from the provider's ticket system (#28): each one's timeline, and each source's "
         "sync cursor", (
        Table("customer_requests", (
            _nn("source", "text"), _nn("external_id", "text"), _nn("contract", "text"), _nn("severity", "text"),
            _nn("subject", "text"), _nn("opened", "time"), _c("first_response", "time"), _c("resolved", "time"),
            _nn("status", "text"), _nn("pauses", "json"), _nn("reopened", "int", default="0"),
            _nn("updated", "time")), key=("source", "external_id")),
        Index("customer_requests_contract", "customer_requests", ("contract", "opened")),
        Table("request_cursors", (_c("source", "text", primary=True), _nn("updated", "time"))),
    )),
    Step("each request source's last successful read: a running clock is judged only up to it (the time after is "
         "unknown, as with probes)", (
        AddColumn("request_cursors", _c("checked", "time")),
    )),
)

#: the schema version (the number of steps) this slawatch runs on
SCHEMA_VERSION = len(HISTORY)
#: a store records step n as VERSION_BASE + n; below it is a version of a backend's history before this one
VERSION_BASE = 100
#: the step each version of the two earlier histories equals
LEGACY: dict[Dialect, dict[int, int]] = {
    "sqlite": {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 7},
    "postgresql": {0: 0, 1: 3, 2: 4, 3: 5, 4: 6, 5: 7, 6: 8},
}


def step_of(stored: int, dialect: Dialect) -> int:
    """The step a store is at from the version it records (an earlier history's version mapped; a version
    newer than this slawatch's comes back as it is, above SCHEMA_VERSION, for the caller to refuse)."""
    if stored >= VERSION_BASE:
        return stored - VERSION_BASE
    if stored in LEGACY[dialect]:
        return LEGACY[dialect][stored]
    return SCHEMA_VERSION + stored  # an unknown early version: newer than this slawatch understands


def newer_than_known(stored: int) -> str:
    """What the refusal of a store with a newer schema says about it."""
    shown = stored - VERSION_BASE if stored >= VERSION_BASE else stored
    return f"schema version {shown}, newer than this slawatch understands ({SCHEMA_VERSION})"


def stored_version(step: int) -> int:
    """What a store records once ``step`` is applied."""
    return VERSION_BASE + step


def ddl(step: int, dialect: Dialect) -> list[str]:
    """Step ``step``'s statements (1-based) in ``dialect``; a step may have none in one dialect."""
    return [op.render(dialect) for op in HISTORY[step - 1].ops if op.only in (None, dialect)]


def tables(dialect: Dialect | None = None) -> dict[str, list[Column]]:
    """The schema in force: each table's columns after every step (both dialects' tables and columns when
    ``dialect`` is None, only those they share)."""
    out: dict[str, list[Column]] = {}
    for step in HISTORY:
        for op in step.ops:
            if dialect is None and op.only is not None or dialect is not None and op.only not in (None, dialect):
                continue
            if isinstance(op, Table):
                out[op.name] = [c for c in op.columns if c.only in (None, dialect) or dialect is None and c.only is None]
            elif isinstance(op, AddColumn):
                out[op.table].append(op.column)
    return out


def _copied() -> dict[str, tuple[tuple[str, str], ...]]:
    copied = {op.name for step in HISTORY for op in step.ops if isinstance(op, Table) and op.copied}
    return {name: tuple((c.name, _CANONICAL.get(c.kind, "")) for c in cols if c.only is None)
            for name, cols in tables().items() if name in copied}


#: the tables a copy between stores moves, each with its columns in order and their canonical form (t = time as
#: unix seconds, j = json text, b = bool; "" as stored): the columns both dialects have, by their logical name
TABLES: dict[str, tuple[tuple[str, str], ...]] = _copied()
