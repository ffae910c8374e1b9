#!/usr/bin/env python3
"""Exporter benchmark: series per target, scrape size and time, daemon memory over time.

    .venv/bin/python bench/exporter_scale.py [--render 1000,10000,50000] [--daemon 1000,10000] [--minutes 10]

1. Render (in-process): a LiveState of N synthetic targets (9 in 10 internet, 1 in 10 voice; each with a
   month-to-date SLA figure), rendered by slawatch's per-target renderer (monitor.metrics) and, as the
   reference in the same run, by prometheus_client's own families and ``generate_latest`` for the same
   series. Printed: series, bytes plain and gzip, milliseconds per render, and the ratio.
2. Daemon (end to end): a real ``slawatch run`` with N loopback targets at a 30 s interval (ICMP,
   127.0.0.0/8 only). After every target has had a cycle and the SLA is evaluated: 5 scrapes with
   ``Accept-Encoding: gzip`` and 5 without, each timed (wall) with the daemon's CPU during them (from
   /proc), bytes plain and gzip, series; ``slawatch status`` wall time (the first run, which parses the YAML,
   and two more that read it from the parse cache); the daemon's CPU per 1,000 targets per
   30 s cycle; and RSS every minute for ``--minutes`` (the slope between minute 10 and the end is the leak
   check: with --minutes 60 it is "after 10 and after 60 minutes").
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from procstat import cpu_seconds, loopback_config, rss_mb  # noqa: E402  (bench/, the script's own directory)

SLAWATCH = [sys.executable, "-m", "monitor.cli"]



# -- 1. in-process render --------------------------------------------------------------------------------------

def synthetic_live(n: int):
    from decimal import Decimal

    from monitor.sla.evaluator import TargetSla
    from monitor.measure.live import LiveState, TargetLive
    from monitor.sla.availability import month_to_date
    from monitor.measure.state import TargetTracker

    rng = random.Random(7)
    live = LiveState()
    now_ms = int(time.time() * 1000)
    mtd = month_to_date((now_ms - 20 * 86_400_000, now_ms + 10 * 86_400_000), now_ms, [(now_ms - 3_600_000,
                        now_ms - 3_000_000)], [], [], Decimal("99.9"))
    targets, sla = {}, {}
    for i in range(n):
        kind = "voice" if i % 10 == 0 else "internet"
        tid, contract = f"t{i:06d}", f"c{i % 100:03d}"
        tracker = TargetTracker(tid)
        tracker.state, tracker.since = "up", time.time() - rng.randint(0, 86400)
        t = TargetLive(tid, contract, kind, tracker, packets_sent=rng.randint(1000, 9000), objectives={"availability": 0.999})
        t.packets_received = t.packets_sent - rng.randint(0, 5)
        t.last_rtt, t.last_loss, t.last_jitter = rng.random() / 100, 0.0, rng.random() / 1000
        t.observe_rtts([rng.random() / 50 for _ in range(5)])
        if kind == "voice":
            t.last_mos, t.last_r = 4.3, 92.5
        targets[tid] = t
        sla[tid] = TargetSla(tid, contract, "2026-11", 0.999, mtd, {"1h": 1.0}, {"1h": 0.0})
    live.set_targets(targets)
    live.sla = sla
    return live


def reference_render(live) -> bytes:
    """The same default series through prometheus_client's families and generate_latest (the generic path)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            labels = ["contract", "target", "kind"]
            up = GaugeMetricFamily("slawatch_target_up", "h", labels=labels)
            state = GaugeMetricFamily("slawatch_target_state", "h", labels=labels + ["slawatch_target_state"])
            since = GaugeMetricFamily("slawatch_target_state_since_seconds", "h", labels=labels)
            median = GaugeMetricFamily("slawatch_icmp_rtt_median_seconds", "h", labels=labels)
            sent = CounterMetricFamily("slawatch_icmp_packets_sent", "h", labels=labels)
            received = CounterMetricFamily("slawatch_icmp_packets_received", "h", labels=labels)
            jitter = GaugeMetricFamily("slawatch_jitter_seconds", "h", labels=labels)
            loss = GaugeMetricFamily("slawatch_icmp_loss_ratio", "h", labels=labels)
            mos = GaugeMetricFamily("slawatch_voice_mos", "h", labels=labels)
            r = GaugeMetricFamily("slawatch_voice_r_factor", "h", labels=labels)
            win = labels + ["window"]
            avail = GaugeMetricFamily("slawatch_sla_availability_ratio", "h", labels=win)
            remaining = GaugeMetricFamily("slawatch_sla_error_budget_remaining_ratio", "h", labels=labels)
            projected = GaugeMetricFamily("slawatch_sla_projected_availability_ratio", "h", labels=labels)
            downtime = GaugeMetricFamily("slawatch_sla_downtime_seconds", "h", labels=win)
            sla = live.sla_snapshot()
            for t in live.snapshot():
                lab = [t.contract, t.target, t.kind]
                up.add_metric(lab, 1)
                state.add_metric(lab + [t.tracker.state], 1)
                since.add_metric(lab, t.tracker.since)
                median.add_metric(lab, t.last_rtt)
                sent.add_metric(lab, t.packets_sent)
                received.add_metric(lab, t.packets_received)
                if t.kind == "voice":
                    loss.add_metric(lab, t.last_loss)
                    jitter.add_metric(lab, t.last_jitter)
                    mos.add_metric(lab, t.last_mos)
                    r.add_metric(lab, t.last_r)
                m = sla[t.target].mtd
                avail.add_metric(lab + ["month"], float(m.so_far.ratio))
                remaining.add_metric(lab, m.remaining_ratio)
                projected.add_metric(lab, m.projected_ratio)
                downtime.add_metric(lab + ["month"], m.used_ms / 1000)
            yield from (up, state, since, median, sent, received, jitter, loss, mos, r, avail, remaining, downtime,
                        projected)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)


def bench_render(sizes: list[int]) -> None:
    from monitor.config.models import PerTargetMetrics
    from monitor.metrics import TargetSeries

    print("1. Render, in-process (default per-target budget; 1 in 10 targets voice)")
    print(f"   {'targets':>8} {'series':>9} {'MB plain':>9} {'MB gzip':>8} {'slawatch ms':>12} {'gzip ms':>8} "
          f"{'prometheus_client ms':>21} {'ratio':>6}")
    for n in sizes:
        live = synthetic_live(n)
        series = TargetSeries(live, PerTargetMetrics())
        series.render()  # label caches warm, as after the first scrape
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            text = series.render()
            runs.append(time.perf_counter() - t0)
        ours = min(runs)
        body = text.encode()
        t0 = time.perf_counter()
        packed = gzip.compress(body, compresslevel=1)
        gz = time.perf_counter() - t0
        ref_runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            reference_render(live)
            ref_runs.append(time.perf_counter() - t0)
        ref = min(ref_runs)
        n_series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(f"   {n:>8,} {n_series:>9,} {len(body) / 1e6:>9.2f} {len(packed) / 1e6:>8.2f} {ours * 1000:>12.0f} "
              f"{gz * 1000:>8.0f} {ref * 1000:>21.0f} {ours / ref:>6.2f}")


# -- 2. the daemon ---------------------------------------------------------------------------------------------

class Daemon:
    def __init__(self, n: int, tmp: Path, port: int):
        self.config = loopback_config(n, tmp, port)
        self.port = port
        self.proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(self.config)], cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=open(tmp / "daemon.log", "w"))

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def scrape(self, gz: bool) -> tuple[float, float, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                     headers={"Accept-Encoding": "gzip"} if gz else {})
        c0, t0 = self.cpu_s(), time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
        return time.perf_counter() - t0, self.cpu_s() - c0, body

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def bench_daemon(n: int, minutes: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-exporterbench-"))
    port = 19000 + random.randrange(1000)
    d = Daemon(n, tmp, port)
    started = time.monotonic()
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                _, _, body = d.scrape(False)
                text = body.decode()
                if text.count("slawatch_sla_availability_ratio{") >= n and text.count("slawatch_target_up{") >= n:
                    break
            except OSError:
                pass
            time.sleep(5)
        else:
            print(f"   {n:,}: the daemon did not evaluate every target within 5 minutes (see {tmp}/daemon.log)")
            return
        plain = [d.scrape(False) for _ in range(5)]
        packed = [d.scrape(True) for _ in range(5)]
        text = plain[-1][2].decode()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        per_target = sum(1 for line in text.splitlines() if 'target="t000001"' in line)
        status_s = []  # the first parses the YAML and caches it (monitor.config.parse_cache), the others read it
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(SLAWATCH + ["status", "-c", str(d.config)], cwd=REPO, capture_output=True, timeout=120)
            status_s.append(time.perf_counter() - t0)
        c0, t0 = d.cpu_s(), time.monotonic()
        time.sleep(60)
        cpu_per_cycle = (d.cpu_s() - c0) / (time.monotonic() - t0) * 30 / (n / 1000)
        print(f"   {n:,} targets: {series:,} series ({per_target} for an internet target); scrape plain "
              f"{min(p[0] for p in plain):.3f}-{max(p[0] for p in plain):.3f} s wall, "
              f"{sum(p[1] for p in plain) / 5:.3f} CPU-s, {len(plain[-1][2]) / 1e6:.2f} MB; gzip "
              f"{min(p[0] for p in packed):.3f}-{max(p[0] for p in packed):.3f} s, {len(packed[-1][2]) / 1e6:.2f} MB; "
              f"`slawatch status` {status_s[0]:.2f} s the first time (YAML parsed), then {min(status_s[1:]):.2f}-"
              f"{max(status_s[1:]):.2f} s (parsed config cached); daemon {cpu_per_cycle:.2f} CPU-s per 1,000 targets per 30 s "
              f"(scrapes included)")
        rss = []
        while time.monotonic() - started < minutes * 60:
            rss.append(((time.monotonic() - started) / 60, d.rss_mb()))
            time.sleep(60)
        rss.append(((time.monotonic() - started) / 60, d.rss_mb()))
        line = ", ".join(f"{m:.0f} min {mb:.0f} MB" for m, mb in rss)
        print(f"     RSS: {line}")
        after10 = [mb for m, mb in rss if m >= 10]
        if len(after10) >= 2:
            print(f"     growth from minute {next(m for m, _ in rss if m >= 10):.0f} to {rss[-1][0]:.0f}: "
                  f"{after10[-1] - after10[0]:+.1f} MB")
    finally:
        d.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", default="1000,10000,50000", help="target counts for the in-process render")
    parser.add_argument("--daemon", default="1000,10000", help="target counts for the end-to-end daemon ('' skips)")
    parser.add_argument("--minutes", type=float, default=3, help="how long each daemon runs, for its RSS over time")
    args = parser.parse_args()
    print(f"Exporter benchmark ({os.cpu_count()} CPUs)")
    if args.render:
        bench_render([int(x) for x in args.render.split(",")])
    if args.daemon:
        print("2. Daemon, end to end (loopback targets, 30 s interval)")
        for n in (int(x) for x in args.daemon.split(",")):
            bench_daemon(n, args.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
