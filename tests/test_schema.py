"""One schema, one migration history (monitor.store.schema), both dialects' DDL from it.

A new store made by the history has exactly the schema the two earlier histories made (tests/legacy_schema.py,
compared table by table: columns with types, nullability, defaults and keys, indexes, constraints, partitioning,
comments, sequences); and a store those histories left at any of their versions carries on under the new one to
that same schema, its rows kept, its version recorded in the new numbers."""

from __future__ import annotations

import sqlite3

import pytest

from legacy_schema import POSTGRESQL, SQLITE
from schemadump import postgres_schema, sqlite_schema
from monitor.errors import StoreError
from monitor.store import SqliteStore
from monitor.store.schema import HISTORY, LEGACY, SCHEMA_VERSION, TABLES, VERSION_BASE, Table, ddl, step_of, tables


def _legacy_sqlite(path, version: int) -> None:
    db = sqlite3.connect(path)
    try:
        for v in range(1, version + 1):
            db.executescript(SQLITE[v - 1])
            db.execute(f"PRAGMA user_version = {v}")
        db.commit()
    finally:
        db.close()


def _fresh_sqlite(path) -> dict:
    store = SqliteStore(path)
    store.migrate()
    store.close()
    return sqlite_schema(str(path))


def _since_legacy(dialect: str) -> set[str]:
    """The tables the steps after the earlier history's last version made (a new store has them too)."""
    last = max(LEGACY[dialect].values())
    return {op.name for step in HISTORY[last:] for op in step.ops if isinstance(op, Table) and op.only in (None, dialect)}


def test_a_new_sqlite_store_has_the_earlier_historys_schema(tmp_path):
    _legacy_sqlite(tmp_path / "old.db", len(SQLITE))
    fresh = _fresh_sqlite(tmp_path / "new.db")
    assert {k: v for k, v in fresh.items() if k not in _since_legacy("sqlite")} == sqlite_schema(str(tmp_path / "old.db"))


@pytest.mark.parametrize("version", range(0, len(SQLITE) + 1))
def test_a_sqlite_store_of_the_earlier_history_carries_on(tmp_path, version):
    old = tmp_path / "old.db"
    _legacy_sqlite(old, version)
    if version >= 1:  # a row it holds survives the migration
        with sqlite3.connect(old) as db:
            db.execute("INSERT INTO runs (started, version) VALUES (1.5, 'v-old')")
    store = SqliteStore(old)
    assert store.schema_version() == LEGACY["sqlite"][version]
    assert store.migrate() == SCHEMA_VERSION and store.schema_version() == SCHEMA_VERSION
    store.close()
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION_BASE + SCHEMA_VERSION
        if version >= 1:
            assert db.execute("SELECT started, version FROM runs").fetchall() == [(1.5, "v-old")]
    assert sqlite_schema(str(old)) == _fresh_sqlite(tmp_path / "new.db")


def test_an_unknown_version_is_refused_as_newer(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {VERSION_BASE + SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this slawatch"):
        SqliteStore(path).migrate()
    assert step_of(len(SQLITE) + 1, "sqlite") > SCHEMA_VERSION  # a version the earlier history never had


def test_the_history_is_the_one_schema_definition():
    """TABLES (what a copy moves) is the history folded; every step has DDL in some dialect; the cluster's
    tables are PostgreSQL's alone; SQLite's step 8 is empty but still a step of the one history."""
    assert set(tables("sqlite")) == set(TABLES) | {"applied_batches"}
    assert _since_legacy("sqlite") == _since_legacy("postgresql") == {"customer_requests", "request_cursors"}
    assert set(tables("postgresql")) - set(tables("sqlite")) == {"cluster_nodes", "cluster_config", "cluster_leader",
                                                                  "leader_terms"}
    assert all(ddl(n, "sqlite") or ddl(n, "postgresql") for n in range(1, len(HISTORY) + 1))
    assert [c for c, _ in TABLES["rollups_hourly"]] == ["target_id", "hour", "counts", "rtt"]  # logical names
    assert any("hour_no integer NOT NULL" in s for s in ddl(2, "postgresql"))  # PostgreSQL's name for it


# --------------------------------------------------------------------------- PostgreSQL
def _pg_legacy(dsn: str, version: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE slawatch_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL "
                     "DEFAULT now())")
        for v in range(1, version + 1):
            conn.execute(POSTGRESQL[v - 1])
            conn.execute("INSERT INTO slawatch_schema (version) VALUES (%s)", (v,))


def _pg_schema(dsn: str) -> dict:
    import psycopg

    with psycopg.connect(dsn) as conn:
        out = postgres_schema(conn)
    out.pop("slawatch_schema")  # the version table itself: the same table, other rows
    return out


def test_a_new_postgresql_store_has_the_earlier_historys_schema(pg_cluster):
    from monitor.store.postgres import PostgresStore

    old, new = pg_cluster.create_db(), pg_cluster.create_db()
    _pg_legacy(old, len(POSTGRESQL))
    store = PostgresStore(new)
    store.migrate()
    store.close()
    assert {k: v for k, v in _pg_schema(new).items() if k not in _since_legacy("postgresql")} == _pg_schema(old)


@pytest.mark.parametrize("version", range(1, len(POSTGRESQL) + 1))
def test_a_postgresql_store_of_the_earlier_history_carries_on(pg_cluster, version):
    import psycopg

    from monitor.store.postgres import PostgresStore

    old, new = pg_cluster.create_db(), pg_cluster.create_db()
    _pg_legacy(old, version)
    with psycopg.connect(old, autocommit=True) as conn:
        conn.execute("INSERT INTO runs (started, version) VALUES (to_timestamp(1.5), 'v-old')")
    store = PostgresStore(old)
    assert store.schema_version() == LEGACY["postgresql"][version]
    assert store.migrate() == SCHEMA_VERSION and store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION  # nothing left to do
    store.close()
    fresh = PostgresStore(new)
    fresh.migrate()
    fresh.close()
    assert _pg_schema(old) == _pg_schema(new)
    with psycopg.connect(old) as conn:
        assert conn.execute("SELECT extract(epoch FROM started), version FROM runs").fetchall() == [(1.5, "v-old")]
        assert conn.execute("SELECT max(version) FROM slawatch_schema").fetchone()[0] == VERSION_BASE + SCHEMA_VERSION
