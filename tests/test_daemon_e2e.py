"""End to end: `slawatch run` as a subprocess on loopback targets, scraped, then SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, SLAWATCH, free_port
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
defaults:
  targets:
    interval: 1s
    probes: {{icmp: {{count: 3, spacing: 10ms, timeout: 500ms}}}}
targets:
  - {{id: lo1, contract: c1, kind: internet, address: 127.0.0.1}}
  - {{id: lo2, contract: c1, kind: internet, address: 127.0.0.2}}
  - {{id: lo6, contract: c1, kind: voice, address: "::1"}}
"""


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_run_scrape_sigterm(write_config, stores, icmp_mode):
    port = free_port()
    db = stores.location("store")
    path = write_config(CONFIG.format(storage=stores.yaml(db, flush_interval="200ms"), port=port))
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        ups = {}
        while time.time() < deadline:
            try:
                metrics = scrape(port)
            except OSError:
                time.sleep(0.2)
                continue
            ups = {dict(l)["target"]: v for (n, l), v in metrics.items() if n == "slawatch_target_up"}
            if len(ups) == 3:
                break
            time.sleep(0.3)
        assert ups == {"lo1": 1.0, "lo2": 1.0, "lo6": 1.0}, proc.stderr.read() if proc.poll() is not None else ups
        sent = {dict(l)["target"]: v for (n, l), v in metrics.items() if n == "slawatch_icmp_packets_sent_total"}
        assert all(v >= 3 for v in sent.values())
        assert metrics[("slawatch_build_info", (("version", "0.1.0"),))] == 1.0
        # the voice target's windowed MOS (pooled over the window): loopback is a perfect line
        windowed = {dict(l)["window"]: v for (n, l), v in metrics.items()
                    if n == "slawatch_voice_mos_window" and dict(l)["target"] == "lo6"}
        assert set(windowed) == {"5m"} and all(4.3 < v <= 4.5 for v in windowed.values()), windowed  # 1h: opt-in
        # the series budget (monitor/metrics/targets.py): 10 an internet target, 15 a voice target, once the SLA
        # figures are there
        from monitor.metrics import DEFAULT_SERIES

        def per_target(metrics) -> dict:
            counts: dict = {}
            for (_n, labels), _v in metrics.items():
                target = dict(labels).get("target")
                if target:
                    counts[target] = counts.get(target, 0) + 1
            return counts

        deadline = time.time() + 30
        while time.time() < deadline and ("slawatch_sla_availability_ratio", (("contract", "c1"), ("kind", "voice"),
                                           ("target", "lo6"), ("window", "month"))) not in metrics:
            time.sleep(0.5)
            metrics = scrape(port)
        counts = per_target(metrics)
        assert counts == {"lo1": DEFAULT_SERIES["internet"], "lo2": DEFAULT_SERIES["internet"],
                          "lo6": DEFAULT_SERIES["voice"]}, counts
        # Prometheus asks for gzip, and gets it
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            import gzip

            assert resp.headers["Content-Encoding"] == "gzip"
            assert b"slawatch_target_up{" in gzip.decompress(resp.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
            assert resp.status == 200
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert '"msg": "stopped cleanly"' in err
    cycles = stores.peek(db, lambda s: {t: s.cycles(t, 0, float("inf")) for t in ("lo1", "lo2", "lo6")})
    assert min(len(c) for c in cycles.values()) >= 2
    assert all(c.ok and c.received == 3 for cs in cycles.values() for c in cs)
    runs = stores.peek(db, lambda s: s.runs())
    assert len(runs) == 1 and runs[0].stopped is not None
    states = stores.peek(db, lambda s: {t: st.state for t, st in s.load_states().items()})
    assert states == {"lo1": "up", "lo2": "up", "lo6": "up"}
    status = subprocess.run(SLAWATCH + ["status", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "CONTRACT", "STATE", "SINCE", "MONTH", "BUDGET", "LAST", "RTT", "LOSS",
                                "LAST", "CYCLE", "TICKET"]
    rows = [line.split() for line in lines[1:]]
    assert [r[:3] for r in rows] == [["lo1", "c1", "up"], ["lo2", "c1", "up"], ["lo6", "c1", "up"]]
    assert all(r[5] == "100.000%" and r[6] == "100%" and r[-1] == "-" for r in rows), rows


def test_a_restart_serves_the_sla_series_from_its_first_scrape(write_config, tmp_path, icmp_mode):
    """#27: /-/ready answered 200 at 0.6 s but the SLA series came about 5.8 s after the start, so each restart
    resolved and re-fired every alert on them. The first evaluation now comes before the exporter serves."""
    port = free_port()
    path = write_config(CONFIG.format(storage=f"{{path: {tmp_path / 's.db'}, flush_interval: 200ms}}", port=port))
    avail = ("slawatch_sla_availability_ratio", (("contract", "c1"), ("kind", "internet"), ("target", "lo1"),
                                                  ("window", "month")))

    def start():
        return spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)

    proc = start()
    try:  # a first run measures a few cycles
        from conftest import wait_for

        wait_for("the SLA series", lambda: avail in scrape(port), timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    proc = start()
    try:
        first = None
        deadline = time.monotonic() + 30
        while first is None and time.monotonic() < deadline:  # the very first scrape that answers
            try:
                first = scrape(port)
            except OSError:
                time.sleep(0.05)
        assert first is not None and first.get(avail) == 1.0, sorted(k for k in (first or {}) if "sla" in k[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
