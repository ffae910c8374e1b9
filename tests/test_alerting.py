"""One outage, one notification: a real slawatch (with an Alertmanager ticket sink), a real Prometheus with the
shipped rules, and a real Alertmanager with the shipped routes and inhibit rules (dashboards/prometheus/
alertmanager.yml, its receivers pointed at a capturing webhook here). A namespace circuit goes dark: slawatch's
outage alert and Prometheus's burn-rate alerts all reach Alertmanager, and the on-call receives one
notification group for the circuit, naming the outage; the burn-rate alerts are inhibited, not lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from procs import spawn, stop

pytestmark = [needs_root, pytest.mark.slow]
SHIPPED = REPO / "dashboards" / "prometheus"
#: the burn-rate rules' short window in this test (5 minutes shipped), and slawatch's recovery hold (10 min shipped)
WINDOW, HOLD = 15, 40


class Capture:
    """A webhook receiver: every notification Alertmanager posts, with the path it was posted to."""

    def __init__(self):
        received = self.received = []
        times = self.times = []  # when each arrived (monotonic)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body)))
                times.append(time.monotonic())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def am_alerts(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts?active=true&silenced=true&inhibited=true",
                                timeout=10) as resp:
        return json.loads(resp.read())


def test_one_outage_is_one_notification(tmp_path, netlab, icmp_mode):
    for tool in ("prometheus", "prometheus-alertmanager"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/dev-setup installs it)")
    host = netlab.add_host("alerting", kernel_replies=False)
    dark = host.address(3)
    host.set_rules({"default": {}, "addresses": {dark: {"blackout": True}}})
    capture = Capture()
    am_port, am_cluster, prom_port, port = free_port(), free_port(), free_port(), free_port()

    # the shipped Alertmanager config, with its receivers pointed here and its waits shortened for a test
    am = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text())
    am["route"].update(group_wait="3s", group_interval="10s")
    for receiver in am["receivers"]:
        if "webhook_configs" not in receiver:  # the blackhole: SlawatchRecovered only inhibits
            continue
        receiver["webhook_configs"][0]["url"] = f"http://127.0.0.1:{capture.port}/{receiver['name']}"
    (tmp_path / "am.yml").write_text(yaml.safe_dump(am))
    # the shipped rules, evaluated every second, their 5-minute short window 15 s (so a recovery is seen soon)
    (tmp_path / "rules.yml").write_text((SHIPPED / "slawatch-rules.yml").read_text().replace("interval: 30s",
                                        "interval: 1s").replace("[5m]", f"[{WINDOW}s]"))
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
scrape_configs:
  - job_name: slawatch
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""")
    (tmp_path / "slawatch.yaml").write_text(f"""
storage: {{path: {tmp_path / 's.db'}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - id: internet
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
    escalation: [{{tier: 1, after: 0s, sinks: [am]}}]
ticket_sinks:
  - {{name: am, type: alertmanager, url: "http://127.0.0.1:{am_port}/", recovery_hold: {HOLD}s}}
defaults:
  targets: {{interval: 1s, failure_threshold: 2, probes: {{icmp: {{count: 2, spacing: 20ms, timeout: 300ms}}}}}}
targets:
  - {{id: lo1, contract: internet, kind: internet, address: 127.0.0.1}}
  - {{id: dark, contract: internet, kind: internet, address: "{dark}"}}
""")
    procs = []

    def start_slawatch():
        proc = spawn(SLAWATCH + ["run", "-c", str(tmp_path / "slawatch.yaml")], cwd=REPO,
                     stdout=subprocess.DEVNULL, stderr=open(tmp_path / "slawatch.log", "a"))
        procs.append(proc)
        return proc

    try:
        procs.append(spawn(
            ["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", f"--cluster.listen-address=127.0.0.1:{am_cluster}",
             f"--cluster.advertise-address=127.0.0.1:{am_cluster}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "am.log", "w")))
        wait_for("Alertmanager", lambda: urllib.request.urlopen(f"http://127.0.0.1:{am_port}/-/ready", timeout=2))
        daemon = start_slawatch()
        started = time.monotonic()  # the dark circuit is dark from the daemon's first cycle
        procs.append(spawn(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w")))

        def names() -> dict[str, dict]:
            return {a["labels"]["alertname"]: a for a in am_alerts(am_port) if a["labels"].get("target") == "dark"}

        # the outage ticket and both burn-rate alerts reach Alertmanager for the dark circuit
        alerts = wait_for("all three alerts", lambda: (lambda n: n if {"SlawatchTicket", "SlawatchErrorBudgetBurnFast",
                                                                       "SlawatchErrorBudgetBurnSlow"} <= set(n) else None)
                          (names()), timeout=90)
        ticket = alerts["SlawatchTicket"]
        assert ticket["labels"]["ticket_kind"] == "outage" and ticket["labels"]["severity"] == "critical"
        assert ticket["status"]["state"] == "active"
        for burn in ("SlawatchErrorBudgetBurnFast", "SlawatchErrorBudgetBurnSlow"):
            a = alerts[burn]
            assert a["labels"]["kind"] == "internet" and a["labels"]["severity"] in ("major", "minor")
            assert a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"], a  # inhibited, not lost
        time.sleep(15)  # past group_wait and a group_interval: whatever would be sent, is
        about_dark = [(path, n) for path, n in capture.received if n["groupLabels"].get("target") == "dark"]
        assert about_dark, capture.received
        sent = {(a["labels"]["alertname"], a["status"]) for _path, n in about_dark for a in n["alerts"]}
        assert sent == {("SlawatchTicket", "firing")}, sent  # one notification group: the outage, nothing else
        assert {path for path, _n in about_dark} == {"/oncall-page"}  # critical pages
        assert len({json.dumps(n["groupLabels"], sort_keys=True) for _p, n in about_dark}) == 1
        # the healthy circuit sent nothing
        assert not [n for _p, n in capture.received if n["groupLabels"].get("target") == "lo1"]

        def dark_notes() -> list[dict]:
            return [n for _p, n in capture.received if n["groupLabels"].get("target") == "dark"]

        # a restart during the outage: slawatch is ready only after its first SLA evaluation, so no series drops
        # out and no alert resolves and fires again: still the one notification
        stop(daemon, timeout=20)
        procs.remove(daemon)
        daemon = start_slawatch()
        wait_for("slawatch ready again", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2))
        time.sleep(WINDOW + 10 + 3)  # a short window and a group_interval after it
        assert len(dark_notes()) == 1, dark_notes()

        # the circuit comes back: the page resolves, the burn-rate alerts stop within their short window while
        # SlawatchRecovered inhibits them, and nothing else is ever sent
        host.set_rules({"default": {}, "addresses": {}})
        recovered = time.monotonic()
        wait_for("the resolved notification", lambda: len(dark_notes()) >= 2, timeout=60)
        dark_times = [at for at, (_p, n) in zip(capture.times, capture.received)
                      if n["groupLabels"].get("target") == "dark"]
        print(f"page {dark_times[0] - started:.1f} s after the daemon started on a dark circuit (interval 1 s x 2, "
              f"group_wait 3 s); resolved {dark_times[1] - recovered:.1f} s after the circuit answered again")
        wait_for("the burn-rate alerts resolved", lambda: not {a for a in names() if a.startswith("SlawatchErrorBudget")},
                 timeout=3 * WINDOW + 30)
        time.sleep(max(0.0, HOLD - WINDOW) + 10 + 3)  # past the hold and a group_interval: whatever would be sent, is
        notes = dark_notes()
        sent = [sorted((a["labels"]["alertname"], a["status"]) for a in n["alerts"]) for n in notes]
        assert sent == [[("SlawatchTicket", "firing")], [("SlawatchTicket", "resolved")]], sent
    finally:
        for proc in reversed(procs):
            stop(proc, timeout=20)
        capture.close()


def test_shipped_alertmanager_config_is_valid():
    if not shutil.which("amtool"):
        pytest.skip("amtool is not installed (scripts/dev-setup installs prometheus-alertmanager)")
    r = subprocess.run(["amtool", "check-config", str(SHIPPED / "alertmanager.yml")], capture_output=True, text=True)
    assert r.returncode == 0 and "5 inhibit rules" in r.stdout and "3 receivers" in r.stdout, r.stdout + r.stderr


