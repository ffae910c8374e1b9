"""The leader dies while tickets are pending and Request Tracker is down: another node becomes leader within
failover_delay and every ticket still reaches the real RT exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from daemonconfig import CLUSTER_NODE
from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from peers import RtServer, rt_available
from procs import spawn, stop

pytestmark = [needs_root, pytest.mark.slow]

HEARTBEAT, FAILOVER = 0.5, 3.0
DARK = 4

CONFIG = CLUSTER_NODE + """\
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
    escalation: [{{tier: 1, after: 0s, sinks: [rt-noc]}}]
targets:
{targets}
ticket_sinks:
  - {{name: rt-noc, type: rt, url: "http://127.0.0.1:{rt_port}/", token_file: {token_file}}}
"""


def test_leader_sigkilled_with_pending_tickets_and_rt_down_every_ticket_reaches_rt_once(tmp_path, netlab, cluster_db):
    ok, why = rt_available()
    if not ok:
        pytest.skip(why)
    dsn, store = cluster_db
    host = netlab.add_host("lead", kernel_replies=False)
    dark = [host.address(i) for i in range(1, DARK + 1)]
    host.set_rules({"default": {}, "addresses": {a: {"blackout": True} for a in dark}})
    targets = "\n".join(
        f"  - {{id: d{i}, contract: c1, kind: internet, address: {a}, interval: 1s, failure_threshold: 2,"
        f" probes: {{icmp: {{count: 1, timeout: 300ms}}}}}}" for i, a in enumerate(dark, 1))
    rt_port = free_port()
    rt = RtServer(rt_port).start()
    token_file = tmp_path / "rt.token"
    token_file.write_text(rt.token)
    rt.pause()  # the sink is down from the start
    procs: dict[str, subprocess.Popen] = {}
    paths = {}
    try:
        for name in ("n1", "n2", "n3"):
            paths[name] = tmp_path / f"{name}.yaml"
            paths[name].write_text(CONFIG.format(node=name, site="core", heartbeat=HEARTBEAT, failover=FAILOVER, dsn=dsn,
                                                 targets=targets, rt_port=rt_port, token_file=token_file))
            procs[name] = spawn(SLAWATCH + ["run", "-c", str(paths[name])], cwd=paths[name].parent,
                                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "w"))
        # every dark circuit opens a ticket; RT is down, so each delivery fails and stays pending
        wait_for("a failed delivery for every ticket", lambda: len({o.ticket_id for o in store.outbox()
                                                                    if o.attempts >= 1 and o.delivered is None}) == DARK,
                 timeout=60)
        leader = store.cluster_leader()
        assert leader in procs
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=10)
        killed = time.monotonic()
        rt.resume()

        def new_leader():
            now = store.cluster_leader()
            return now if now not in (None, leader) else None

        successor = wait_for("a new leader", new_leader, timeout=FAILOVER + 10, step=0.05)
        took = time.monotonic() - killed
        assert took <= FAILOVER + 2 * HEARTBEAT + 1, f"leader failover took {took:.1f} s"

        tickets = store.tickets(contract="c1")
        assert len(tickets) == DARK
        wait_for("every ticket delivered to RT", lambda: all(store.ticket_refs(t.id) for t in tickets), timeout=90)
        time.sleep(3)  # more failed cycles, more rounds of the new leader: nothing more may reach RT
        for t in tickets:
            found = rt.tickets_with(f"[slawatch:{t.uid}]")
            assert len(found) == 1, (t.uid, [f["id"] for f in found])
        assert len(store.tickets(contract="c1")) == DARK
        status = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(paths[successor]), "--json"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert json.loads(status.stdout)["leader"] == successor
    finally:
        for proc in procs.values():
            stop(proc, timeout=20)
        rt.stop()
