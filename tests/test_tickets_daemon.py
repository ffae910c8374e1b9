"""Tickets through the real daemon: a target in a namespace goes dark while Request Tracker is down;
the daemon is SIGKILLed between ledger and delivery, restarted once RT is up: exactly one RT ticket,
resolved in RT when the target recovers."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from conftest import REPO, SLAWATCH, free_port, wait_for
from peers import RtServer, rt_available
from procs import spawn

CONFIG = """\
storage: {storage}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
    escalation: [{{tier: 1, after: 0s, sinks: [rt-noc]}}]
targets:
  - {{id: dark, contract: c1, kind: internet, address: "{address}", interval: 1s, failure_threshold: 2,
      recovery_threshold: 2, probes: {{icmp: {{count: 2, spacing: 50ms, timeout: 300ms}}}}}}
ticket_sinks:
  - {{name: rt-noc, type: rt, url: "http://127.0.0.1:{rt_port}/", token_file: {token_file}}}
"""






def start(path):
    return spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_between_ledger_and_delivery_gives_exactly_one_rt_ticket(netlab, write_config, tmp_path, stores):
    ok, why = rt_available()
    if not ok:
        pytest.skip(why)
    host = netlab.add_host("dark", kernel_replies=False)
    address = host.address(7)
    host.set_rules({"default": {}, "addresses": {address: {"blackout": True}}})
    rt_port, db = free_port(), stores.location("store")
    rt = RtServer(rt_port)
    token_file = tmp_path / "rt.token"
    token_file.write_text("placeholder")  # the real token exists only once RT is set up
    path = write_config(CONFIG.format(storage=stores.yaml(db, flush_interval="200ms"), port=free_port(), address=address, rt_port=rt_port, token_file=token_file))

    daemon = start(path)
    try:
        # the outage opens a ticket in the ledger; RT is down, so its delivery fails and stays pending
        wait_for("a failed delivery", lambda: stores.peek(db, lambda s: [o for o in s.outbox()
                                                                            if o.attempts >= 1 and o.delivered is None]))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        assert len(stores.peek(db, lambda s: s.tickets())) == 1

        rt.start()
        token_file.write_text(rt.token)
        retry = subprocess.run(SLAWATCH + ["tickets", "retry", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert retry.returncode == 0 and "1 pending deliveries will be retried" in retry.stdout
        daemon = start(path)
        wait_for("delivery to RT", lambda: stores.peek(db, lambda s: s.ticket_refs(1)))
        [uid] = stores.peek(db, lambda s: [t.uid for t in s.tickets()])
        time.sleep(3)  # more failed cycles of the same outage must not open another ticket
        rt_tickets = rt.tickets_with(f"[slawatch:{uid}]")
        assert len(rt_tickets) == 1 and rt_tickets[0]["Status"] == "new"
        assert len(stores.peek(db, lambda s: s.tickets())) == 1

        listed = subprocess.run(SLAWATCH + ["tickets", "list", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0 and "dark is down" in listed.stdout and "delivered" in listed.stdout

        # the target recovers: the ticket is resolved here and in RT
        host.set_rules({"default": {}})
        wait_for("resolution in RT", lambda: rt.api("GET", f"/ticket/{rt_tickets[0]['id']}")["Status"] == "resolved")
        assert stores.peek(db, lambda s: [t.state for t in s.tickets()]) == ["resolved"]
        shown = subprocess.run(SLAWATCH + ["tickets", "show", "1", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert "recovered" in shown.stdout and f"rt-noc: {rt_tickets[0]['id']}" in shown.stdout
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=20)
        rt.stop()
    assert rt.token not in (daemon.stderr.read() or "")
