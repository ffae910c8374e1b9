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
from test_daemon_e2e import scrape

pytestmark = [needs_root, pytest.mark.slow]

CONFIG = """\
storage: {{path: {db}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}}}
targets:
  - {{id: lo1, contract: c1, kind: internet, address: 127.0.0.1}}
  - {{id: lo2, contract: c1, kind: internet, address: 127.0.0.2}}
"""


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
    path.write_text(CONFIG.format(db=db, port=port))
    log = open(tmp_path / "daemon.log", "w+")
    proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
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
