#!/usr/bin/env python3
"""SLA month benchmark: ingest rate, stored bytes per target-month, and the month report for 10,000 targets.

    .venv/bin/python bench/sla_month.py [--backend sqlite|postgresql|both] [--targets 10000] [--contracts 100]
                                        [--full-month-targets 5]

With ``--backend both`` (the default) every measurement runs on SQLite and on PostgreSQL in the same run
(PostgreSQL: a throwaway cluster on this machine, initdb'd by the benchmark as the tests do, fsync off), and
the PostgreSQL figures are printed with their ratio to SQLite's.

Three measurements, each on the real code paths:

1. Ingest: ``--full-month-targets`` targets run a whole 31-day month of 30 s
   cycles (89,280 cycles each, 3 echoes per cycle, realistic outages and one
   daemon gap) through the state machine, the ingestor and the SQLite store
   in batches of 500: cycles per second.
2. Storage: the same store after rollup, with raw cycles purged (they are
   kept only ``raw_retention``, 14 days by default) and VACUUM: bytes per
   target-month (hourly and monthly rollups, outages, unknown intervals,
   events, state).
3. Report: a store for ``--targets`` targets. A full month of cycles for
   10,000 targets is 893 million cycles, which cannot be ingested here in a
   benchmark run. So each target's *monthly rollup* is built with the same
   Rollup code from 1,000 RTT draws of its own distribution, with cycle
   counts of a full month. Outages and unknown intervals are written
   through the same store API. Then ``load_month`` + ``compute_month``, as
   ``slawatch report`` runs them, is timed for all contracts.

4. The same report through the command line (``slawatch report --month`` in a
   fresh process, JSON and CSV), as billing staff run it.

Prints the figures and peak RSS. Traffic: none.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.config import parse_config  # noqa: E402
from monitor.measure.cycle import CycleOutcome, verdict_of  # noqa: E402
from monitor.measure.ingest import Ingestor  # noqa: E402
from monitor.measure.live import TargetLive  # noqa: E402
from monitor.sla.monthly import compute_month, load_month  # noqa: E402
from monitor.sla.rollup import Rollup  # noqa: E402
from monitor.measure.state import TargetTracker  # noqa: E402
from monitor.store import Batch, OutageRecord, SqliteStore, StateRecord, Store, UnknownRecord  # noqa: E402
from probes.icmp import IcmpResult  # noqa: E402

MONTH = "2026-10"
START = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
END = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
INTERVAL = 30.0


def config_for(n_targets: int, n_contracts: int):
    return parse_config(config_dict(n_targets, n_contracts))


def config_dict(n_targets: int, n_contracts: int) -> dict:
    contracts = [{
        "id": f"c{c}", "customer": f"Customer {c}", "provider": "ExampleTel", "timezone": "UTC",
        "objectives": {"availability": "99.9%", "latency": {"percentile": 95, "max": "80ms"}, "loss": "0.5%"},
        "maintenance": [{"name": "weekly", "weekly": {"days": ["sun"], "at": "02:00"}, "duration": "1h"}],
    } for c in range(n_contracts)]
    targets = [{"id": f"t{i}", "contract": f"c{i % n_contracts}", "kind": "internet",
                "address": "127.0.0.1", "interval": "30s"} for i in range(n_targets)]
    return {"contracts": contracts, "targets": targets}


def outages_for(rng: random.Random) -> list[tuple[float, float]]:
    """About two outages a month, exponential durations with a 20-minute mean."""
    out, at = [], START
    while True:
        at += rng.expovariate(2 / (END - START))
        if at >= END:
            return out
        out.append((at, min(END, at + rng.expovariate(1 / 1200))))


def ingest_full_month(store: Store, config, n: int) -> tuple[int, float]:
    rng = random.Random(1)
    ingestor = Ingestor(config)
    batch = Batch()
    cycles = 0
    t0 = time.perf_counter()
    for i in range(n):
        target = config.targets[i]
        live = TargetLive(target.id, target.contract, target.kind, TargetTracker(target.id))
        outages = outages_for(rng)
        base = rng.uniform(0.005, 0.040)
        gap = (START + 15 * 86400, START + 15 * 86400 + 1800)  # the daemon stopped for 30 minutes
        at = START + rng.uniform(0, INTERVAL)
        while at < END:
            if not gap[0] <= at < gap[1]:
                down = any(s <= at < e for s, e in outages)
                rtts = (None, None, None) if down else tuple(
                    None if rng.random() < 0.002 else base * rng.lognormvariate(0, 0.15) for _ in range(3))
                received = sum(r is not None for r in rtts)
                result = IcmpResult(probe="icmp", target=target.id, address=target.address, started=at,
                                    duration=0.2, ok=received > 0, reason=None if received else "no reply",
                                    sent=3, received=received, rtts=rtts)
                verdict = verdict_of([result])
                previous = live.tracker.last_cycle
                transitions = live.tracker.observe(at, verdict)
                ingestor.ingest(batch, target, CycleOutcome(target.id, at, (result,), verdict, True, tuple(transitions)),
                                live, previous)
                cycles += 1
                if len(batch.cycles) >= 500:
                    store.write(batch)
                    batch = Batch()
            at += INTERVAL
    store.write(batch)
    return cycles, time.perf_counter() - t0


def synthesize_months(store: Store, config) -> None:
    rng = random.Random(2)
    per_month = int((END - START) / INTERVAL)
    batch = Batch()
    for target in config.targets:
        r = Rollup()
        base = rng.uniform(0.005, 0.040)
        for _ in range(1000):
            r.rtt.add(base * rng.lognormvariate(0, 0.15))
            jitter = base * 0.05 * rng.lognormvariate(0, 0.5)
            r.jitter_count += 1
            r.jitter_sum += jitter
            r.jitter_max = max(r.jitter_max, jitter)
        outages = outages_for(rng)
        bad = int(sum(e - s for s, e in outages) / INTERVAL)
        r.cycles, r.bad, r.maintenance = per_month, bad, 4 * 120
        r.good = per_month - bad - r.maintenance
        r.sent, r.received = (per_month - r.maintenance) * 3, (per_month - r.maintenance) * 3 - bad * 3
        batch.monthly[(target.id, MONTH)] = r
        batch.outages.extend(OutageRecord(target.id, target.contract, "down", s, e) for s, e in outages)
        if rng.random() < 0.1:
            u = START + rng.uniform(0, END - START - 3600)
            batch.unknown.append(UnknownRecord(target.id, u, u + rng.uniform(60, 3600), "no probe cycles"))
        batch.states[target.id] = StateRecord(target.id, "up", START, END, {"first_cycle": START, "last_cycle": END - INTERVAL})
        if len(batch.monthly) >= 1000:
            store.write(batch)
            batch = Batch()
    store.write(batch)


def time_cli(name: str, storage: dict, args, tmp: Path) -> dict:
    """4. The same month through the command line, as billing staff run it: a fresh process reads the config
    and the store and writes the JSON and the CSV report."""
    import json
    import subprocess

    cfg = {**config_dict(args.targets, args.contracts), "storage": storage, "exporter": {"enabled": False}}
    path = tmp / f"{name}-bench.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    out = {}
    for fmt in ("json", "csv"):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "monitor.cli", "report", "-c", str(path), "--month", MONTH,
                               "--format", fmt, "-o", str(tmp / f"{name}-report.{fmt}")],
                              cwd=REPO, capture_output=True, text=True)
        out[fmt] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"slawatch report failed: {proc.stderr[-500:]}")
    size = (tmp / f"{name}-report.json").stat().st_size
    print(f"[{name}] 4. CLI: `slawatch report --month {MONTH}` for {args.targets:,} targets: JSON {out['json']:.2f} s "
          f"({size / 1e6:.1f} MB), CSV {out['csv']:.2f} s (whole process: start, config, store, render)")
    return out


def run_backend(name: str, open_new, args) -> dict:
    """The three measurements on one backend; returns the figures."""
    out: dict = {}
    small = config_for(args.full_month_targets, 1)
    store = open_new("ingest")
    store.compact()
    empty = store.size_bytes()  # the schema's own pages: a fixed cost, not a per-target one
    cycles, seconds = ingest_full_month(store, small, args.full_month_targets)
    out["ingest_rate"] = cycles / seconds
    print(f"[{name}] 1. ingest: {cycles:,} cycles of {args.full_month_targets} targets x a full month in {seconds:.1f} s "
          f"= {cycles / seconds:,.0f} cycles/s (state machine + rollups + store, batches of 500)")
    with_raw = store.size_bytes()
    store.purge(raw_before=END + 1, rollups_before=0)
    store.compact()
    rolled = store.size_bytes()
    out["per_target"] = (rolled - empty) / args.full_month_targets
    print(f"[{name}] 2. storage: {with_raw / 1e6:.1f} MB with raw cycles; after rollup (raw purged, compacted) "
          f"{rolled / 1e3:.0f} KB, of which {empty / 1e3:.0f} KB is the empty schema: "
          f"{out['per_target'] / 1e3:.1f} KB per target-month")
    figures = compute_month(small, load_month(store, small, MONTH), int(END * 1000) + 1)
    t0 = figures[0].targets[0]
    print(f"[{name}]    check: {t0.target} availability {t0.availability.percent(4)} %, {t0.outage_count} outages, "
          f"p95 RTT {t0.objectives['latency']['value_s'] * 1000:.2f} ms, unknown {t0.availability.unknown_ms / 1000:.0f} s")
    store.close()

    big = config_for(args.targets, args.contracts)
    store = open_new("report")
    s0 = time.perf_counter()
    synthesize_months(store, big)
    build = time.perf_counter() - s0
    r0 = time.perf_counter()
    inputs = load_month(store, big, MONTH)
    loaded = time.perf_counter() - r0
    months = compute_month(big, inputs, int(END * 1000) + 1)
    report = time.perf_counter() - r0
    out["report"] = report
    missed = sum(1 for c in months for t in c.targets if t.availability.met(c.objective_pct) is False)
    print(f"[{name}] 3. report: {args.targets:,} targets in {args.contracts} contracts (store built in {build:.1f} s): "
          f"load {loaded:.2f} s + compute {report - loaded:.2f} s = {report:.2f} s for the full month report; "
          f"{missed} targets missed 99.9 %")
    store.close()
    out["cli"] = time_cli(name, args.storage_of("report"), args, args.tmp)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--contracts", type=int, default=100)
    parser.add_argument("--full-month-targets", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-bench-"))
    print(f"SLA month benchmark: month {MONTH} (31 days), {INTERVAL:g} s cycles, 3 echoes per cycle; {os.cpu_count()} CPUs")
    results = {}
    if args.backend in ("sqlite", "both"):
        args.tmp = tmp
        args.storage_of = lambda label: {"backend": "sqlite", "path": str(tmp / f"{label}.db")}

        def open_sqlite(label: str) -> Store:
            store = SqliteStore(tmp / f"{label}.db")
            store.migrate()
            return store

        results["sqlite"] = run_backend("sqlite", open_sqlite, args)
    if args.backend in ("postgresql", "both"):
        sys.path.insert(0, str(REPO / "tests"))
        from pgcluster import PgCluster

        from monitor.store.postgres import PostgresStore

        cluster = PgCluster()
        try:
            args.tmp = tmp
            args.storage_of = lambda label: {"backend": "postgresql", "dsn": cluster.dsn(f"bench_{label}")}

            def open_pg(label: str) -> Store:
                store = PostgresStore(cluster.create_db(f"bench_{label}"))
                store.migrate()
                return store

            results["postgresql"] = run_backend("postgresql", open_pg, args)
        finally:
            cluster.close()
    if len(results) == 2:
        a, b = results["sqlite"], results["postgresql"]
        print(f"\nPostgreSQL / SQLite: ingest {b['ingest_rate'] / a['ingest_rate']:.2f}x the rate, "
              f"storage {b['per_target'] / a['per_target']:.2f}x the bytes per target-month, "
              f"report {b['report'] / a['report']:.2f}x the time")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {rss:.0f} MB")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
