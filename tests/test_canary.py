"""Self-monitoring: cutting the monitor's own veth takes every target dark at once; the reference targets
(canaries) turn that into unknown time and one internal ticket instead of customer outages."""

from __future__ import annotations

import signal
import subprocess
import time

from conftest import REPO, SLAWATCH, free_port, wait_for
from monitor.measure.canary import CanaryWatch
from procs import spawn






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
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
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
        # twice failure_threshold (3) failed cycles of every customer since the cut (an outage would have opened),
        # spanning the 5 s of unknown time asserted below
        wait_for("7 cycles of every customer since the cut", lambda: stores.peek(db, lambda s: all(
            len(s.cycles(f"cust{i}", cut_at, float("inf"))) >= 7 for i in range(5))), timeout=60)
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


def test_a_reload_builds_the_canary_anew_and_keeps_what_it_saw_of_remaining_references():
    from monitor.config import parse_config

    def config(refs, ratio):
        return parse_config({
            "self_monitoring": {"reference_failure_ratio": ratio},
            "contracts": [{"id": "core", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
            "targets": [{"id": t, "contract": "core", "kind": "internet", "address": f"127.0.0.{i + 1}",
                         "reference": t in refs} for i, t in enumerate(["r1", "r2", "r3", "x"])]})

    old = CanaryWatch.for_config(config({"r1", "r2"}, 1.0))
    old.observe("r1", "bad", 10.0)
    old.observe("r2", "bad", 11.0)
    assert old.is_down() and old.down_since == 11.0
    new = CanaryWatch.for_config(config({"r1", "r2", "r3"}, 0.5))
    new.carry_over(old)
    assert new is not old and set(new.references) == {"r1", "r2", "r3"} and new.ratio == 0.5
    assert new.is_down() and new.down_since == 11.0  # the outage in progress stays one
    assert new.observe("r3", "good", 12.0) == []  # 2 of 3 failing is still at least half
    narrowed = CanaryWatch.for_config(config({"r3"}, 0.5))
    narrowed.carry_over(new)
    assert not narrowed.is_down() and narrowed.down_since is None and narrowed.failing == {"r3": False}
