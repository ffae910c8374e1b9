"""The store contract: one suite run over every backend (SQLite and a real PostgreSQL started by the tests)."""

import dataclasses
import multiprocessing
import sqlite3

import pytest

from monitor.errors import StoreError
from monitor.events import BreachEvent, outage_event
from monitor.sla.rollup import Rollup
from monitor.store import (SCHEMA_VERSION, TABLES, Batch, CycleRecord, Delivered, OutageRecord, SqliteStore,
                           StateRecord, UnknownRecord)

T0 = 1_764_000_000.0  # 2025-11-24


def _cycles(n, target="t1", start=T0):
    return [CycleRecord(target, "icmp", start + i, 0.01, True, "good", None, 3, 3, 0.0012, 0.0001,
                        {"rtts": [0.001, 0.0012, None], "dup": 0, "late": 1}) for i in range(n)]


# --------------------------------------------------------------------------- the contract, over every store
def test_round_trip(every_store):
    loc = every_store.location()
    store = every_store.open(loc)
    assert store.schema_version() == SCHEMA_VERSION  # one history for both backends (monitor.store.schema)
    cycles = _cycles(1000)
    store.write_batch(cycles, [StateRecord("t1", "up", 100.0, 1099.0, {"fail_run": 0})],
                      [OutageRecord("t1", "c1", "down", 50.0, None, {"last_good": {"at": 40.0}, "first_bad": None})])
    store.write_batch(outages=[OutageRecord("t1", "c1", "down", 50.0, 80.0, {"failed_cycles": 3, "first_bad": None})])
    store.close()

    again = every_store.open(loc)
    again.migrate()  # idempotent
    got = again.cycles("t1", T0, T0 + 100)
    assert len(got) == 100 and got[0] == cycles[0]
    assert got[0].samples == {"rtts": [0.001, 0.0012, None], "dup": 0, "late": 1}
    assert again.last_cycles()["t1"].started == T0 + 999 and again.last_cycles()["t1"].rtt_median == 0.0012
    assert again.load_states()["t1"].tracker == {"fail_run": 0}
    assert set(again.load_states(["t1", "absent"])) == {"t1"} and again.load_states([]) == {}
    # closing updates in place, and the evidence merges (a null removes a key, as JSON merge patch does)
    assert again.outages() == [OutageRecord("t1", "c1", "down", 50.0, 80.0,
                                            {"last_good": {"at": 40.0}, "failed_cycles": 3})]
    assert again.count_cycles() == 1000
    assert again.integrity_ok()


def test_last_cycles_is_each_targets_latest(every_store):
    """One per target that has cycles, the latest of each, whatever order they were written in (the skip scan
    visits every target of the index, the first and the last included)."""
    store = every_store()
    assert store.last_cycles() == {}
    store.write_batch(_cycles(5, "t2", T0 + 100) + _cycles(3, "a", T0) + _cycles(4, "zz", T0 + 7))
    store.write_batch(_cycles(2, "a", T0 - 50))  # older ones written later
    last = store.last_cycles()
    assert {t: c.started for t, c in last.items()} == {"a": T0 + 2, "t2": T0 + 104, "zz": T0 + 10}
    assert last["t2"] == dataclasses.replace(_cycles(5, "t2", T0 + 100)[-1], samples=None)  # the figures, not the echoes


def test_batch_is_atomic(every_store):
    store = every_store()
    good = CycleRecord("t1", "icmp", T0, 0.0, True, "good", None)
    bad = CycleRecord("t1", "icmp", None, 0.0, True, "good", None)  # NOT NULL violation
    with pytest.raises(StoreError, match="write to .*store .* failed"):
        store.write_batch([good, bad])
    assert store.count_cycles() == 0
    store.write_batch([good])  # the store is usable after the failure
    assert store.count_cycles() == 1


def test_reapplying_a_batch_changes_nothing(every_store):
    """A crash between a write and the writer's bookkeeping replays the batch: upserts keep it one."""
    store = every_store()
    roll = Rollup()
    batch = Batch(
        states={"t1": StateRecord("t1", "down", T0, T0 + 60, {"fail_run": 3})},
        outages=[OutageRecord("t1", "c1", "down", T0, None, {"first_bad": {"at": T0}})],
        unknown=[UnknownRecord("t1", T0 - 600, T0 - 300, "daemon not running")],
        events=[outage_event("outage_started", "c1", "t1", T0, None)],
        hourly={("t1", int(T0 // 3600 * 3600)): roll},
        monthly={("t1", "2025-11"): roll},
    )
    store.write(batch)
    store.write(batch)
    store.write(Batch(unknown=[UnknownRecord("t1", T0 - 600, T0 - 200, "daemon not running")]))
    store.write(Batch(unknown=[UnknownRecord("t1", T0 - 600, T0 - 400, "daemon not running")]))  # never shrinks
    assert len(store.outages()) == 1
    assert [(u.start, u.end) for u in store.unknown_intervals("t1", 0, T0 * 2)] == [(T0 - 600, T0 - 200)]
    assert [e.key for e in store.events()] == [batch.events[0].key]
    assert list(store.monthly_rollups("2025-11")) == ["t1"]
    assert list(store.monthly_rollups("2025-11", targets=["t1", "nope"])) == ["t1"]  # one contract's (a portal page)
    assert store.monthly_rollups("2025-11", targets=["nope"]) == {}
    assert len(store.hourly_rollups("t1", T0 - 7200, T0 + 7200)) == 1


def test_reads_by_time(every_store):
    store = every_store()
    store.write(Batch(
        outages=[OutageRecord("a", "c1", "down", T0, T0 + 60), OutageRecord("b", "c1", "down", T0 + 100, None),
                 OutageRecord("z", "c2", "down", T0 + 100, T0 + 900)],
        unknown=[UnknownRecord("a", T0 + 200, T0 + 300, "gap"), UnknownRecord("b", T0 + 250, T0 + 260, "gap")],
        events=[BreachEvent("budget_burn", "c1", "a", T0 + 5, "k1", {"x": 1}),
                BreachEvent("budget_burn", "c1", "a", T0 + 500, "k2", {"x": 2})]))
    assert [o.target for o in store.outages_between(T0 + 61, T0 + 1000)] == ["b", "z"]
    assert [o.target for o in store.outages_between(T0 + 61, T0 + 1000, "c1")] == ["b"]  # one contract's (a portal page)
    assert [o.target for o in store.outages_between(T0 + 61, T0 + 1000, "c2")] == ["z"]
    assert [o.target for o in store.outages_between(T0 - 10, T0 + 1)] == ["a"]
    assert [u.target for u in store.unknown_intervals(None, T0 + 255, T0 + 256)] == ["a", "b"]
    assert [u.target for u in store.unknown_intervals("b", T0, T0 + 1000)] == ["b"]
    assert [e.key for e in store.events(T0, T0 + 10)] == ["k1"]
    assert [e.data for e in store.events(T0 + 10)] == [{"x": 2}]
    assert store.outages("b")[0].end is None


def test_runs(every_store):
    store = every_store()
    rid = store.begin_run(10.0, "0.1.0")
    assert store.runs()[0].clean is False
    store.end_run(rid, 20.0)
    assert store.runs()[0].stopped == 20.0


def test_purge_drops_old_cycles_and_hourly_rollups(every_store):
    store = every_store()
    day = 86400
    store.write_batch(_cycles(10, start=T0) + _cycles(10, start=T0 + 3 * day))
    store.write(Batch(hourly={("t1", int(T0)): Rollup(), ("t1", int(T0 + 3 * day)): Rollup()}))
    raw, hourly = store.purge(T0 + 2 * day, T0 + 2 * day)
    assert (raw, hourly) == (10, 1)
    assert store.count_cycles() == 10
    assert store.cycles("t1", 0, T0 * 2)[0].started == T0 + 3 * day


def test_ticket_unit_of_work_commits_with_its_event_or_not_at_all(every_store):
    store = every_store()
    seen = []

    def hook(tx, event):
        tid = tx.insert_ticket("u1", f"outage:{event.contract}:{event.target}", event.contract, [event.target],
                               "critical", "outage", "t1 is down", event.at, None)
        tx.note(tid, "opened", "text", event.at)
        tx.enqueue(tid, "rt", "open", "body", ["noc@example.net"], "u1:rt:open:0", event.at)
        tx.enqueue(tid, "rt", "open", "body", [], "u1:rt:open:0", event.at)  # the same key: ignored
        seen.append(tid)

    def failing(tx, event):
        hook(tx, event)
        raise RuntimeError("crash inside the transaction")

    with pytest.raises(RuntimeError):
        store.write(Batch(events=[outage_event("outage_started", "c1", "t1", T0, None)]), failing)
    assert store.tickets() == [] and store.events() == []
    store.write(Batch(events=[outage_event("outage_started", "c1", "t1", T0, None)]), hook)
    store.write(Batch(events=[outage_event("outage_started", "c1", "t1", T0, None)]), hook)  # a replay: no hook
    [ticket] = store.tickets()
    assert (ticket.state, ticket.targets, ticket.opened, ticket.tier) == ("open", ["t1"], T0, 0)
    assert store.ticket_timeline(ticket.id) == [(T0, "opened", "text")]
    [item] = store.outbox()
    assert item.recipients == ["noc@example.net"] and item.next_attempt == T0
    assert store.outbox_pending() == {"rt": 1}
    assert store.outbox_pending_by_ticket() == {ticket.id: (1, ["rt"], None)}
    assert store.open_incidents("outage:") == {"outage:c1:t1": ticket.id}
    assert store.ticket_counts() == {("c1", "open", "critical"): 1}

    # delivery bookkeeping: a failure keeps the row with its error, a success records the reference
    assert [o.id for o in store.outbox_due(T0, 10)] == [item.id]
    store.outbox_failed(item.id, 1, T0 + 5, "HTTP 503")
    assert store.outbox_due(T0 + 1, 10) == []
    assert store.outbox_retry(None) == 1
    [due] = store.outbox_due(T0 + 1, 10)
    assert (due.attempts, due.last_error) == (1, "HTTP 503")
    store.outbox_delivered(Delivered(item.id, ticket.id, "rt", "open", "RT#42", T0 + 2))
    assert store.ticket_refs(ticket.id) == {"rt": "RT#42"}
    assert store.outbox_pending() == {}
    [(t, sink, ext, last)] = store.refs_of_open(("open",))
    assert (t.id, sink, ext, last) == (ticket.id, "rt", "RT#42", "open")

    with store.tickets_tx() as tx:
        tx.set_state(ticket.id, "resolved", resolved=T0 + 60)
    assert store.ticket(ticket.id).resolved == T0 + 60
    assert store.tickets_overlapping("c1", T0 + 30, T0 + 90)[0].id == ticket.id
    assert store.tickets_overlapping("c1", T0 + 61, T0 + 90) == []
    assert store.tickets(state="open") == [] and len(store.tickets(since=T0, until=T0 + 1)) == 1
    with store.tickets_tx() as tx:
        assert tx.resolved_since("outage:c1:t1", T0 + 59).id == ticket.id
        assert tx.unresolved("outage:c1:t1") is None


def test_info_counts_every_table(every_store):
    store = every_store()
    store.write_batch(_cycles(3))
    info = store.info()
    assert info.backend == store.backend and info.schema_version == info.code_version
    assert set(info.rows) == set(TABLES) and info.rows["cycles"] == 3
    assert "pg-test-s3cret" not in info.location


def test_dump_and_load_round_trip_every_table(every_store, tmp_path):
    src = every_store()
    store_a_ticket(src)
    src.write_batch(_cycles(7), [StateRecord("t1", "up", T0, T0 + 6, {"n": 1})],
                    [OutageRecord("t1", "c1", "down", T0 - 50, T0 - 10, {"k": [1, 2]})])
    src.write(Batch(unknown=[UnknownRecord("t1", 1.0, 2.0, "gap")], monthly={("t1", "2025-11"): Rollup()}))
    src.begin_run(T0, "x")
    dst = SqliteStore(tmp_path / "copy.db")
    dst.migrate()
    for table in TABLES:
        for rows in src.dump_table(table, chunk=3):
            dst.load_table(table, rows)
    dst.finish_load()
    for table in TABLES:
        assert [r for rows in src.dump_table(table) for r in rows] == [r for rows in dst.dump_table(table) for r in rows], table
    assert dst.info().rows == src.info().rows


def store_a_ticket(store):
    def hook(tx, event):
        tid = tx.insert_ticket("u9", "outage:c1:t1", "c1", ["t1"], "critical", "outage", "down", event.at, None)
        tx.enqueue(tid, "rt", "open", "body", [], "u9:rt:open:0", event.at)

    store.write(Batch(events=[outage_event("outage_started", "c1", "t1", T0, None)]), hook)


def _migrate_in_child(url, queue):
    from monitor.store import open_url

    try:
        store = open_url(url)
        queue.put(store.migrate())
        store.close()
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


def test_two_processes_migrating_together_migrate_once(every_store):
    loc = every_store.location()
    url = loc if every_store.backend == "postgresql" else f"sqlite:{loc}"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_child, args=(url, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert all(isinstance(r, int) for r in results), results
    store = every_store.open(loc)
    assert store.info().schema_version == store.info().code_version


# --------------------------------------------------------------------------- SQLite only
def test_sqlite_uses_wal(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.migrate()
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {100 + SCHEMA_VERSION + 1}")  # a newer slawatch's (monitor.store.schema)
    with pytest.raises(StoreError, match="newer than this slawatch understands"):
        SqliteStore(path).migrate()


def test_sqlite_readonly_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist yet"):
        SqliteStore(tmp_path / "missing.db", readonly=True)


# --------------------------------------------------------------------------- PostgreSQL only
def test_postgresql_newer_schema_is_refused_and_nothing_changes(pg_cluster):
    from monitor.store.postgres import PostgresStore

    dsn = pg_cluster.create_db()
    store = PostgresStore(dsn)
    store.migrate()
    db = dsn.rsplit("/", 1)[1]
    from monitor.store.schema import stored_version

    # what a newer slawatch records (monitor.store.schema: step n as 100 + n)
    pg_cluster.sql(f"INSERT INTO slawatch_schema (version) VALUES ({stored_version(SCHEMA_VERSION + 1)})", db)
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this slawatch understands"):
        store.migrate()
    assert pg_cluster.sql("SELECT count(*) FROM slawatch_schema", db) == str(SCHEMA_VERSION + 1)
    store.close()


@pytest.mark.parametrize("how, message", [
    ("password", "password authentication failed"),
    ("port", "Connection refused|connection failed"),
    ("dsn", "not a valid PostgreSQL connection string"),
    ("db", "does not exist"),
])
def test_postgresql_connection_errors_are_one_line_without_the_password(pg_cluster, how, message):
    from monitor.store.postgres import PostgresStore

    dsn = {"password": pg_cluster.dsn("postgres", password="wrong-pw-s3cret"),
           "port": pg_cluster.dsn("postgres").replace(str(pg_cluster.port), "1"),
           "dsn": "host=127.0.0.1 port= password=pg-test-s3cret ==",
           "db": pg_cluster.dsn("no_such_db")}[how]
    with pytest.raises(StoreError, match=message) as info:
        PostgresStore(dsn)
    text = str(info.value)
    assert "\n" not in text and "s3cret" not in text


def test_load_states_of_named_targets_past_a_bound_parameter_limit(every_store):
    """The leader's consensus round reads only the multi-site targets and their units: more names than SQLite
    binds in one statement."""
    store = every_store()
    names = [f"t{i}" for i in range(1100)]
    store.write(Batch(states={n: StateRecord(n, "up", 1.0, 2.0, {"last_cycle": 2.0}) for n in names}))
    got = store.load_states([*names[::2], "absent"])
    assert sorted(got) == sorted(names[::2]) and got["t10"].tracker == {"last_cycle": 2.0}


def test_customer_requests_and_the_sync_cursor(every_store):
    """#28: requests are upserted by (source, external id) with the source's cursor in the same transaction; read
    back by contract and opening time, exactly (pauses, reopen count, the nullable clocks)."""
    from monitor.store.base import RequestRecord

    store = every_store()
    assert store.request_cursor("rt") is None and store.requests() == []
    a = RequestRecord("rt", "12", "c1", "major", "VPN slow", T0, None, None, "new", (), 0, T0)
    b = RequestRecord("rt", "13", "c2", "minor", "invoice", T0 + 60, T0 + 120, None, "open", (), 0, T0 + 120)
    store.put_requests([a, b], cursor=("rt", T0 + 120))
    assert store.request_cursor("rt") == T0 + 120 and store.request_cursor("jira") is None
    answered = RequestRecord("rt", "12", "c1", "major", "VPN slow", T0, T0 + 300, T0 + 900, "resolved",
                             ((T0 + 400, T0 + 500), (T0 + 900, T0 + 1000)), 1, T0 + 1000)
    store.put_requests([answered], cursor=("rt", T0 + 1000))  # the same request again: replaced, not added
    assert store.requests() == [answered, b]
    assert store.requests(contract="c2") == [b] and store.requests(start=T0 + 30) == [b]
    assert store.request_cursor("rt") == T0 + 1000
