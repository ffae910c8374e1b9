"""SIGKILL at random points, 20 times, under load: after each restart the store is consistent, no outage or
ticket is doubled or lost, and the time the daemon was down is recorded as unknown. Runs on the store
SLAWATCH_TEST_STORE names (SQLite by default) and, in a second test, always on PostgreSQL."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import time

import pytest

from conftest import REPO, SLAWATCH, TEST_STORE, StoreMaker, free_port, wait_for
from procs import spawn
from monitor.sla.rollup import Rollup

N_LOOPBACK = 100
INF = math.inf


def _months(now: float) -> list[str]:
    """This UTC month, and the last one if the test began in it (the contract's zone is UTC)."""
    return sorted({time.strftime("%Y-%m", time.gmtime(now)), time.strftime("%Y-%m", time.gmtime(now - 3600))})


def _snapshot(store) -> dict:
    """What the assertions need, read through the Store API."""
    targets = [t for t in store.load_states()]
    cycles = {}
    for name in set(targets) | {"dark"}:
        n = len(store.cycles(name, 0, INF))
        if n:
            cycles[name] = n
    monthly: dict[str, int] = {}
    for month in _months(time.time()):
        for name, r in ((n, Rollup.stored(s)) for n, s in store.monthly_rollups(month).items()):
            monthly[name] = monthly.get(name, 0) + r.cycles
    hourly = {}
    for name in cycles:
        n = sum(Rollup.stored(r).cycles for r in store.hourly_rollups(name, 0, INF).values())
        if n:
            hourly[name] = n
    return {
        "ok": store.integrity_ok(),
        "dark": [(o.start, o.end) for o in store.outages("dark") if o.kind == "down"],
        "others": [o for o in store.outages() if o.target != "dark"],
        "tickets": store.tickets(),
        "outage_events": [e for e in store.events() if e.kind == "outage_started"],
        "cycles": cycles, "monthly": monthly, "hourly": hourly,
        "runs": store.runs(),
        "gaps": [u for u in store.unknown_intervals(None, 0, INF) if u.reason.startswith("no probe cycles")],
    }


def sigkill_twenty_times(netlab, write_config, maker: StoreMaker):
    host = netlab.add_host("crash", kernel_replies=False)
    dark = host.address(9)
    host.set_rules({"default": {}, "addresses": {dark: {"blackout": True}}})
    location = maker.location("store")
    targets = "\n".join(f"  - {{id: lo{i}, contract: c1, kind: internet, address: 127.0.{i // 250}.{i % 250 + 1}}}"
                        for i in range(N_LOOPBACK))
    path = write_config(f"""
storage: {maker.yaml(location, flush_interval="300ms")}
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
        proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 3.5) if round_ else 5.0)  # the first round lets the outage open
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        s = maker.peek(location, _snapshot)
        if s is None:
            assert round_ == 0 or maker.backend == "sqlite", "the store vanished"
            continue
        assert s["ok"], f"round {round_}"
        assert len(s["dark"]) <= 1 and all(end is None for _, end in s["dark"]), (round_, s["dark"])
        if round_ > 0:
            assert len(s["dark"]) == 1, f"round {round_}: the dark target's outage was lost"
            assert [t.incident_key for t in s["tickets"]] == ["outage:c1:dark"]
            assert len(s["outage_events"]) == 1
        assert s["others"] == []
        # rollups and raw cycles are written together: their counts agree after any crash
        assert s["monthly"] == s["cycles"] == s["hourly"], f"round {round_}"
    assert kills == 20
    # a clean last run
    before = len(maker.peek(location, lambda st: st.runs()))
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # running: its run recorded, and a few cycles on (a wait on the condition: a busy machine starts it later)
    wait_for("the last run recorded", lambda: len(maker.peek(location, lambda st: st.runs()) or ()) > before,
             timeout=60)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    s = maker.peek(location, _snapshot)
    # a kill during interpreter start-up comes before the run is recorded; every recorded killed run
    # lacks a stop, and only the clean last run has one
    runs = s["runs"]
    assert 10 <= len(runs) <= 21 and runs[-1].stopped is not None and all(r.stopped is None for r in runs[:-1])
    gap_targets = {u.target for u in s["gaps"]}
    assert len(gap_targets) >= N_LOOPBACK * 0.9 and len(s["gaps"]) >= N_LOOPBACK * 5  # the down time is unknown, not up
    assert len(s["tickets"]) == 1
    assert s["ok"]


def test_sigkill_twenty_times_under_load(netlab, write_config, stores):
    sigkill_twenty_times(netlab, write_config, stores)


@pytest.mark.slow
def test_sigkill_twenty_times_under_load_on_postgresql(netlab, write_config, tmp_path, request):
    if TEST_STORE == "postgresql":
        pytest.skip("the test above already ran on PostgreSQL (SLAWATCH_TEST_STORE=postgresql)")
    maker = StoreMaker("postgresql", tmp_path, request)
    try:
        sigkill_twenty_times(netlab, write_config, maker)
    finally:
        maker.close()
