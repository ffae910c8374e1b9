"""Self-monitoring: cutting the monitor's own veth takes every target dark at once; the reference targets
(canaries) turn that into unknown time and one internal ticket instead of customer outages."""

from __future__ import annotations

import signal
import subprocess
import time

from conftest import REPO, SLAWATCH, free_port, wait_for
from monitor.measure.canary import CanaryWatch






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
def test_cutting_the_monitors_own_link(netlab, write_config, stores, failure):
    # the whole network behind the monitoring host's only link
    site = netlab.add_host("site-link" if failure == "link cut" else "site-blackhole")
    db = stores.location("store")
    customers = "\n".join(f"  - {{id: cust{i}, contract: acme, kind: internet, address: \"{site.address(10 + i)}\"}}"
                          for i in range(5))
    path = write_config(f"""
storage: {stores.yaml(db, flush_interval="200ms")}
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
        wait_for("all targets up", lambda: stores.peek(db, lambda s: sum(st.state == "up" for st in s.load_states().values()))
                 == 7)
        if failure == "link cut":
            site.cut()  # sends fail: "Network is unreachable"
        else:
            for i in (1, 2, *range(10, 15)):  # packets leave, nothing comes back
                site.drop_random(site.address(i), 100)
        cut_at = time.time()
        wait_for("the monitoring-outage ticket", lambda: stores.peek(db, lambda s: [t for t in s.tickets()
                                                                                    if t.kind == "monitoring outage"]))
        time.sleep(6)  # far more than failure_threshold cycles of every customer
        site.restore() if failure == "link cut" else site.clear_drops()
        wait_for("recovery", lambda: stores.peek(db, lambda s: [t.state for t in s.tickets()
                                                                if t.kind == "monitoring outage"]) == ["resolved"])
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert stores.peek(db, lambda s: s.outages()) == []  # no customer (or canary) outage
    # one internal ticket, on the canaries' contract
    assert stores.peek(db, lambda s: [(t.contract, t.severity) for t in s.tickets()]) == [("core", "critical")]
    unknown = stores.peek(db, lambda s: s.unknown_intervals(None, 0, float("inf")))
    for i in range(5):
        seconds = sum(u.end - u.start for u in unknown if u.target == f"cust{i}" and u.start >= cut_at - 2)
        assert seconds >= 5, (i, seconds)  # recorded as unknown, not up, not down
    reasons = {u.reason for u in unknown}
    assert any("monitoring outage" in r or "Network is unreachable" in r for r in reasons), reasons
