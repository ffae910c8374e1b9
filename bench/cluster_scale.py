#!/usr/bin/env python3
"""Cluster benchmark: 1, 2 and 3 real slawatch nodes against one PostgreSQL on this machine.

    .venv/bin/python bench/cluster_scale.py [--per-node 3000] [--window 60] [--kills 10] [--leader-kills 5]

1. Scale: N nodes (N = 1, 2, 3) with ``--per-node`` x N loopback targets at a 30 s interval. After every
   target has been probed once, over ``--window`` seconds: each node's CPU (utime + stime from /proc) and
   RSS, per 1,000 targets; PostgreSQL's committed transactions and inserted rows per second
   (pg_stat_database) and the database's size growth.
2. Takeover: 3 nodes, 300 targets at a 1 s interval, the default heartbeat (2 s) and failover delay (10 s).
   ``--kills`` times: SIGKILL a node that is not the leader, measure until every target it owned has a cycle
   from another node; restart it. Median and max.
3. Leader failover: SIGKILL the leader ``--leader-kills`` times, measure until another node holds the leader
   lock. Median and max.

Reference in the same run: fping's CPU for one 3,000-target round at the same packet count, so the probe
cost per node is a ratio against the reference tool. Traffic: loopback only (127.0.0.0/8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from pgcluster import PgCluster  # noqa: E402
from procstat import address, cpu_seconds, rss_mb  # noqa: E402  (bench/, the script's own directory)

from monitor.store.postgres import PostgresStore  # noqa: E402

SLAWATCH = [sys.executable, "-m", "monitor.cli"]



def config(node: str, dsn: str, port: int, n_targets: int, interval: str, heartbeat: str, failover: str) -> str:
    targets = "\n".join(f"  - {{id: t{i:06d}, contract: c1, kind: internet, address: {address(i)}}}"
                        for i in range(n_targets))
    return f"""cluster: {{node: {node}, site: core, heartbeat: {heartbeat}, failover_delay: {failover}}}
storage: {{backend: postgresql, dsn: '{dsn}', flush_interval: 1s}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json, level: warning}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: {interval}, probes: {{icmp: {{count: 3, spacing: 10ms, timeout: 500ms}}}}}}
targets:
{targets}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, tmp: Path, name: str, text: str):
        self.name = name
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(text)
        self.log = open(tmp / f"{name}.log", "a")
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(SLAWATCH + ["run", "-c", str(self.path)], cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=self.log)

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def pg_counters(cluster: PgCluster, db: str) -> tuple[int, int, int]:
    out = cluster.sql(f"SELECT xact_commit, tup_inserted + tup_updated, pg_database_size('{db}')"
                      f" FROM pg_stat_database WHERE datname = '{db}'")
    a, b, c = out.split("|")
    return int(a), int(b), int(c)


def wait_all_probed(store: PostgresStore, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len(store.last_cycles()) >= n:
            return time.monotonic() - t0
        time.sleep(2)
    raise SystemExit(f"only {len(store.last_cycles())} of {n} targets probed after {timeout:.0f} s")


def fping_cpu(n: int) -> float | None:
    """fping's CPU seconds for one round of 3 echoes to n loopback addresses (the reference tool)."""
    if not shutil.which("fping"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(address(i) for i in range(n)))
        f.flush()
        before = os.times()
        subprocess.run(["fping", "-q", "-C", "3", "-p", "10", "-t", "500", "-i", "1", "-f", f.name],
                       capture_output=True)
        after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def scale(args, tmp: Path, cluster: PgCluster) -> list[dict]:
    rows = []
    for n_nodes in (1, 2, 3):
        n_targets = args.per_node * n_nodes
        db = f"scale{n_nodes}"
        dsn = cluster.create_db(db)
        store = PostgresStore(dsn)
        store.migrate()
        nodes = [Node(tmp, f"s{n_nodes}n{k}", config(f"n{k}", dsn, free_port(), n_targets, "30s", "2s", "10s"))
                 for k in range(n_nodes)]
        try:
            settle = wait_all_probed(store, n_targets, 240)
            time.sleep(5)
            cpu0 = [node.cpu_s() for node in nodes]
            pg0 = pg_counters(cluster, db)
            t0 = time.monotonic()
            time.sleep(args.window)
            dt = time.monotonic() - t0
            cpu = [node.cpu_s() - c for node, c in zip(nodes, cpu0)]
            rss = [node.rss_mb() for node in nodes]
            pg1 = pg_counters(cluster, db)
        finally:
            for node in nodes:
                node.stop()
            store.close()
        per_k = n_targets / n_nodes / 1000
        row = {"nodes": n_nodes, "targets": n_targets, "settle_s": settle,
               "cpu_per_node_per_30s_per_1000": statistics.mean(c / dt * 30 / per_k for c in cpu),
               "cpu_share_of_a_core": statistics.mean(c / dt for c in cpu),
               "rss_per_node_mb": statistics.mean(rss), "rss_per_1000_mb": statistics.mean(rss) / per_k,
               "commits_per_s": (pg1[0] - pg0[0]) / dt, "rows_per_s": (pg1[1] - pg0[1]) / dt,
               "db_growth_per_s": (pg1[2] - pg0[2]) / dt}
        rows.append(row)
        print(f"  {n_nodes} node(s), {n_targets:,} targets: every target probed {settle:.0f} s after start; "
              f"per node {row['cpu_share_of_a_core'] * 100:.1f} % of a core = {row['cpu_per_node_per_30s_per_1000']:.2f} "
              f"CPU-s per 1,000 targets per 30 s cycle; RSS {row['rss_per_node_mb']:.0f} MB "
              f"({row['rss_per_1000_mb']:.1f} MB per 1,000); PostgreSQL {row['commits_per_s']:.1f} commits/s, "
              f"{row['rows_per_s']:.0f} rows/s, {row['db_growth_per_s'] / 1024:.0f} KB/s", flush=True)
    return rows


def failover(args, tmp: Path, cluster: PgCluster) -> tuple[list[float], list[float]]:
    dsn = cluster.create_db("failover")
    store = PostgresStore(dsn)
    store.migrate()
    n_targets = 300
    nodes = {f"n{k}": Node(tmp, f"f{k}", config(f"n{k}", dsn, free_port(), n_targets, "1s", "2s", "10s"))
             for k in range(3)}
    takeovers, leaders = [], []
    try:
        wait_all_probed(store, n_targets, 120)
        time.sleep(8)
        for k in range(args.kills):
            leader = store.cluster_leader()
            victim = next(n for n in sorted(nodes) if n != leader)
            since = time.time()
            time.sleep(3)
            owned = {t for t, c in store.last_cycles().items() if c.node == victim and c.started > since}
            nodes[victim].kill()
            killed = time.time()
            deadline = killed + 60
            while time.time() < deadline:
                last = store.last_cycles()
                if all(last[t].node != victim and last[t].started > killed for t in owned if t in last):
                    break
                time.sleep(0.2)
            takeovers.append(time.time() - killed)
            print(f"  kill {k + 1}: {len(owned)} targets of {victim} probed again after {takeovers[-1]:.1f} s", flush=True)
            nodes[victim].start()
            time.sleep(12)
        for k in range(args.leader_kills):
            leader = store.cluster_leader()
            if leader is None:
                time.sleep(3)
                leader = store.cluster_leader()
            nodes[leader].kill()
            killed = time.time()
            while time.time() - killed < 60:
                now = store.cluster_leader()
                if now not in (None, leader):
                    break
                time.sleep(0.1)
            leaders.append(time.time() - killed)
            print(f"  leader kill {k + 1}: {leader} -> {store.cluster_leader()} after {leaders[-1]:.1f} s", flush=True)
            nodes[leader].start()
            time.sleep(12)
    finally:
        for node in nodes.values():
            node.stop()
        store.close()
    return takeovers, leaders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-node", type=int, default=3000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--leader-kills", type=int, default=5)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-cluster-bench-"))
    print(f"cluster benchmark: {os.cpu_count()} CPUs, PostgreSQL and every node on this machine", flush=True)
    cluster = PgCluster()
    try:
        if not args.skip_scale:
            ref = fping_cpu(args.per_node)
            print(f"\n1. scale ({args.window:.0f} s window, 30 s interval, 3 echoes per cycle)"
                  + (f"; fping: {ref:.2f} CPU-s per round of {args.per_node:,} targets" if ref is not None else ""),
                  flush=True)
            rows = scale(args, tmp, cluster)
            if ref:
                for row in rows:
                    per_round = row["cpu_per_node_per_30s_per_1000"] * args.per_node / 1000
                    print(f"  {row['nodes']} node(s): {per_round:.2f} CPU-s per node per round of {args.per_node:,} "
                          f"targets = {per_round / ref:.2f}x fping (the reference)")
        print("\n2./3. takeover and leader failover (3 nodes, 300 targets at 1 s, heartbeat 2 s, failover delay 10 s)",
              flush=True)
        takeovers, leaders = failover(args, tmp, cluster)
        if takeovers:
            print(f"  takeover after SIGKILL: median {statistics.median(takeovers):.1f} s, max {max(takeovers):.1f} s "
                  f"({len(takeovers)} kills)")
        if leaders:
            print(f"  leader failover: median {statistics.median(leaders):.1f} s, max {max(leaders):.1f} s "
                  f"({len(leaders)} kills)")
    finally:
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
