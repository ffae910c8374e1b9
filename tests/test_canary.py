"""Self-monitoring: cutting the monitor's own veth takes every target dark at once; the reference targets
(canaries) turn that into unknown time and one internal ticket instead of customer outages."""

from __future__ import annotations

import signal
import subprocess
import time

from conftest import REPO, SLAWATCH, free_port, wait_for
from conftest import query_ro as q
from monitor.canary import CanaryWatch






def test_canary_rule():
    watch = CanaryWatch({"r1": "core", "r2": "core", "r3": "core"}, 0.5)
    assert watch.observe("r1", "bad", 10.0) == [] and not watch.is_down()  # 1 of 3
    [started] = watch.observe("r2", "unknown", 11.0)  # 2 of 3 (a send error counts as failing)
    assert started.kind == "monitoring_outage_started" and started.contract == "core" and watch.is_down()
    assert watch.observe("x", "bad", 12.0) == []  # customers do not move the canary
    assert watch.observe("r1", "good", 20.0)[0].kind == "monitoring_outage_ended"
    assert not watch.is_down()


import pytest


@pytest.mark.parametrize("failure", ["link cut", "upstream blackhole"])
def test_cutting_the_monitors_own_link(netlab, write_config, tmp_path, failure):
    # the whole network behind the monitoring host's only link
    site = netlab.add_host("site-link" if failure == "link cut" else "site-blackhole")
    db = tmp_path / "store.db"
    customers = "\n".join(f"  - {{id: cust{i}, contract: acme, kind: internet, address: \"{site.address(10 + i)}\"}}"
                          for i in range(5))
    path = write_config(f"""
storage: {{path: {db}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{free_port()}"}}
logging: {{format: json}}
contracts:
  - {{id: core, customer: ExampleTel, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
  - {{id: acme, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, failure_threshold: 3, recovery_threshold: 2,
             probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}}}
targets:
  - {{id: core-a, contract: core, kind: internet, address: "{site.address(1)}", reference: true}}
  - {{id: core-b, contract: core, kind: internet, address: "{site.address(2)}", reference: true}}
{customers}
""")
    proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for("all targets up", lambda: db.exists() and q(db, "SELECT COUNT(*) FROM target_state WHERE state = 'up'") == [(7,)])
        if failure == "link cut":
            site.cut()  # sends fail: "Network is unreachable"
        else:
            for i in (1, 2, *range(10, 15)):  # packets leave, nothing comes back
                site.drop_random(site.address(i), 100)
        cut_at = time.time()
        wait_for("the monitoring-outage ticket", lambda: q(db, "SELECT id FROM tickets WHERE kind = 'monitoring outage'"))
        time.sleep(6)  # far more than failure_threshold cycles of every customer
        site.restore() if failure == "link cut" else site.clear_drops()
        wait_for("recovery", lambda: q(db, "SELECT state FROM tickets WHERE kind = 'monitoring outage'") == [("resolved",)])
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert q(db, "SELECT COUNT(*) FROM outages") == [(0,)]  # no customer (or canary) outage
    assert q(db, "SELECT COUNT(*) FROM tickets") == [(1,)]  # one internal ticket, on the canaries' contract
    assert q(db, "SELECT contract, severity FROM tickets") == [("core", "critical")]
    for i in range(5):
        unknown = q(db, "SELECT SUM(end - start) FROM unknown_intervals WHERE target = ? AND start >= ?", f"cust{i}", cut_at - 2)
        assert unknown[0][0] is not None and unknown[0][0] >= 5, (i, unknown)  # recorded as unknown, not up, not down
    reasons = {r[0] for r in q(db, "SELECT reason FROM unknown_intervals")}
    assert any("monitoring outage" in r or "Network is unreachable" in r for r in reasons), reasons
