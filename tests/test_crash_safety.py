"""SIGKILL at random points, 20 times, under load: after each restart the store is consistent, no outage or
ticket is doubled or lost, and the time the daemon was down is recorded as unknown."""

from __future__ import annotations

import random
import signal
import subprocess
import time

from conftest import REPO, SLAWATCH, free_port
from conftest import query_ro as q

N_LOOPBACK = 100




def rollup_cycles(blob: bytes) -> int:
    # counts blob: a flag byte, then varints; the first varint is the cycle count
    value, shift, pos = 0, 0, 1
    while True:
        b = blob[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value
        shift += 7


def test_sigkill_twenty_times_under_load(netlab, write_config, tmp_path):
    host = netlab.add_host("crash", kernel_replies=False)
    dark = host.address(9)
    host.set_rules({"default": {}, "addresses": {dark: {"blackout": True}}})
    db = tmp_path / "store.db"
    targets = "\n".join(f"  - {{id: lo{i}, contract: c1, kind: internet, address: 127.0.{i // 250}.{i % 250 + 1}}}"
                        for i in range(N_LOOPBACK))
    path = write_config(f"""
storage: {{path: {db}, flush_interval: 300ms}}
exporter: {{listen: "127.0.0.1:{free_port()}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, timezone: UTC, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, failure_threshold: 2, probes: {{icmp: {{count: 3, spacing: 10ms, timeout: 300ms}}}}}}
targets:
  - {{id: dark, contract: c1, kind: internet, address: "{dark}"}}
{targets}
""")
    rng = random.Random(20261125)
    kills = 0
    for round_ in range(20):
        proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 3.5) if round_ else 5.0)  # the first round lets the outage open
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if not db.exists():
            continue
        assert q(db, "PRAGMA integrity_check") == [("ok",)], f"round {round_}"
        outages = q(db, "SELECT start, end FROM outages WHERE target = 'dark' AND kind = 'down'")
        assert len(outages) <= 1 and all(end is None for _, end in outages), (round_, outages)
        if round_ > 0:
            assert len(outages) == 1, f"round {round_}: the dark target's outage was lost"
            assert q(db, "SELECT COUNT(*) FROM tickets WHERE incident_key = 'outage:c1:dark'") == [(1,)]
            assert q(db, "SELECT COUNT(*) FROM events WHERE kind = 'outage_started'") == [(1,)]
        assert q(db, "SELECT COUNT(*) FROM outages WHERE target != 'dark'") == [(0,)]
        # rollups and raw cycles are written together: their counts agree after any crash
        stored = dict(q(db, "SELECT target, COUNT(*) FROM cycles GROUP BY target"))
        rolled = {name: rollup_cycles(blob) for name, blob in
                  q(db, "SELECT t.name, m.counts FROM rollups_monthly m JOIN targets t ON t.id = m.target_id")}
        hourly: dict[str, int] = {}
        for name, blob in q(db, "SELECT t.name, h.counts FROM rollups_hourly h JOIN targets t ON t.id = h.target_id"):
            hourly[name] = hourly.get(name, 0) + rollup_cycles(blob)
        assert rolled == stored == hourly, f"round {round_}"
    assert kills == 20
    # a clean last run
    proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # a kill during interpreter start-up comes before the run is recorded; every recorded killed run
    # lacks a stop, and only the clean last run has one
    runs = q(db, "SELECT id, stopped FROM runs ORDER BY id")
    assert 10 <= len(runs) <= 21 and runs[-1][1] is not None and all(stopped is None for _, stopped in runs[:-1])
    gaps = q(db, "SELECT COUNT(DISTINCT target), COUNT(*) FROM unknown_intervals WHERE reason LIKE 'no probe cycles%'")
    assert gaps[0][0] >= N_LOOPBACK * 0.9 and gaps[0][1] >= N_LOOPBACK * 5, gaps  # the down time is unknown, not up
    assert q(db, "SELECT COUNT(*) FROM tickets") == [(1,)]
    assert q(db, "PRAGMA integrity_check") == [("ok",)]
