"""SQLite store: WAL mode, versioned schema with forward migrations, batched writes.

Every batch is one transaction, so a crash leaves either all of a batch or
none of it. The connection is shared by threads under a lock; the daemon
writes from one worker thread and the CLI reads from its own process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

from ..errors import StoreError
from .base import CycleRecord, OutageRecord, RunRecord, StateRecord

__all__ = ["SqliteStore", "MIGRATIONS", "SCHEMA_VERSION"]

#: forward migrations, applied in order at start; index + 1 is the schema version
MIGRATIONS: list[str] = [
    # 1: cycles, target state, outages, daemon runs
    """
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        probe TEXT NOT NULL,
        started REAL NOT NULL,
        duration REAL NOT NULL,
        ok INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT,
        sent INTEGER,
        received INTEGER,
        rtt_median REAL,
        jitter REAL,
        samples TEXT
    );
    CREATE INDEX cycles_target_started ON cycles (target, started);
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since REAL,
        updated REAL NOT NULL,
        tracker TEXT NOT NULL
    );
    CREATE TABLE outages (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        contract TEXT NOT NULL,
        kind TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL,
        UNIQUE (target, kind, start)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        stopped REAL,
        version TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _cycle(row: sqlite3.Row) -> CycleRecord:
    return CycleRecord(
        target=row["target"],
        probe=row["probe"],
        started=row["started"],
        duration=row["duration"],
        ok=bool(row["ok"]),
        verdict=row["verdict"],
        reason=row["reason"],
        sent=row["sent"],
        received=row["received"],
        rtt_median=row["rtt_median"],
        jitter=row["jitter"],
        samples=json.loads(row["samples"]) if row["samples"] else None,
    )


class SqliteStore:
    """The embedded store. ``path`` may be ':memory:' for tests of pure logic."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            if readonly:
                if not Path(self.path).exists():
                    raise StoreError(f"store {self.path} does not exist yet (has `slawatch run` been started?)")
                uri = f"file:{Path(self.path).resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create store directory for {self.path}: {exc.strerror}") from None

    # -- schema --------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        """Apply pending forward migrations; returns the schema version now in force."""
        with self._lock:
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this slawatch "
                    f"understands ({SCHEMA_VERSION}); upgrade slawatch"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    for statement in MIGRATIONS[version - 1].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {version}")
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._db.execute("ROLLBACK")
                    raise StoreError(f"migration to schema version {version} failed on {self.path}: {exc}") from None
            return SCHEMA_VERSION

    # -- writes --------------------------------------------------------------------------
    def write_batch(
        self,
        cycles: Iterable[CycleRecord] = (),
        states: Iterable[StateRecord] = (),
        outages: Iterable[OutageRecord] = (),
    ) -> None:
        """Write everything in one transaction."""
        cycle_rows = [
            (
                c.target,
                c.probe,
                c.started,
                c.duration,
                int(c.ok),
                c.verdict,
                c.reason,
                c.sent,
                c.received,
                c.rtt_median,
                c.jitter,
                json.dumps(c.samples, separators=(",", ":")) if c.samples is not None else None,
            )
            for c in cycles
        ]
        state_rows = [(s.target, s.state, s.since, s.updated, json.dumps(s.tracker)) for s in states]
        outage_rows = [(o.target, o.contract, o.kind, o.start, o.end) for o in outages]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO cycles (target, probe, started, duration, ok, verdict, reason, sent, received,"
                    " rtt_median, jitter, samples) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    cycle_rows,
                )
                self._db.executemany(
                    "INSERT INTO target_state (target, state, since, updated, tracker) VALUES (?,?,?,?,?)"
                    " ON CONFLICT (target) DO UPDATE SET state=excluded.state, since=excluded.since,"
                    " updated=excluded.updated, tracker=excluded.tracker",
                    state_rows,
                )
                self._db.executemany(
                    "INSERT INTO outages (target, contract, kind, start, end) VALUES (?,?,?,?,?)"
                    " ON CONFLICT (target, kind, start) DO UPDATE SET end=excluded.end",
                    outage_rows,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"write to store {self.path} failed: {exc}") from None

    def begin_run(self, started: float, version: str) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO runs (started, version) VALUES (?, ?)", (started, version))
            return int(cur.lastrowid)

    def end_run(self, run_id: int, stopped: float) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET stopped = ? WHERE id = ?", (stopped, run_id))

    # -- reads ---------------------------------------------------------------------------
    def load_states(self) -> dict[str, StateRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM target_state").fetchall()
        return {
            r["target"]: StateRecord(r["target"], r["state"], r["since"], r["updated"], json.loads(r["tracker"]))
            for r in rows
        }

    def last_cycles(self) -> dict[str, CycleRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.* FROM cycles c JOIN (SELECT target, MAX(started) AS m FROM cycles GROUP BY target) l"
                " ON c.target = l.target AND c.started = l.m"
            ).fetchall()
        return {r["target"]: _cycle(r) for r in rows}

    def cycles(self, target: str, start: float, end: float) -> list[CycleRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM cycles WHERE target = ? AND started >= ? AND started < ? ORDER BY started",
                (target, start, end),
            ).fetchall()
        return [_cycle(r) for r in rows]

    def count_cycles(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]

    def outages(self, target: str | None = None) -> list[OutageRecord]:
        query = "SELECT * FROM outages" + (" WHERE target = ?" if target else "") + " ORDER BY start"
        with self._lock:
            rows = self._db.execute(query, (target,) if target else ()).fetchall()
        return [OutageRecord(r["target"], r["contract"], r["kind"], r["start"], r["end"]) for r in rows]

    def runs(self) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        return [RunRecord(r["id"], r["started"], r["stopped"], r["version"], r["stopped"] is not None) for r in rows]

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        with self._lock:
            self._db.close()
