"""Steps of the wall clock, made real for the daemon alone with libfaketime (Debian's faketime: the wall clock
is offset through a file the test rewrites; the monotonic clock is left alone, as a stepped system clock
leaves it). A 60 s backward step must not pause probing; a 600 s forward step must not be recorded as time
the daemon was not running; RTTs across a step stay true; both steps are logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SLAWATCH, free_port, wait_for
from procs import spawn

LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LIB.exists(), reason="needs libfaketime "
                                                                             "(scripts/dev-setup installs faketime)")]

CONFIG = """\
storage: {{path: {db}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, probes: {{icmp: {{count: 3, spacing: 10ms, timeout: 300ms}}}}}}
targets:
  - {{id: lo1, contract: c1, kind: internet, address: 127.0.0.1}}
  - {{id: lo2, contract: c1, kind: internet, address: 127.0.0.2}}
"""


def test_wall_clock_steps_neither_pause_probing_nor_become_unknown_time(tmp_path, icmp_mode):
    from monitor.store import SqliteStore

    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    db, port = tmp_path / "s.db", free_port()
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(db=db, port=port))
    env = {**os.environ, "LD_PRELOAD": str(LIB), "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
    log = open(tmp_path / "daemon.log", "w+")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=log)

    def count() -> int:
        store = SqliteStore(db)
        try:  # the daemon creates the file a moment before its tables: until they exist there is nothing yet
            return len(store.cycles("lo1", 0, float("inf"))) if store.schema_version() else 0
        finally:
            store.close()

    try:
        wait_for("cycles", lambda: db.exists() and count() >= 3, timeout=30)
        before = count()
        offset.write_text("-60\n")  # the wall clock steps back a minute
        # still about one cycle a second: 4 more well within 20 s (a schedule on the wall clock would pause 60 s)
        during = wait_for("4 cycles after the backward step", lambda: (lambda n: n if n - before >= 4 else None)(
            count()), timeout=20)
        offset.write_text("+600\n")  # and forward ten minutes (660 s from where it was)
        after = wait_for("3 cycles after the forward step", lambda: (lambda n: n if n - during >= 3 else None)(
            count()), timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    store = SqliteStore(db)
    try:
        gaps = [u for t in ("lo1", "lo2") for u in store.unknown_intervals(t, 0, float("inf"))]
        assert gaps == [], gaps  # the forward step is not "daemon not running"
        cycles = store.cycles("lo1", 0, float("inf"))
        rtts = [r for c in cycles for r in (c.samples or {}).get("rtts", []) if r is not None]
        # true RTTs throughout: each within the configured 300 ms timeout (a step measured on the wall clock would
        # read -60 s or +600 s); how fast loopback answers on a busy machine is not what this test is about
        assert len(rtts) >= 3 * (after - 2) and 0 < min(rtts) and max(rtts) <= 0.3, (min(rtts), max(rtts))
    finally:
        store.close()
    log.seek(0)
    lines = [json.loads(x) for x in log.read().splitlines() if x.startswith("{")]
    steps = [x["msg"] for x in lines if "wall clock stepped" in x["msg"]]
    assert any("backward by 60" in m for m in steps) and any("forward by 660" in m for m in steps), steps
    assert not [x for x in lines if "Traceback" in x.get("exc", "")]
