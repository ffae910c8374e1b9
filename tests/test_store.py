import sqlite3

import pytest

from monitor.errors import StoreError
from monitor.store import SCHEMA_VERSION, CycleRecord, OutageRecord, SqliteStore, StateRecord


def test_round_trip(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    assert store.migrate() == SCHEMA_VERSION
    cycles = [
        CycleRecord("t1", "icmp", 100.0 + i, 0.01, True, "good", None, 3, 3, 0.0012, 0.0001,
                    {"rtts": [0.001, 0.0012, None], "dup": 0, "late": 1})
        for i in range(1000)
    ]
    store.write_batch(
        cycles,
        [StateRecord("t1", "up", 100.0, 1099.0, {"fail_run": 0})],
        [OutageRecord("t1", "c1", "down", 50.0, None)],
    )
    store.write_batch(outages=[OutageRecord("t1", "c1", "down", 50.0, 80.0)])  # closing updates in place
    store.close()

    again = SqliteStore(path)
    assert again.migrate() == SCHEMA_VERSION  # idempotent
    got = again.cycles("t1", 100.0, 200.0)
    assert len(got) == 100 and got[0] == cycles[0]
    assert got[0].samples == {"rtts": [0.001, 0.0012, None], "dup": 0, "late": 1}
    assert again.last_cycles()["t1"].started == 1099.0
    assert again.load_states()["t1"].tracker == {"fail_run": 0}
    assert again.outages() == [OutageRecord("t1", "c1", "down", 50.0, 80.0)]
    assert again.integrity_ok()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_batch_is_atomic(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.migrate()
    good = CycleRecord("t1", "icmp", 1.0, 0.0, True, "good", None)
    bad = CycleRecord("t1", "icmp", None, 0.0, True, "good", None)  # NOT NULL violation
    with pytest.raises(StoreError, match="write to store .* failed"):
        store.write_batch([good, bad])
    assert store.count_cycles() == 0


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this slawatch understands"):
        SqliteStore(path).migrate()


def test_runs(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.migrate()
    rid = store.begin_run(10.0, "0.1.0")
    assert store.runs()[0].clean is False
    store.end_run(rid, 20.0)
    assert store.runs()[0].stopped == 20.0


def test_readonly_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist yet"):
        SqliteStore(tmp_path / "missing.db", readonly=True)
