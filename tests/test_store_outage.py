"""PostgreSQL going away is a fault, not a crash: the real server is stopped for 60 s under two running daemons.

One daemon's backlog holds everything and writes it all once the server is back; the other's bound is too
small, so it drops its oldest raw cycles and records their time as unknown, never as up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from monitor.errors import StoreError
from monitor.store.postgres import PostgresStore
from monitor.measure.writer import LOST_REASON
from test_daemon_e2e import scrape
from procs import spawn, stop

CONFIG = """\
storage: {{backend: postgresql, dsn: '{dsn}', flush_interval: 200ms, backlog_max_cycles: {bound},
          connect_timeout: 2s}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
defaults:
  targets:
    interval: 1s
    probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}
targets:
  - {{id: lo1, contract: c1, kind: internet, address: 127.0.0.1}}
  - {{id: lo2, contract: c1, kind: internet, address: 127.0.0.2}}
"""

OUTAGE = 60.0


def _cycles(store) -> int:
    try:
        return store.count_cycles()
    except StoreError:  # not migrated yet
        return 0


def _gauge(port, name):
    return scrape(port).get((name, ()))


@pytest.mark.slow
def test_postgresql_stopped_for_60s_loses_nothing_within_the_bound(pg_cluster, tmp_path, icmp_mode):
    daemons = {}
    for name, bound in (("roomy", 200_000), ("tight", 100)):
        dsn, port = pg_cluster.create_db(), free_port()
        conf = tmp_path / f"{name}.yaml"
        # roomy spools to local disk (the default); tight keeps its backlog in memory only, within its bound
        conf.write_text(CONFIG.format(dsn=dsn, port=port, bound=bound).replace(
            "connect_timeout: 2s}", "connect_timeout: 2s, spool_dir: ''}" if name == "tight" else
            f"connect_timeout: 2s, spool_dir: '{tmp_path / 'spool'}'}}"))
        err = open(tmp_path / f"{name}.log", "w+")
        proc = spawn(SLAWATCH + ["run", "-c", str(conf)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                text=True)
        daemons[name] = (proc, dsn, port, err)
    try:
        for name, (proc, dsn, port, err) in daemons.items():
            store = PostgresStore(dsn)
            wait_for(f"{name} writes cycles", lambda: _cycles(store) >= 4)
            store.close()
        time.sleep(2)
        pg_cluster.stop("fast")
        cut = time.time()
        # while the server is down: probing and exporting go on, the backlog grows and is exported (a wait on the
        # condition: two targets' cycles at 1 s make 50 in about 25 s, later on a busy machine, never sooner)
        for name, (proc, dsn, port, err) in daemons.items():
            wait_for(f"{name}'s backlog", lambda: (_gauge(port, "slawatch_store_backlog_cycles") or 0) >= (
                50 if name == "roomy" else 1), timeout=OUTAGE / 2 + 30)
            assert proc.poll() is None, f"{name} died"
            assert scrape(port)[("slawatch_target_up", (("contract", "c1"), ("kind", "internet"),
                                                         ("target", "lo1")))] == 1.0
        time.sleep(max(0.0, OUTAGE - (time.time() - cut)))  # the outage lasts OUTAGE, as configured below
        pg_cluster.start()
        healed = time.time()
        dropped = {}
        for name, (proc, dsn, port, err) in daemons.items():
            wait_for(f"{name} writes its backlog", lambda: _gauge(port, "slawatch_store_backlog_cycles") == 0,
                     timeout=60)
            dropped[name] = _gauge(port, "slawatch_store_backlog_dropped_cycles_total")
        time.sleep(2)
    finally:
        pg_cluster.start()  # a no-op error when it runs already
        for name, (proc, dsn, port, err) in daemons.items():
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    for name, (proc, dsn, port, err) in daemons.items():
        err.seek(0)
        lines = [json.loads(line) for line in err.read().splitlines() if line.startswith("{")]
        assert proc.returncode == 0, lines[-5:]
        store_lines = [x for x in lines if x["logger"].startswith(("slawatch.store", "psycopg"))]
        # one line when it fails, at most one a minute while it stays down, one when it is back (and the drop notice)
        assert 2 <= len(store_lines) <= 5, store_lines
        assert not [x for x in lines if x["level"] == "error" and "Traceback" in x.get("exc", "")]
        store = PostgresStore(dsn)
        cycles = {t: [c.started for c in store.cycles(t, cut - 1, healed)] for t in ("lo1", "lo2")}
        lost = [u for u in store.unknown_intervals(None, 0, time.time() + 1) if u.reason == LOST_REASON]
        if name == "roomy":
            # every second of the outage has its cycle: nothing was lost
            for t, starts in cycles.items():
                assert len(starts) >= OUTAGE - 5, (t, len(starts))
                gaps = [b - a for a, b in zip(starts, starts[1:])]
                assert max(gaps) < 2.5, (t, max(gaps))
            assert lost == [] and dropped[name] == 0
            assert store.unknown_intervals(None, cut, healed) == []
        else:
            # the bound held: the oldest raw cycles went, their time is unknown (never up), and it covers the cut
            assert dropped[name] > 0
            assert lost, "dropped cycles must be recorded as unknown time"
            for t in ("lo1", "lo2"):
                spans = sorted((u.start, u.end) for u in lost if u.target == t)
                assert spans and spans[0][0] <= cut + 2 and spans[-1][1] >= cut + 10, (t, spans[:3], spans[-3:])
        store.close()



@pytest.mark.slow
@needs_root
def test_sigterm_while_postgresql_is_unreachable_counts_every_cycle_it_could_not_write(pg_cluster, tmp_path,
                                                                                        icmp_mode):
    """PostgreSQL silently unreachable (nftables drops its port): each write attempt hangs until the client's
    TCP timeout, so a retry is in flight when SIGTERM comes. The log's count of cycles not written is exact:
    stored + lost = measured (it said 15 where 165 never reached the store: a batch whose retry was in flight
    when the writer stopped was neither put back nor counted)."""
    dsn, port = pg_cluster.create_db(), free_port()
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(dsn=dsn, port=port, bound=200_000).replace(  # the memory backlog's count
        "connect_timeout: 2s}", "connect_timeout: 2s, spool_dir: ''}"))
    err = open(tmp_path / "d.log", "w+")
    proc = spawn(SLAWATCH + ["run", "-c", str(conf)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)
    table = f"slawatch_pgcut_{pg_cluster.port}"
    try:
        store = PostgresStore(dsn)
        wait_for("cycles stored", lambda: _cycles(store) >= 4)
        store.close()
        subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
            f"table inet {table} {{\n chain out {{\n type filter hook output priority 0;\n"
            f" tcp dport {pg_cluster.port} drop\n }}\n}}\n"))
        wait_for("a backlog", lambda: (_gauge(port, "slawatch_store_backlog_cycles") or 0) >= 20, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1  # not clean: the store did not take everything
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err.seek(0)
    lines = [json.loads(line) for line in err.read().splitlines() if line.startswith("{")]
    [final] = [x for x in lines if x["msg"].startswith("stopped, but not cleanly")]
    import re

    lost, measured = map(int, re.match(r"stopped, but not cleanly: (\d+) of the (\d+) cycles", final["msg"]).groups())
    store = PostgresStore(dsn)
    try:
        stored = _cycles(store)
    finally:
        store.close()
    assert lost >= 20 and stored + lost == measured, (stored, lost, measured, [x["msg"] for x in lines[-6:]])


def test_the_spool_keeps_batches_in_order_durably_and_for_one_daemon(tmp_path):
    """monitor.measure.spool: batches put are read back oldest first after a reopen (a restart), a file cut
    short by a crash is ignored, a second daemon on the same directory is refused, and a directory others can
    write to is refused (its files are loaded as the daemon's own)."""
    import os

    from monitor.measure.spool import Spool, SpoolError
    from monitor.store import Batch, CycleRecord
    from monitor.store.base import Fence

    d = tmp_path / "spool"
    spool = Spool(d, 1 << 20)
    fence = Fence("n1", "i", 7, 10.0)
    for i in range(3):
        assert spool.put(Batch(cycles=[CycleRecord("t", "icmp", float(i), 0.1, True, "good", None)] * (i + 1)), fence)
    assert len(spool) == 3 and spool.cycles == 6
    (d / "000000000099-1-" .__add__("0" * 32 + ".tmp")).write_bytes(b"half a batch")  # a crash mid-write
    with pytest.raises(SpoolError, match="in use by another slawatch"):
        Spool(d, 1 << 20)
    del spool
    import gc

    gc.collect()  # the first daemon is gone: its lock with it
    again = Spool(d, 1 << 20)
    assert len(again) == 3 and again.cycles == 6 and not list(d.glob("*.tmp"))
    seen = []
    while (item := again.oldest()) is not None:
        path, f, batch = item
        assert f == fence and batch.id
        seen.append(batch.cycles[0].started)
        again.remove(path)
    assert seen == [0.0, 1.0, 2.0] and again.cycles == 0 and again.bytes == 0
    assert not again.put(Batch(cycles=[CycleRecord("t", "icmp", 9.0, 0.1, True, "good", "x" * 2_000_000)]), None)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(SpoolError, match="writable by nobody else"):
        Spool(open_dir, 1 << 20)


@pytest.mark.slow
def test_a_daemon_killed_during_a_database_outage_loses_nothing(pg_cluster, tmp_path, icmp_mode):
    """#33: PostgreSQL stopped, the daemon SIGKILLed 10 s into the outage (its backlog was memory only: a
    522-cycle backlog was lost this way), PostgreSQL back, the daemon started again: every cycle of the outage
    up to the kill is stored, once (the spool on local disk, replayed in order, each batch applied once)."""
    dsn, port = pg_cluster.create_db(), free_port()
    spool = tmp_path / "spool"
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(dsn=dsn, port=port, bound=200_000).replace(
        "connect_timeout: 2s}", f"connect_timeout: 2s, spool_dir: '{spool}'}}"))
    err = open(tmp_path / "d.log", "w+")

    def start():
        return spawn(SLAWATCH + ["run", "-c", str(conf)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)

    proc = start()
    try:
        store = PostgresStore(dsn)
        wait_for("cycles stored", lambda: _cycles(store) >= 4)
        store.close()
        pg_cluster.stop("fast")
        cut = time.time()
        wait_for("a spooled backlog", lambda: len(list(spool.glob("*.batch"))) >= 3, timeout=30)
        time.sleep(8)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.time()
        spooled = len(list(spool.glob("*.batch")))
        pg_cluster.start()
        proc = start()
        wait_for("the spool replayed", lambda: not list(spool.glob("*.batch")), timeout=60)
        time.sleep(2)
    finally:
        pg_cluster.start()
        stop(proc)
    store = PostgresStore(dsn)
    try:
        for t in ("lo1", "lo2"):
            starts = [c.started for c in store.cycles(t, cut - 2, killed - 1.5)]
            assert len(starts) == len(set(starts)), "a spooled batch was written twice"
            gaps = [b - a for a, b in zip(starts, starts[1:])]
            assert starts and starts[0] < cut and starts[-1] > killed - 3 and max(gaps) < 2.5, (t, gaps, starts[-3:])
    finally:
        store.close()
    print(f"spooled files at the kill: {spooled}; cycles of the outage kept: {len(starts)}")
