"""The SQLite store on a full disk (a 4 MB tmpfs, filled): writes fail as a fault, not a crash. The backlog is
held in memory within its bound, the failure is logged once (not per retry), everything is written once
space returns, and a SIGTERM while the disk is still full exits non-zero naming what was lost."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from daemonconfig import daemon_yaml
from test_daemon_e2e import scrape
from procs import spawn

pytestmark = [needs_root, pytest.mark.slow]

def config(db, port: int) -> str:
    return daemon_yaml(f"{{path: {db}, flush_interval: 200ms}}", f'{{listen: "127.0.0.1:{port}"}}')


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount) -> None:
    """Fill the tmpfs to the last byte (it may be full already: the store's own growth can do that)."""
    try:
        with open(mount / "filler", "ab") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass


def _gauge(port, name):
    return scrape(port).get((name, ()))


def _lines(proc_log) -> list[dict]:
    proc_log.seek(0)
    return [json.loads(x) for x in proc_log.read().splitlines() if x.startswith("{")]


def test_a_full_disk_is_a_fault_with_a_bounded_backlog_and_one_log_line(tmpfs, tmp_path, icmp_mode):
    port, db = free_port(), tmpfs / "slawatch.db"
    path = tmp_path / "c.yaml"
    path.write_text(config(db, port))
    log = open(tmp_path / "daemon.log", "w+")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for("cycles stored", lambda: (_gauge(port, "slawatch_store_writes_total") or 0) > 3, timeout=30)
        time.sleep(2)
        _fill(tmpfs)
        full_at = time.time()
        wait_for("a backlog", lambda: (_gauge(port, "slawatch_store_backlog_cycles") or 0) >= 10, timeout=30)
        time.sleep(8)
        backlog = _gauge(port, "slawatch_store_backlog_cycles")
        assert 10 <= backlog <= 2 * 2 * (time.time() - full_at + 3)  # two targets' cycles, nothing else piling up
        failures = [x for x in _lines(log) if x["level"] == "error" and "store" in x["logger"] + x["msg"]]
        assert 1 <= len(failures) <= 2, [x["msg"] for x in failures]  # said once, not once per retry
        assert not [x for x in _lines(log) if "Traceback" in x.get("exc", "")]
        (tmpfs / "filler").unlink()  # space again: the backlog is written
        wait_for("the backlog written", lambda: _gauge(port, "slawatch_store_backlog_cycles") == 0, timeout=30)

        # full again, and stopped while full: exit non-zero, naming the cycles it could not write
        _fill(tmpfs)
        wait_for("a backlog again", lambda: (_gauge(port, "slawatch_store_backlog_cycles") or 0) >= 4, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1
        last = [x["msg"] for x in _lines(log)][-3:]
        assert any("lost" in m or "not written" in m for m in last), last
        assert not any(m == "stopped cleanly" for m in last), last
    finally:
        if proc.poll() is None:
            proc.kill()
    (tmpfs / "filler").unlink(missing_ok=True)
    # what was written is intact, and every cycle from before the second fill is there once
    from monitor.store import SqliteStore

    store = SqliteStore(db)
    assert store.integrity_ok()
    starts = [c.started for c in store.cycles("lo1", 0, full_at + 8)]
    assert len(starts) == len(set(starts)) and len(starts) >= 10
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert max(gaps) < 1.5, gaps  # the cycles held through the first full spell were all written
    store.close()


def test_an_outage_that_starts_on_a_full_disk_keeps_its_start_through_the_backlog_and_a_restart(
        tmpfs, tmp_path, icmp_mode, netlab):
    """A circuit (a namespace host) goes dark while the store's disk is full: the outage's start and its
    first bad cycle wait in the backlog, are written when space returns, and a restart continues the same
    outage from its stored start (not re-detected late; the restart's gap is the only unknown time)."""
    host = netlab.add_host("diskfull")
    port, db = free_port(), tmpfs / "slawatch.db"
    path = tmp_path / "c.yaml"
    path.write_text(config(db, port).replace("address: 127.0.0.1}", f"address: {host.address()}}}"))
    log = open(tmp_path / "daemon.log", "w+")

    def start():
        return spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)

    proc = start()
    try:
        wait_for("cycles stored", lambda: (_gauge(port, "slawatch_store_writes_total") or 0) > 3, timeout=30)
        time.sleep(2)
        _fill(tmpfs)
        wait_for("a backlog", lambda: (_gauge(port, "slawatch_store_backlog_cycles") or 0) >= 2, timeout=30)
        host.cut()
        cut_at = time.time()
        wait_for("lo1 down", lambda: scrape(port).get(("slawatch_target_up", (("contract", "c1"), ("kind", "internet"),
                                                                               ("target", "lo1")))) == 0, timeout=30)
        time.sleep(2)
        (tmpfs / "filler").unlink()
        wait_for("the backlog written", lambda: _gauge(port, "slawatch_store_backlog_cycles") == 0, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stopped_at = time.time()
        time.sleep(2)
        proc = start()
        wait_for("running again", lambda: (_gauge(port, "slawatch_store_writes_total") or 0) > 3, timeout=30)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        host.restore()
    from monitor.store import SqliteStore

    store = SqliteStore(db)
    outages = store.outages("lo1")
    assert len(outages) == 1, outages  # one outage, continued through the restart, not a second one
    outage = outages[0]
    first_bad = min(c.started for c in store.cycles("lo1", cut_at - 2, stopped_at) if c.verdict == "bad")
    assert cut_at - 1.5 <= outage.start <= cut_at + 1.5, (outage.start, cut_at)  # dated from the cut, not late
    assert outage.start == first_bad and outage.end is None
    unknown = [u for u in store.unknown_intervals("lo1", cut_at - 10, time.time()) if u.end > cut_at]
    assert sum(u.end - u.start for u in unknown) < (time.time() - stopped_at), unknown  # only the restart's gap
    assert all(u.start >= stopped_at - 1.5 for u in unknown), (unknown, stopped_at)
    store.close()
