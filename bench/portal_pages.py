#!/usr/bin/env python3
"""Customer portal page times (#29): `slawatch portal` on a store of 10,000 targets in 100 contracts, with this
month's rollups, about two outages per target and month, and each target's state; SQLite and PostgreSQL.

    .venv/bin/python bench/portal_pages.py [--backend sqlite|postgresql|both] [--targets 10000] [--contracts 100]
                                           [--requests 30]

The store is filled with the report benchmark's synthesis (bench/sla_month.py: each target's monthly rollup
from 1,000 RTT draws of its own distribution, outages and unknown intervals through the store API), for the
current month up to now. The portal runs as its own process (uvicorn, as deployed); one signed-in client asks,
one request at a time, for the contract overview, the outage list (twelve months), a circuit's month (its
figures, days as an SVG chart, outages) and the month's report as JSON, of contracts in turn. Printed per page: median and 95th percentile of the client's wall time per request.
Traffic: loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))


def synthesize(store, config) -> None:
    """This month's data up to now, by the report benchmark's synthesis."""
    import sla_month

    now = time.time()
    d = datetime.fromtimestamp(now, timezone.utc)
    sla_month.MONTH = d.strftime("%Y-%m")
    sla_month.START = datetime(d.year, d.month, 1, tzinfo=timezone.utc).timestamp()
    sla_month.END = now
    sla_month.synthesize_months(store, config)


def config_text(n: int, contracts: int, storage: str, port: int, tmp: Path) -> str:
    import sla_month

    from monitor.portal.auth import hash_password

    raw = sla_month.config_dict(n, contracts)
    (tmp / "op.hash").write_text(hash_password("benchmark-password"))
    (tmp / "secret").write_text("b" * 48)
    lines = [f"storage: {storage}", "contracts:"]
    for c in raw["contracts"]:
        lines.append(f"  - {{id: {c['id']}, customer: '{c['customer']}', provider: P, timezone: UTC, "
                     "objectives: {availability: 99.9%, latency: {percentile: 95, max: 80ms}, loss: 0.5%}, "
                     "maintenance: [{name: weekly, weekly: {days: [sun], at: '02:00'}, duration: 1h}]}")
    lines.append("targets:")
    lines += [f"  - {{id: {t['id']}, contract: {t['contract']}, kind: internet, address: 127.0.0.1}}"
              for t in raw["targets"]]
    ids = ", ".join(c["id"] for c in raw["contracts"])
    lines += ["portal:", f'  listen: "127.0.0.1:{port}"', f"  session_secret_file: {tmp / 'secret'}",
              f"  users: [{{name: op, password_hash_file: {tmp / 'op.hash'}, contracts: [{ids}]}}]",
              f"  tokens: [{{name: t, sha256: {hashlib.sha256(b'x').hexdigest()}, contracts: [c0]}}]"]
    return "\n".join(lines) + "\n"


def measure(label: str, storage: str, open_store, args, tmp: Path) -> dict[str, tuple[float, float]]:
    import httpx

    from conftest import free_port
    from monitor.config import load_config

    port = free_port()
    path = tmp / f"{label}.yaml"
    path.write_text(config_text(args.targets, args.contracts, storage, port, tmp))
    config = load_config(path)
    store = open_store()
    t0 = time.monotonic()
    synthesize(store, config)
    store.close()
    print(f"[{label}] store filled in {time.monotonic() - t0:.1f} s")
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "portal", "-c", str(path)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{label}.log", "w"), start_new_session=True)
    out: dict[str, tuple[float, float]] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/-/healthy").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        form = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        r = client.post("/login", data={"user": "op", "password": "benchmark-password", "csrf": csrf})
        assert r.status_code == 303, r.status_code
        month = time.strftime("%Y-%m", time.gmtime())
        pages = {"contract overview": "/c/{c}", "outage list (12 months)": "/c/{c}/outages",
                 "a circuit's month": "/c/{c}/t/t{i}",
                 "month report (JSON)": f"/c/{{c}}/report/{month}.json"}
        for name, pattern in pages.items():
            times = []
            for i in range(args.requests):
                url = pattern.format(c=f"c{i % args.contracts}", i=i % args.contracts)  # t{i} is c{i}'s
                w0 = time.perf_counter()
                resp = client.get(url)
                times.append(time.perf_counter() - w0)
                assert resp.status_code == 200, (url, resp.status_code)
            times.sort()
            p50, p95 = statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            out[name] = (p50, p95)
            print(f"[{label}] {name}: median {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms ({args.requests} requests)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--contracts", type=int, default=100)
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-bench-portal-"))
    print(f"portal pages: {args.targets:,} targets in {args.contracts} contracts")
    results = {}
    if args.backend in ("sqlite", "both"):
        from monitor.store import SqliteStore

        def open_sqlite():
            store = SqliteStore(tmp / "s.db")
            store.migrate()
            return store

        results["sqlite"] = measure("sqlite", f"{{path: {tmp / 's.db'}}}", open_sqlite, args, tmp)
    if args.backend in ("postgresql", "both"):
        from pgcluster import PgCluster

        from monitor.store.postgres import PostgresStore

        cluster = PgCluster()
        try:
            dsn = cluster.create_db("bench_portal")

            def open_pg():
                store = PostgresStore(dsn)
                store.migrate()
                return store

            results["postgresql"] = measure("postgresql", f"{{backend: postgresql, dsn: '{dsn}'}}", open_pg, args,
                                            tmp)
        finally:
            cluster.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
