"""Running it for real: sd_notify READY and watchdog, hot reload (SIGHUP and POST /-/reload)."""

from __future__ import annotations

from pathlib import Path
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, SLAWATCH, free_port, wait_for
from procs import spawn

BASE = """\
storage: {storage}
exporter: {{listen: "127.0.0.1:{port}", reload_token: "{token}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}}}
targets:
{targets}
"""


def targets_yaml(*items):
    return "\n".join(f"  - {{id: {tid}, contract: c1, kind: internet, address: {addr}{extra}}}" for tid, addr, extra in items)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def up_targets(port):
    return {line.split('target="')[1].split('"')[0] for line in scrape(port).splitlines()
            if line.startswith("slawatch_target_up{")}




@pytest.fixture
def daemon(write_config, tmp_path, icmp_mode, stores):
    port, db, token = free_port(), stores.location("store"), "rel0ad-s3cret"
    storage = stores.yaml(db, flush_interval="200ms")
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(0.2)

    def write(*items):
        return write_config(BASE.format(storage=storage, port=port, token=token, targets=targets_yaml(*items)))

    path = write(("a", "127.0.0.1", ""), ("b", "127.0.0.2", ""))
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000"}
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    messages: list[str] = []

    def notes():
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                return messages

    yield proc, port, (stores, db), token, write, notes
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    notify.close()


def test_ready_after_exporter_and_watchdog_from_the_scheduler(daemon):
    proc, port, db, token, write, notes = daemon
    ready = wait_for("READY=1", lambda: any(m.startswith("READY=1") for m in notes()))
    assert ready
    assert "slawatch_build_info" in scrape(port)  # ready means the exporter answers
    # every WatchdogSec/2 = 1 s, from the scheduler's own loop
    wait_for("two watchdog pings", lambda: sum(m == "WATCHDOG=1" for m in notes()) >= 2, timeout=10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "STOPPING=1" in notes()


def test_hot_reload_adds_removes_and_keeps_history(daemon):
    proc, port, db, token, write, notes = daemon
    wait_for("targets a and b", lambda: up_targets(port) == {"a", "b"})
    time.sleep(2)
    write(("a", "127.0.0.1", ", failure_threshold: 5"), ("c", "127.0.0.3", ""))
    reload_at = time.time()
    proc.send_signal(signal.SIGHUP)
    wait_for("targets a and c", lambda: up_targets(port) == {"a", "c"})
    assert 'target="b"' not in scrape(port)  # the removed target's series are gone
    assert "slawatch_config_last_reload_successful 1.0" in scrape(port)
    time.sleep(3)

    # an invalid config keeps the old one running, logs every error, and says so in the metric
    write(("a", "127.0.0.1", ", interval: often"), ("c", "127.0.0.3", ", probes: {icmp: {count: 0}}"))
    proc.send_signal(signal.SIGHUP)
    wait_for("failed reload metric", lambda: "slawatch_config_last_reload_successful 0.0" in scrape(port))
    assert up_targets(port) == {"a", "c"}

    # a config that is not UTF-8 (and holds a rotated secret): rejected, counted, answered with 400, and
    # neither its bytes nor its secret reach the log
    path = write(("a", "127.0.0.1", ""), ("c", "127.0.0.3", ""))
    path.write_bytes(path.read_bytes().replace(token.encode(), b"N3w-s3cret-t0ken") + b"# Soci\xe9t\xe9\n")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400 and b"not UTF-8 text (byte 0xe9" in info.value.read()
    assert "slawatch_config_last_reload_successful 0.0" in scrape(port) and up_targets(port) == {"a", "c"}

    # a config that validates but cannot be built (an email sink whose CA file holds no certificate): the
    # new world is built before anything is swapped, so nothing of it runs, not even its new target
    path = write(("a", "127.0.0.1", ""), ("c", "127.0.0.3", ""), ("d", "127.0.0.4", ""))
    (path.parent / "bogus-ca.pem").write_text("this is not a certificate\n")
    path.write_text(path.read_text() + "ticket_sinks:\n  - {name: mail, type: email, host: 127.0.0.1, port: 2525, "
                    f"from: sla@example.net, to: [noc@example.net], ca_file: {path.parent / 'bogus-ca.pem'}}}\n")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400 and b"not a readable PEM CA file" in info.value.read()
    text = scrape(port)
    assert up_targets(port) == {"a", "c"} and "slawatch_config_reload_failures_total 3.0" in text, text

    # POST /-/reload needs the token
    req = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 403
    write(("a", "127.0.0.1", ""), ("c", "127.0.0.3", ""))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    assert "slawatch_config_last_reload_successful 1.0" in scrape(port)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "targets[0].interval: must be a duration like 30s (got 'often')" in err
    assert "targets[1].probes.icmp.count: must be at least 1 (got 0)" in err
    assert "not UTF-8 text" in err and "N3w-s3cret-t0ken" not in err and "Soci" not in err
    assert token not in err

    # target a kept one cycle a second through every reload: none lost, none doubled
    stores, db = db
    starts = [c.started for c in stores.peek(db, lambda s: s.cycles("a", 0, float("inf")))]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 8 and max(gaps) < 1.5 and min(gaps) > 0.5, gaps
    assert stores.peek(db, lambda s: s.cycles("c", 0, reload_at)) == []
    assert stores.peek(db, lambda s: s.unknown_intervals("a", 0, float("inf"))) == []


def test_secrets_never_appear_in_logs_metrics_or_reports(write_config, tmp_path, monkeypatch, icmp_mode, stores):
    """A config full of secrets; failing deliveries and a report; grep everything for them."""
    secrets = {"T_RT_TOKEN": "rt-t0ken-9f8e7d", "T_HOOK": "hm4c-s3cr3t-77", "T_SMTP": "smtp-pa55-42", "T_EXP": "exp0rter-pw-13"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "reload.token").write_text("rel0ad-t0k3n-55\n")
    port, db = free_port(), stores.location("store")
    dead = free_port()  # nothing listens there: every delivery fails and is logged
    # an upstream that echoes the request's headers (the RT token with them) back in a 401 body
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = f"unauthorized: {dict(self.headers)}".encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST

        def log_message(self, *args):
            pass

    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    path = write_config(f"""
storage: {stores.yaml(db, flush_interval="200ms")}
exporter: {{listen: "127.0.0.1:{port}", basic_auth: {{username: prom, password: "${{T_EXP}}"}}, reload_token_file: reload.token}}
logging: {{format: json, level: debug, levels: {{slawatch.tickets: debug}}}}
contracts:
  - {{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}},
      escalation: [{{tier: 1, sinks: [rt, hook, mail]}}]}}
targets:
  - {{id: a, contract: c1, kind: internet, address: 127.0.0.1, interval: 1s, probes: {{icmp: {{timeout: 300ms}}}}}}
ticket_sinks:
  - {{name: rt, type: rt, url: "http://127.0.0.1:{echo.server_address[1]}/", token: "${{T_RT_TOKEN}}"}}
  - {{name: hook, type: webhook, url: "http://127.0.0.1:{dead}/hook", hmac_secret: "${{T_HOOK}}"}}
  - {{name: mail, type: email, host: 127.0.0.1, port: {dead}, username: u, password: "${{T_SMTP}}", from: a@b.c, to: [d@e.f]}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # open a ticket through the CLI-visible path: an event from a replayed outage
        from monitor.config import load_config
        from monitor.events import outage_event
        from monitor.store import Batch, open_store
        from monitor.tickets.ledger import Ledger

        cfg = load_config(path)

        def ready():  # the daemon has made its schema (it creates the file a moment before its tables)
            st = open_store(cfg.storage, readonly=True)
            try:
                return st.schema_version()
            finally:
                st.close()

        wait_for("the daemon's store", lambda: Path(cfg.storage.path).exists() and ready(), timeout=30)
        store = open_store(cfg.storage)
        store.write(Batch(events=[outage_event("outage_started", "c1", "a", time.time(), None)]), on_new_event=Ledger(cfg).apply)
        store.close()
        import base64

        auth = "Basic " + base64.b64encode(f"prom:{secrets['T_EXP']}".encode()).decode()
        deadline = time.time() + 30
        metrics = ""
        while time.time() < deadline and "slawatch_ticket_delivery_failures_total{sink=\"mail\"}" not in metrics:
            time.sleep(1)
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                                               headers={"Authorization": auth}), timeout=5) as resp:
                metrics = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)  # no auth: 401
        # basic auth and the reload token together: the token in its own header
        req = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST",
                                     headers={"Authorization": auth, "X-Slawatch-Reload-Token": "rel0ad-t0k3n-55"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        # a malformed (non-ASCII) Authorization header: 400, counted, and no traceback anywhere
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.putrequest("GET", "/metrics")
        conn.putheader("Authorization", b"Basic \xe9\xe9\xff")
        conn.endheaders()
        assert conn.getresponse().status == 400
        conn.close()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                                           headers={"Authorization": auth}), timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'slawatch_exporter_http_responses_total{code="400"} 1.0' in metrics
        assert 'slawatch_exporter_http_responses_total{code="401"} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
    report = subprocess.run(SLAWATCH + ["report", "-c", str(path), "--month", time.strftime("%Y-%m", time.gmtime())],
                            cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    listing = subprocess.run(SLAWATCH + ["tickets", "list", "-c", str(path)], cwd=REPO, capture_output=True, text=True).stdout
    shown = subprocess.run(SLAWATCH + ["tickets", "show", "1", "-c", str(path), "--json"], cwd=REPO, capture_output=True,
                           text=True).stdout
    echo.shutdown()
    assert "delivery to rt failed" in log and "delivery to mail failed" in log  # there was something to leak
    assert "unauthorized" in shown and "***" in shown  # the echoed token, scrubbed
    assert "Traceback" not in log
    for secret in [*secrets.values(), "rel0ad-t0k3n-55"]:
        for name, text in (("log", log), ("metrics", metrics), ("report", report), ("tickets list", listing),
                           ("tickets show", shown)):
            assert secret not in text, f"{secret} leaked into the {name}"


def test_exporter_over_tls(write_config, tmp_path, icmp_mode):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    port = free_port()
    path = write_config(f"""
storage: {{path: {tmp_path / 's.db'}}}
exporter: {{listen: "127.0.0.1:{port}", tls: {{cert_file: {cert}, key_file: {key}}}}}
contracts: [{{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}}}}]
targets: [{{id: a, contract: c1, kind: internet, address: 127.0.0.1, interval: 1s, probes: {{icmp: {{timeout: 300ms}}}}}}]
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import ssl

        context = ssl.create_default_context(cafile=str(cert))
        body = wait_for("metrics over TLS", lambda: urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context,
                                                                           timeout=5).read().decode())
        assert "slawatch_build_info" in body
        with pytest.raises(OSError):  # plain HTTP is refused (reset or a protocol error)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_sigterm_drains_in_flight_cycles(write_config, tmp_path, icmp_mode, stores):
    """A cycle still running at SIGTERM (an SNMP agent that never answers: 3 s) is finished and stored."""
    db = stores.location("s")
    path = write_config(f"""
storage: {stores.yaml(db)}
exporter: {{listen: "127.0.0.1:{free_port()}"}}
contracts: [{{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}}}}]
targets:
  - {{id: slow, contract: c1, kind: internet, address: 127.0.0.1, interval: 1m,
      probes: {{icmp: null, snmp: {{version: 2c, community: public, port: {free_port()}, timeout: 1s, retries: 2}}}}}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the first cycle of a 1 min interval starts at the target's phase offset within the minute
    from monitor.measure.scheduler import phase_offset

    offset = phase_offset("slow", 60.0)
    now = time.time()
    start = now - (now % 60) + offset
    if start < now + 2:  # leave the daemon time to start
        start += 60
    time.sleep(max(0.0, start - time.time()) + 0.5)  # the cycle is now in flight (3 s of SNMP timeouts)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "CancelledError" not in err
    # the cycle in flight at SIGTERM (the one due at `start`) was finished and stored. A daemon that started
    # within the 2 s allowance may also have run the slot before (`start` - 60 s): that one is not the point here
    cycles = stores.peek(db, lambda s: s.cycles("slow", 0, float("inf")))
    rows = [(c.verdict, c.reason) for c in cycles if abs(c.started - start) < 1.5]
    assert len(rows) == 1 and rows[0][0] == "unknown" and "No SNMP response" in rows[0][1], (start, cycles)


def test_a_reload_rebuilds_every_config_built_part_and_a_failed_one_touches_none(tmp_path):
    """Reload by rebuilding (#20): the evaluator, the maintenance calendar (shared with ingestion), the report
    schedule, the canary and the probe context are built from the new config and swapped in; none is patched.
    The probe engines (sockets) are shared, not rebuilt. A config that fails leaves every part as it was."""
    import asyncio

    from monitor.config import load_config
    from monitor.daemon import Daemon
    from monitor.sla.periods import to_ms
    from monitor.store import SqliteStore

    path = tmp_path / "c.yaml"

    def write(maintenance: str, ratio: float, day: int, interval: str = "30s") -> None:
        path.write_text(f"""storage: {{path: {tmp_path / 's.db'}}}
exporter: {{listen: "127.0.0.1:{free_port()}"}}
self_monitoring: {{reference_failure_ratio: {ratio}}}
reports: {{enabled: true, day: {day}, directory: {tmp_path / 'reports'}}}
contracts:
  - {{id: c, customer: A, provider: B, objectives: {{availability: 99.9%}}, maintenance: {maintenance}}}
targets:
  - {{id: a, contract: c, kind: internet, address: 127.0.0.1, reference: true, interval: {interval}}}
  - {{id: b, contract: c, kind: internet, address: 127.0.0.2}}
""")

    write("[]", 0.5, 2)
    store = SqliteStore(tmp_path / "s.db")
    store.migrate()
    daemon = Daemon(load_config(path), path, store)
    engines = (daemon.probe_context.icmp_engine, daemon.probe_context.snmp_engine) = (object(), object())
    before = (daemon.evaluator, daemon.ingestor.calendar, daemon.reports, daemon.canary, daemon.probe_context)
    daemon.canary.observe("a", "bad", 100.0)
    assert daemon.ingestor.calendar is daemon.evaluator.calendar
    now = time.time()
    assert daemon.ingestor.calendar.window_at(daemon.config.targets[0], to_ms(now)) is None

    write('[{name: w, weekly: {days: [mon, tue, wed, thu, fri, sat, sun], at: "00:00"}, duration: 1d}]', 1.0, 3)
    assert asyncio.run(daemon.reload()) == (True, [])
    after = (daemon.evaluator, daemon.ingestor.calendar, daemon.reports, daemon.canary, daemon.probe_context)
    assert all(a is not b for a, b in zip(after, before))
    assert daemon.ingestor.calendar is daemon.evaluator.calendar
    assert daemon.ingestor.calendar.window_at(daemon.config.targets[0], to_ms(now)) is not None  # all day, every day
    assert daemon.reports.cfg.day == 3 and daemon.reports.config is daemon.config
    assert daemon.canary.ratio == 1.0 and daemon.canary.failing == {"a": True}  # what it saw is kept
    assert (daemon.probe_context.icmp_engine, daemon.probe_context.snmp_engine) == engines

    write("[]", 0.5, 4, interval="often")
    ok, problems = asyncio.run(daemon.reload())
    assert not ok and problems == ["targets[0].interval: must be a duration like 30s (got 'often')"]
    assert all(a is b for a, b in zip((daemon.evaluator, daemon.ingestor.calendar, daemon.reports, daemon.canary,
                                       daemon.probe_context), after))
    assert daemon.reports.cfg.day == 3
    store.close()
