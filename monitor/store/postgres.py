"""PostgreSQL store (psycopg 3 with a psycopg-pool connection pool).

The same semantics as the SQLite store: one transaction per batch; the ledger
and the outbox written in the transaction of the events that caused them;
re-applying a batch after a crash changes nothing (upserts on natural keys).
PostgreSQL's strengths where they pay:

* cycles go in with ``COPY`` into a table partitioned by day, so the raw
  retention drops whole partitions instead of deleting rows;
* rollups, states, outages and unknown intervals are ``ON CONFLICT`` upserts;
* times are ``timestamptz`` (unix seconds on the Python side, through a
  loader and a dumper registered on every connection), JSON is ``jsonb``;
* migrations run under an advisory lock, so two daemons starting together
  migrate once.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import psycopg
from psycopg import conninfo as _conninfo
from psycopg.adapt import Dumper
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from monitor.errors import ClusterError, FencedError, StoreError
from monitor.events import BreachEvent
from monitor.store.base import (TABLES, Batch, CycleRecord, Fence, LeaderInfo, LeaderLease, NodeInfo, OutageRecord,
                                RunRecord, StateRecord, StoreInfo, StoredRollup, TicketTx, UnknownRecord)
from monitor.store.schema import SCHEMA_VERSION, ddl, newer_than_known, step_of, stored_version
from monitor.store.sql import Epoch, Exec, SqlRequests, SqlTickets, SqlTicketTx, check_fence

__all__ = ["PostgresStore", "SCHEMA_VERSION", "safe_dsn"]

# the pool logs every failed reconnection; the store's caller (the batch writer) says once, rate-limited,
# that the database is unreachable
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

#: the advisory lock key migrations run under ("slawatch" as a number)
MIGRATION_LOCK = 0x736C6177


_DAY = 86400
#: columns whose canonical form (TABLES) is computed from what PostgreSQL stores
_COLUMN_EXPR = {("rollups_hourly", "hour"): "hour_no::bigint * 3600 AS hour"}
_SERIAL_TABLES = ("runs", "targets", "outages", "unknown_intervals", "tickets", "ticket_events", "outbox")


def safe_dsn(dsn: str) -> str:
    """The DSN with its password removed, for messages and ``store status``."""
    try:
        params = _conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items() if v is not None)


def _reason(exc: BaseException, dsn: str) -> str:
    """A one-line reason from a psycopg error, without the password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    params = {}
    try:
        params = _conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        pass
    secret = params.get("password")
    if secret:
        text = text.replace(str(secret), "***")
    return text


# -- adapters: timestamptz <-> unix seconds -----------------------------------------------
_TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid


class _EpochDumper(Dumper):
    oid = _TIMESTAMPTZ_OID

    def dump(self, obj: Any) -> bytes:
        if math.isinf(obj):
            return b"infinity" if obj > 0 else b"-infinity"
        return datetime.fromtimestamp(obj, timezone.utc).isoformat().encode()


class _EpochLoader(TimestamptzLoader):
    def load(self, data: Any) -> float:  # type: ignore[override]
        raw = bytes(data)
        if raw == b"infinity":
            return math.inf
        if raw == b"-infinity":
            return -math.inf
        return super().load(data).timestamp()


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(Epoch, _EpochDumper)
    conn.adapters.register_loader("timestamptz", _EpochLoader)


def _tcp_timeouts(seconds: float) -> dict[str, Any]:
    """libpq's socket timeouts: a cut link (no RST ever comes) fails a connection within about ``seconds``
    instead of the kernel's two hours, so a partitioned node notices, and its writes and heartbeats fail."""
    return {"tcp_user_timeout": max(1000, int(seconds * 1000)), "keepalives": 1,
            "keepalives_idle": max(1, int(seconds)), "keepalives_interval": 1, "keepalives_count": 2}


class _PgExec(Exec):
    """Shared statements on a psycopg cursor: ``?`` becomes ``%s``, rows are dicts."""

    _cache: dict[str, str] = {}

    def __init__(self, cur: "psycopg.Cursor[dict[str, Any]]"):
        self.cur = cur

    def _sql(self, sql: str) -> str:
        out = self._cache.get(sql)
        if out is None:
            out = self._cache[sql] = sql.replace("%", "%%").replace("?", "%s")
        return out

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        self.cur.execute(self._sql(sql), tuple(args))
        return list(self.cur.fetchall()) if self.cur.description else []

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        self.cur.execute(self._sql(sql), tuple(args))
        return self.cur.rowcount


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class PostgresStore(SqlTickets, SqlRequests):
    """The shared store. ``dsn`` is a libpq connection string or URI; the password may come from it,
    from ``PGPASSWORD`` or from a ``.pgpass`` file."""

    backend = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 5.0, readonly: bool = False,
                 wait: bool = True):
        self.dsn = dsn
        self.location = safe_dsn(dsn)
        self.readonly = readonly
        self._ids: dict[str, int] = {}
        self._partitions: set[int] = set()
        self._new_partitions: set[int] = set()
        self._new_ids: dict[str, int] = {}
        try:
            _conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"storage.dsn is not a valid PostgreSQL connection string: {_reason(exc, dsn)}") from None
        kwargs: dict[str, Any] = {"connect_timeout": max(1, int(connect_timeout)), "options": "-c TimeZone=UTC",
                                  "application_name": "slawatch", **_tcp_timeouts(connect_timeout)}
        if wait:
            self.ping()
        self._pool = ConnectionPool(dsn, min_size=1, max_size=max(1, pool_size), kwargs=kwargs, configure=_configure,
                                    check=ConnectionPool.check_connection, timeout=connect_timeout + 1,
                                    reconnect_timeout=0, open=False, name="slawatch")
        self._pool.open(wait=False)

    def ping(self) -> None:
        """Connect once, so a wrong DSN, a refused connection or bad credentials are one clear error now."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=5, options="-c TimeZone=UTC") as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL ({self.location}): {_reason(exc, self.dsn)}") from None

    # -- connections ---------------------------------------------------------------------------
    @contextmanager
    def _conn(self, what: str = "access to") -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreError(f"{what} PostgreSQL store ({self.location}) failed: unreachable (no connection within "
                             "the pool timeout)") from None
        except psycopg.Error as exc:
            raise StoreError(f"{what} PostgreSQL store ({self.location}) failed: {_reason(exc, self.dsn)}") from None

    @contextmanager
    def _read(self) -> Iterator[Exec]:
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            yield _PgExec(cur)

    @contextmanager
    def _tx(self) -> Iterator[Exec]:
        with self._conn() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            yield _PgExec(cur)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        with self._read() as ex:
            return ex.all(sql, args)

    # -- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema step this store is at (monitor.store.schema; an earlier history's version mapped)."""
        return step_of(self._stored_version(), "postgresql")

    def _stored_version(self) -> int:
        with self._conn() as conn:
            if conn.execute("SELECT to_regclass('slawatch_schema')").fetchone()[0] is None:  # type: ignore[index]
                return 0
            row = conn.execute("SELECT max(version) FROM slawatch_schema").fetchone()
            return int(row[0] or 0) if row else 0

    def migrate(self) -> int:
        """Apply pending steps of the one migration history (monitor.store.schema) under an advisory lock, each
        in its own transaction; returns the schema version now in force."""
        with self._conn() as conn:
            conn.autocommit = True
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
                with conn.transaction():
                    conn.execute("CREATE TABLE IF NOT EXISTS slawatch_schema"
                                 " (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())")
                row = conn.execute("SELECT max(version) FROM slawatch_schema").fetchone()
                stored = int(row[0] or 0) if row else 0
                current = step_of(stored, "postgresql")
                if current > SCHEMA_VERSION:
                    raise StoreError(f"PostgreSQL store ({self.location}) has {newer_than_known(stored)}; "
                                     "upgrade slawatch")
                for step in range(current + 1, SCHEMA_VERSION + 1):
                    try:
                        with conn.transaction():
                            for statement in ddl(step, "postgresql"):
                                conn.execute(statement)  # the schema's own text
                            conn.execute("INSERT INTO slawatch_schema (version) VALUES (%s)", (stored_version(step),))
                    except psycopg.Error as exc:
                        raise StoreError(f"migration of PostgreSQL store ({self.location}) to schema version "
                                         f"{step} failed: {_reason(exc, self.dsn)}") from None
                if current == SCHEMA_VERSION and stored != stored_version(SCHEMA_VERSION):
                    # a store of the earlier history, current: recorded in this history's numbers from now on
                    conn.execute("INSERT INTO slawatch_schema (version) VALUES (%s)",
                                 (stored_version(SCHEMA_VERSION),))
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
                    conn.autocommit = False
        return SCHEMA_VERSION

    def info(self) -> StoreInfo:
        version = self.schema_version()
        rows: dict[str, int] = {}
        if version == SCHEMA_VERSION:
            with self._read() as ex:
                rows = {t: int(ex.value(f"SELECT count(*) AS n FROM {t}")) for t in TABLES}
        return StoreInfo("postgresql", self.location, version, SCHEMA_VERSION, rows)

    # -- writes --------------------------------------------------------------------------------
    def write_batch(self, cycles: Sequence[CycleRecord] = (), states: Sequence[StateRecord] = (),
                    outages: Sequence[OutageRecord] = ()) -> None:
        self.write(Batch(cycles=list(cycles), states={s.target: s for s in states}, outages=list(outages)))

    def _ensure_partitions(self, cur: psycopg.Cursor, starts: Sequence[float | None]) -> None:
        """Create the day partitions these cycle times fall in (under an advisory lock: nodes may race)."""
        days = {int(s // _DAY) for s in starts if isinstance(s, (int, float)) and math.isfinite(s)} - self._partitions
        for day in sorted(days):
            lo, hi = (datetime.fromtimestamp(d * _DAY, timezone.utc) for d in (day, day + 1))
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MIGRATION_LOCK, day))
            # DDL takes no parameters; the name and bounds are generated from an integer day
            cur.execute(f"CREATE TABLE IF NOT EXISTS cycles_{lo:%Y%m%d} PARTITION OF cycles"
                        f" FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')")
        self._new_partitions |= days

    def _target_id(self, cur: psycopg.Cursor, name: str) -> int:
        tid = self._ids.get(name)
        if tid is None:
            cur.execute("INSERT INTO targets (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = excluded.name"
                        " RETURNING id", (name,))
            tid = int(cur.fetchone()[0])  # type: ignore[index]
            self._new_ids[name] = tid
        return tid

    def write(self, batch: Batch, on_new_event: Callable[[TicketTx, BreachEvent], None] | None = None,
              fence: Fence | None = None) -> None:
        """Write the whole batch in one transaction; ``on_new_event(tx, event)`` runs inside it for each new event.
        With a ``fence`` (a cluster node's lease), the transaction first checks, holding the node's row, that the
        lease is this instance's and unexpired: otherwise nothing is written and :class:`FencedError` is raised."""
        self._fenced_write(batch, on_new_event, fence, adopt=False)

    def adopt(self, batch: Batch, on_new_event: Callable[[TicketTx, BreachEvent], None] | None,
              fence: Fence) -> set[str]:
        return self._fenced_write(batch, on_new_event, fence, adopt=True)

    def _fenced_write(self, batch: Batch, on_new_event: Callable[[TicketTx, BreachEvent], None] | None,
                      fence: Fence | None, adopt: bool) -> set[str]:
        """One write transaction: the fence checked first, a spooled batch applied once (its id), and with
        ``adopt`` the units another node wrote a cycle of since the batch's first cycle left out (returned)."""
        self._new_ids = {}
        self._new_partitions = set()
        taken: set[str] = set()
        with self._conn("write to") as conn, conn.transaction():
            if fence is not None:
                with conn.cursor(row_factory=dict_row) as check:
                    check_fence(_PgExec(check), fence)
            with conn.cursor() as cur:
                if batch.id is not None:
                    cur.execute("INSERT INTO applied_batches (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (batch.id,))
                    if cur.rowcount == 0:
                        return taken  # replayed from the spool after it was applied: nothing more to write
                if adopt:
                    assert fence is not None
                    taken = self._taken(cur, batch, fence.node)
                self._write(conn, cur, batch.without(taken) if taken else batch, on_new_event)
        self._ids.update(self._new_ids)
        self._partitions |= self._new_partitions
        return taken

    @staticmethod
    def _taken(cur: psycopg.Cursor, batch: Batch, node: str) -> set[str]:
        """The batch's units another node has written a cycle of since the batch's first cycle (all of them when
        the batch has no cycle to date it by)."""
        units = sorted(batch.units())
        starts = [c.started for c in batch.cycles if c.started is not None]
        if not units or not starts:
            return set(units)
        cur.execute("SELECT DISTINCT target FROM cycles WHERE target = ANY(%s) AND started >= %s"
                    " AND node IS DISTINCT FROM %s", (units, Epoch(min(starts)), node))
        return {r[0] for r in cur.fetchall()}

    def _write(self, conn: psycopg.Connection, cur: psycopg.Cursor, batch: Batch,
               on_new_event: Callable[[TicketTx, BreachEvent], None] | None) -> None:
        if batch.cycles:
            self._ensure_partitions(cur, [c.started for c in batch.cycles])
            with cur.copy("COPY cycles (target, probe, started, duration, ok, verdict, reason, sent, received,"
                          " rtt_median, jitter, samples, node, site) FROM STDIN") as copy:
                for c in batch.cycles:
                    copy.write_row((c.target, c.probe, None if c.started is None else Epoch(c.started), c.duration,
                                    c.ok, c.verdict, c.reason, c.sent, c.received, c.rtt_median, c.jitter,
                                    _jsonb(c.samples), c.node, c.site))
        if batch.states:
            cur.executemany(
                "INSERT INTO target_state (target, state, since, updated, tracker) VALUES (%s,%s,%s,%s,%s)"
                " ON CONFLICT (target) DO UPDATE SET state = excluded.state, since = excluded.since,"
                " updated = excluded.updated, tracker = excluded.tracker",
                [(s.target, s.state, None if s.since is None else Epoch(s.since), Epoch(s.updated), Jsonb(s.tracker))
                 for s in batch.states.values()])
        if batch.outages:
            # evidence merges like SQLite's json_patch on the top level: new keys win, a null removes the key
            cur.executemany(
                'INSERT INTO outages (target, contract, kind, start, "end", evidence) VALUES (%s,%s,%s,%s,%s,%s)'
                ' ON CONFLICT (target, kind, start) DO UPDATE SET "end" = excluded."end", evidence = CASE'
                " WHEN excluded.evidence IS NULL THEN outages.evidence"
                " WHEN outages.evidence IS NULL THEN excluded.evidence"
                " ELSE (outages.evidence || excluded.evidence) - ARRAY(SELECT k FROM jsonb_each(excluded.evidence)"
                " AS e(k, v) WHERE v = 'null'::jsonb) END",
                [(o.target, o.contract, o.kind, Epoch(o.start), None if o.end is None else Epoch(o.end),
                  _jsonb(o.evidence or None)) for o in batch.outages])
        if batch.unknown:
            cur.executemany(
                'INSERT INTO unknown_intervals (target, start, "end", reason) VALUES (%s,%s,%s,%s)'
                ' ON CONFLICT (target, start) DO UPDATE SET "end" = greatest(unknown_intervals."end", excluded."end")',
                [(u.target, Epoch(u.start), Epoch(u.end), u.reason) for u in batch.unknown])
        if batch.events:
            tickets = SqlTicketTx(_PgExec(conn.cursor(row_factory=dict_row)))
            for e in batch.events:
                cur.execute("INSERT INTO events (key, kind, contract, target, at, data) VALUES (%s,%s,%s,%s,%s,%s)"
                            " ON CONFLICT (key) DO NOTHING", (e.key, e.kind, e.contract, e.target, Epoch(e.at),
                                                               Jsonb(e.data)))
                if cur.rowcount and on_new_event is not None:
                    on_new_event(tickets, e)
        if batch.hourly:
            cur.executemany(
                "INSERT INTO rollups_hourly (target_id, hour_no, counts, rtt) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT (target_id, hour_no) DO UPDATE SET counts = excluded.counts, rtt = excluded.rtt",
                [(self._target_id(cur, t), hour // 3600, *r.blobs())
                 for (t, hour), r in batch.hourly.items()])
        if batch.monthly:
            cur.executemany(
                "INSERT INTO rollups_monthly (target_id, month, counts, rtt) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT (month, target_id) DO UPDATE SET counts = excluded.counts, rtt = excluded.rtt",
                [(self._target_id(cur, t), month, *r.blobs())
                 for (t, month), r in batch.monthly.items()])

    def purge(self, raw_before: float, rollups_before: float) -> tuple[int, int]:
        """Drop the day partitions of cycles wholly before ``raw_before`` (and delete the rest of that day's
        rows), and hourly rollups before ``rollups_before``; returns the rows removed."""
        raw = 0
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'cycles' ORDER BY 1")
            cutoff_day = int(raw_before // _DAY)
            for (name,) in cur.fetchall():
                day = int(datetime.strptime(name[len("cycles_"):], "%Y%m%d").replace(tzinfo=timezone.utc)
                          .timestamp() // _DAY)
                if day < cutoff_day:
                    cur.execute(f"SELECT count(*) FROM {name}")
                    raw += int(cur.fetchone()[0])  # type: ignore[index]
                    cur.execute(f"DROP TABLE {name}")
                    self._partitions.discard(day)
            cur.execute("DELETE FROM cycles WHERE started < %s", (Epoch(raw_before),))
            raw += cur.rowcount
            cur.execute("DELETE FROM rollups_hourly WHERE hour_no < %s", (math.ceil(rollups_before / 3600),))
            hourly = cur.rowcount
        return raw, hourly

    def begin_run(self, started: float, version: str) -> int:
        with self._tx() as ex:
            return int(ex.value("INSERT INTO runs (started, version) VALUES (?, ?) RETURNING id",
                                (Epoch(started), version)))

    def end_run(self, run_id: int, stopped: float) -> None:
        with self._tx() as ex:
            ex.run("UPDATE runs SET stopped = ? WHERE id = ?", (Epoch(stopped), run_id))

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _cycle(r: Mapping[str, Any]) -> CycleRecord:
        return CycleRecord(r["target"], r["probe"], r["started"], r["duration"], r["ok"], r["verdict"], r["reason"],
                           r["sent"], r["received"], r["rtt_median"], r["jitter"], r["samples"], r["node"], r["site"])

    @staticmethod
    def _outage(r: Mapping[str, Any]) -> OutageRecord:
        return OutageRecord(r["target"], r["contract"], r["kind"], r["start"], r["end"], r["evidence"] or None)

    def load_states(self, names: "Collection[str] | None" = None) -> dict[str, StateRecord]:
        rows = self._rows("SELECT * FROM target_state") if names is None else \
            self._rows("SELECT * FROM target_state WHERE target = ANY(?)", (list(names),))
        return {r["target"]: StateRecord(r["target"], r["state"], r["since"], r["updated"], r["tracker"]) for r in rows}

    def state(self, target: str) -> StateRecord | None:
        rows = self._rows("SELECT * FROM target_state WHERE target = ?", (target,))
        return StateRecord(rows[0]["target"], rows[0]["state"], rows[0]["since"], rows[0]["updated"],
                           rows[0]["tracker"]) if rows else None

    def last_cycles(self) -> dict[str, CycleRecord]:
        # a loose index scan (one index probe per target) instead of DISTINCT ON's sort of every cycle kept
        rows = self._rows(
            "WITH RECURSIVE t(target) AS (SELECT min(target) FROM cycles UNION ALL"
            " SELECT (SELECT min(target) FROM cycles WHERE target > t.target) FROM t WHERE t.target IS NOT NULL)"
            " SELECT c.* FROM t CROSS JOIN LATERAL"
            " (SELECT target, probe, started, duration, ok, verdict, reason, sent, received, rtt_median, jitter,"
            " NULL::jsonb AS samples, node, site FROM cycles WHERE cycles.target = t.target"
            " ORDER BY started DESC LIMIT 1) c")
        return {r["target"]: self._cycle(r) for r in rows}

    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]:
        rows = self._rows("SELECT * FROM cycles WHERE target = ? AND started >= ? AND started < ? ORDER BY started",
                          (target, Epoch(start), Epoch(end)))
        return [self._cycle(r) for r in rows]

    def count_cycles(self) -> int:
        return int(self._rows("SELECT count(*) AS n FROM cycles")[0]["n"])

    def outages(self, target: str | None = None) -> list[OutageRecord]:
        query = "SELECT * FROM outages" + (" WHERE target = ?" if target else "") + " ORDER BY start, id"
        return [self._outage(r) for r in self._rows(query, (target,) if target else ())]

    def outages_between(self, start: float, end: float, contract: str | None = None) -> list[OutageRecord]:
        rows = self._rows('SELECT * FROM outages WHERE start < ? AND ("end" IS NULL OR "end" > ?)'
                          + (" AND contract = ?" if contract else "") + " ORDER BY start, id",
                          (Epoch(end), Epoch(start), contract) if contract else (Epoch(end), Epoch(start)))
        return [self._outage(r) for r in rows]

    def runs(self) -> list[RunRecord]:
        return [RunRecord(r["id"], r["started"], r["stopped"], r["version"], r["stopped"] is not None)
                for r in self._rows("SELECT * FROM runs ORDER BY id")]

    def unknown_intervals(self, target: str | None, start: float, end: float) -> list[UnknownRecord]:
        query = 'SELECT * FROM unknown_intervals WHERE "end" > ? AND start < ?' + (" AND target = ?" if target else "")
        args = (Epoch(start), Epoch(end), target) if target else (Epoch(start), Epoch(end))
        return [UnknownRecord(r["target"], r["start"], r["end"], r["reason"])
                for r in self._rows(query + " ORDER BY start, id", args)]

    def monthly_rollups(self, month: str, target: str | None = None,
                        targets: "Collection[str] | None" = None) -> dict[str, StoredRollup]:
        query = "SELECT t.name, m.counts, m.rtt FROM rollups_monthly m JOIN targets t ON t.id = m.target_id WHERE m.month = ?"
        if targets is not None:
            rows = self._rows(query + " AND t.name = ANY(?)", (month, list(targets)))
        else:
            rows = self._rows(query + (" AND t.name = ?" if target else ""), (month, target) if target else (month,))
        return {r["name"]: StoredRollup(bytes(r["counts"]), bytes(r["rtt"])) for r in rows}

    def hourly_rollups(self, target: str, start: float, end: float) -> dict[int, StoredRollup]:
        rows = self._rows("SELECT h.hour_no::bigint * 3600 AS hour, h.counts, h.rtt FROM rollups_hourly h"
                          " JOIN targets t ON t.id = h.target_id"
                          " WHERE t.name = ? AND h.hour_no >= ? AND h.hour_no < ? ORDER BY h.hour_no",
                          (target, math.ceil(start / 3600), math.ceil(end / 3600) if math.isfinite(end) else 2**31 - 1))
        return {r["hour"]: StoredRollup(bytes(r["counts"]), bytes(r["rtt"])) for r in rows}

    def events(self, start: float | None = None, end: float | None = None) -> list[BreachEvent]:
        query, args = "SELECT * FROM events", []
        if start is not None:
            query, args = query + " WHERE at >= ? AND at < ?", [Epoch(start), Epoch(end if end is not None else math.inf)]
        return [BreachEvent(r["kind"], r["contract"], r["target"], r["at"], r["key"], r["data"])
                for r in self._rows(query + " ORDER BY at, key", args)]

    def integrity_ok(self) -> bool:
        """Every open outage and ticket refers to rows that exist (PostgreSQL checks its own pages)."""
        rows = self._rows("SELECT count(*) AS n FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id"
                          " WHERE t.id IS NULL")
        return int(rows[0]["n"]) == 0

    # -- whole tables (store copy) ---------------------------------------------------------------
    def dump_table(self, table: str, chunk: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        spec = TABLES[table]
        cols = ", ".join(_COLUMN_EXPR.get((table, c), f'"{c}"') for c, _ in spec)
        order = {"cycles": "target, started", "target_state": "target", "events": "at, key",
                 "rollups_hourly": "target_id, hour_no",
                 "rollups_monthly": "target_id, month", "ticket_refs": "ticket_id, sink",
                 "customer_requests": "source, external_id", "request_cursors": "source"}.get(table, "id")
        with self._conn() as conn, conn.transaction(), conn.cursor(name=f"dump_{table}") as cur:
            cur.itersize = chunk
            cur.execute(f"SELECT {cols} FROM {table} ORDER BY {order}")
            while rows := cur.fetchmany(chunk):
                yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]

    def load_table(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        spec = TABLES[table]
        if table == "rollups_hourly":
            spec = (("target_id", ""), ("hour_no", ""), ("counts", ""), ("rtt", ""))
            rows = [(r[0], r[1] // 3600, r[2], r[3]) for r in rows]
        cols = ", ".join(f'"{c}"' for c, _ in spec)

        def conv(v: Any, kind: str) -> Any:
            if v is None:
                return None
            return Epoch(v) if kind == "t" else Jsonb(v) if kind == "j" else v

        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            if table == "cycles":
                self._new_partitions = set()
                self._ensure_partitions(cur, [r[2] for r in rows])
                self._partitions |= self._new_partitions
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(tuple(conv(v, kind) for v, (_, kind) in zip(row, spec)))

    def finish_load(self) -> None:
        """After loading rows with their ids: move each id sequence past the largest id."""
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            for table in _SERIAL_TABLES:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                            f" greatest((SELECT max(id) FROM {table}), 1), (SELECT max(id) FROM {table}) IS NOT NULL)")
        self._ids.clear()

    # -- cluster -------------------------------------------------------------------------------
    def cluster_join(self, node: str, site: str, instance: str, config_hash: str, version: str, host: str, pid: int,
                     failover_delay: float, takeover: bool = False) -> int:
        """Register this instance under ``node`` with a new epoch; refuses a name another live instance holds
        (unless ``takeover``: the caller knows that instance is gone; the new epoch fences it)."""
        with self._tx() as ex:
            row = ex.one("SELECT instance, host, pid, clock_timestamp() - heartbeat < make_interval(secs => ?) AS live,"
                         " left_at IS NULL AS present FROM cluster_nodes WHERE node = ? FOR UPDATE",
                         (failover_delay, node))
            if row is not None and row["live"] and row["present"] and row["instance"] != instance and not takeover:
                raise ClusterError(f"cluster.node {node!r} is already live (pid {row['pid']} on {row['host']}); "
                                   "every node needs its own name")
            epoch = int(ex.value("SELECT nextval('cluster_epoch') AS e"))
            ex.run("INSERT INTO cluster_nodes (node, site, instance, epoch, heartbeat, started, config_hash, version,"
                   " host, pid) VALUES (?, ?, ?, ?, clock_timestamp(), clock_timestamp(), ?, ?, ?, ?)"
                   " ON CONFLICT (node) DO UPDATE SET site = excluded.site, instance = excluded.instance,"
                   " epoch = excluded.epoch, heartbeat = excluded.heartbeat, started = excluded.started,"
                   " config_hash = excluded.config_hash, version = excluded.version, host = excluded.host,"
                   " pid = excluded.pid, owned = 0, left_at = NULL",
                   (node, site, instance, epoch, config_hash, version, host, pid))
            return epoch

    def cluster_heartbeat(self, fence: Fence, owned: int, config_hash: str) -> bool:
        """Renew the lease; False when it is no longer this instance's (expired ones are renewed only by a
        rejoin, so a node cut off past its failover delay never silently resumes)."""
        with self._tx() as ex:
            return ex.run("UPDATE cluster_nodes SET heartbeat = clock_timestamp(), owned = ?, config_hash = ?"
                          " WHERE node = ? AND instance = ? AND epoch = ? AND left_at IS NULL"
                          " AND clock_timestamp() - heartbeat < make_interval(secs => ?)",
                          (owned, config_hash, fence.node, fence.instance, fence.epoch, fence.failover_delay)) == 1

    def cluster_leave(self, fence: Fence) -> None:
        with self._tx() as ex:
            ex.run("UPDATE cluster_nodes SET left_at = clock_timestamp() WHERE node = ? AND instance = ?",
                   (fence.node, fence.instance))

    def cluster_nodes(self) -> list[NodeInfo]:
        rows = self._rows("SELECT *, extract(epoch FROM clock_timestamp() - heartbeat)::float8 AS age"
                          " FROM cluster_nodes ORDER BY site, node")
        return [NodeInfo(r["node"], r["site"], r["instance"], int(r["epoch"]), float(r["age"]), r["started"],
                         r["config_hash"], r["version"], r["host"], int(r["pid"]), int(r["owned"]),
                         r["left_at"] is not None) for r in rows]

    def cluster_publish_config(self, fence: Fence, config_hash: str, body: str) -> int:
        """Publish a config for every node (under a live lease: a fenced node publishes nothing); its version."""
        with self._tx() as ex:
            live = ex.one("SELECT 1 AS ok FROM cluster_nodes WHERE node = ? AND instance = ? AND epoch = ?"
                          " AND left_at IS NULL AND clock_timestamp() - heartbeat < make_interval(secs => ?)",
                          (fence.node, fence.instance, fence.epoch, fence.failover_delay))
            if live is None:
                raise FencedError(f"node {fence.node} holds no live lease (epoch {fence.epoch}); config not published")
            version = int(ex.value("SELECT coalesce(max(version), 0) + 1 AS v FROM cluster_config"))
            ex.run("INSERT INTO cluster_config (version, hash, body, node) VALUES (?, ?, ?, ?)",
                   (version, config_hash, body, fence.node))
            ex.run("DELETE FROM cluster_config WHERE version < ?", (version - 20,))  # a short history
            return version

    def cluster_config(self) -> tuple[int, str, str, str] | None:
        """The latest published config: (version, hash, body, node), or None."""
        rows = self._rows("SELECT version, hash, body, node FROM cluster_config ORDER BY version DESC LIMIT 1")
        return None if not rows else (int(rows[0]["version"]), rows[0]["hash"], rows[0]["body"], rows[0]["node"])

    def leader_lease(self, fence: Fence, ttl: float) -> LeaderLease | None:
        """Take or renew the cluster's leader lease for ``ttl`` seconds of the database's clock; None when
        another instance holds an unexpired one, or this node holds no live lease of its own. A renewal keeps
        the term; taking a lease (free, expired, or this node's own after it expired) starts a new one."""
        with self._tx() as ex:
            live = ex.one("SELECT 1 AS ok FROM cluster_nodes WHERE node = ? AND instance = ? AND epoch = ?"
                          " AND left_at IS NULL AND clock_timestamp() - heartbeat < make_interval(secs => ?)"
                          " FOR SHARE", (fence.node, fence.instance, fence.epoch, fence.failover_delay))
            if live is None:
                return None
            row = ex.one("UPDATE cluster_leader SET expires = clock_timestamp() + make_interval(secs => ?)"
                         " WHERE id = 1 AND instance = ? AND epoch = ? AND expires > clock_timestamp()"
                         " RETURNING term, extract(epoch FROM since)::float8 AS since",
                         (ttl, fence.instance, fence.epoch))
            renewed = row is not None
            if row is None:  # free or expired: take it under a new term
                row = ex.one("UPDATE cluster_leader SET node = ?, instance = ?, epoch = ?,"
                             " term = nextval('cluster_epoch'), since = clock_timestamp(),"
                             " expires = clock_timestamp() + make_interval(secs => ?)"
                             " WHERE id = 1 AND expires <= clock_timestamp()"
                             " RETURNING term, extract(epoch FROM since)::float8 AS since",
                             (fence.node, fence.instance, fence.epoch, ttl))
            if row is None:
                row = ex.one("INSERT INTO cluster_leader (id, node, instance, epoch, term, since, expires)"
                             " VALUES (1, ?, ?, ?, nextval('cluster_epoch'), clock_timestamp(),"
                             " clock_timestamp() + make_interval(secs => ?)) ON CONFLICT (id) DO NOTHING"
                             " RETURNING term, extract(epoch FROM since)::float8 AS since",
                             (fence.node, fence.instance, fence.epoch, ttl))
            if row is None:
                return None
            term = int(row["term"])
            if renewed:
                ex.run("UPDATE leader_terms SET expires = (SELECT expires FROM cluster_leader WHERE id = 1)"
                       " WHERE term = ?", (term,))
            else:
                ex.run("INSERT INTO leader_terms (term, node, instance, epoch, since, expires)"
                       " SELECT term, node, instance, epoch, since, expires FROM cluster_leader WHERE id = 1")
                ex.run("DELETE FROM leader_terms WHERE expires < clock_timestamp() - interval '400 days'")
            return LeaderLease(term, float(row["since"]))

    def leader_release(self, fence: Fence) -> None:
        """End this instance's leader lease now (a clean stop): another node takes it at its next heartbeat."""
        with self._tx() as ex:
            ex.run("UPDATE cluster_leader SET expires = clock_timestamp() WHERE id = 1 AND instance = ? AND epoch = ?"
                   " AND expires > clock_timestamp()", (fence.instance, fence.epoch))
            ex.run("UPDATE leader_terms SET expires = least(expires, clock_timestamp()) WHERE instance = ? AND epoch = ?"
                   " AND expires > clock_timestamp()", (fence.instance, fence.epoch))

    def cluster_leadership(self) -> LeaderInfo | None:
        """The leader lease as the database sees it now (None: never held)."""
        rows = self._rows("SELECT node, term, extract(epoch FROM since)::float8 AS since,"
                          " extract(epoch FROM expires)::float8 AS expires,"
                          " extract(epoch FROM expires - clock_timestamp())::float8 AS remaining"
                          " FROM cluster_leader WHERE id = 1")
        if not rows:
            return None
        r = rows[0]
        return LeaderInfo(r["node"], int(r["term"]), float(r["since"]), float(r["expires"]), float(r["remaining"]))

    def leader_terms(self, since: float = 0.0) -> list[LeaderInfo]:
        """Every leader term whose lease lasted past ``since`` (unix seconds), oldest first: holder, term, the
        database time it was taken and its lease's last expiry (``remaining``: seconds left now, negative when over)."""
        rows = self._rows("SELECT node, term, extract(epoch FROM since)::float8 AS since,"
                          " extract(epoch FROM expires)::float8 AS expires,"
                          " extract(epoch FROM expires - clock_timestamp())::float8 AS remaining"
                          " FROM leader_terms WHERE expires > to_timestamp(?) ORDER BY term", (since,))
        return [LeaderInfo(r["node"], int(r["term"]), float(r["since"]), float(r["expires"]), float(r["remaining"]))
                for r in rows]

    def cluster_leader(self) -> str | None:
        """The node holding an unexpired leader lease now, in the database's time (None: no leader)."""
        info = self.cluster_leadership()
        return info.node if info is not None and info.remaining > 0 else None

    def compact(self) -> None:
        """VACUUM FULL every table, so the size shows what the data needs."""
        with self._conn() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM (FULL, ANALYZE)")
            finally:
                conn.autocommit = False

    def size_bytes(self) -> int:
        """Bytes on disk of slawatch's tables with their indexes and TOAST (not the rest of the database)."""
        with self._read() as ex:
            return int(ex.value(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"))

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"
