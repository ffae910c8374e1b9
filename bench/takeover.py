#!/usr/bin/env python3
"""Leader takeover under the faults clusters exist for, measured N times each (median and max).

    .venv/bin/python bench/takeover.py [--repeat 5] [--patroni] [--json out.json]

The fault harness's lab (tests/faults.py: four real nodes in two sites, each in its own network namespace;
heartbeat 0.5 s, failover_delay 3 s) against a real PostgreSQL, with PostgreSQL's keepalive settings left at
their defaults:

1. **leader cut from PostgreSQL**: the leader's packets to the database and the database's to it dropped
   silently (nftables); until another node holds an unexpired leader lease, in the database's time;
2. **leader SIGSTOP**: the same, for a paused leader (SIGCONT after the takeover);
3. with ``--patroni``, **Patroni primary SIGKILLed** (two members on etcd, synchronous replication, ttl 10 s):
   until Patroni has promoted the standby, until a slawatch leader holds a lease in the new primary, and until
   every probe unit has a cycle stored there after the kill. The old primary is restarted as a standby
   between repetitions.

Each repetition waits for the cluster to settle (four live nodes, a leader) before the next fault.
Needs root (namespaces, nftables). Traffic stays in the namespaces it makes.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from faults import FAILOVER, HEARTBEAT, SITES, FaultLab  # noqa: E402
from netlab import NetLab, can_build_netlab  # noqa: E402


def _poll(what: str, fn, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - the database may be failing over: try again
            value = None
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"no {what} within {timeout:g} s")


def _settle(lab: FaultLab, timeout: float = 120.0) -> str:
    every = [n for ns in SITES.values() for n in ns]

    def ready():
        live = sum(n.alive(FAILOVER) for n in lab.store.cluster_nodes() if n.node in every)
        return lab.store.cluster_leader() if live == len(every) else None

    return _poll("settled cluster", ready, timeout, step=0.2)


def _new_leader(lab: FaultLab, old: str, timeout: float = 60.0):
    return _poll("new leader", lambda: (lambda i: i if i and i.node != old and i.remaining > 0 else None)(
        lab.store.cluster_leadership()), timeout)


def leader_cut(lab: FaultLab) -> float:
    leader = _settle(lab)
    node = lab.nodes[leader]
    lab._cut_db(node, True)
    t0 = time.time()
    try:
        _new_leader(lab, leader)
        took = time.time() - t0
    finally:
        lab._cut_db(node, False)
    return took


def leader_pause(lab: FaultLab) -> float:
    leader = _settle(lab)
    node = lab.nodes[leader]
    node.signal(signal.SIGSTOP)
    t0 = time.time()
    try:
        _new_leader(lab, leader)
        took = time.time() - t0
    finally:
        node.signal(signal.SIGCONT)
    return took


def primary_kill(lab: FaultLab) -> dict[str, float]:
    from monitor.store.postgres import PostgresStore

    assert lab.patroni is not None
    _settle(lab)
    old = lab.patroni.primary()
    assert old is not None
    lab.patroni.kill(old)
    t0 = time.time()
    lab.patroni.wait_primary(timeout=120, other_than=old)
    promoted = time.time() - t0
    lab.store.close()
    lab.store = PostgresStore(lab.dsn(), connect_timeout=2)
    _poll("a leader lease in the new primary", lambda: lab.store.cluster_leader(), 120)
    leads = time.time() - t0
    units = [f"{t}@{s}" for t in lab.targets for s in SITES]
    _poll("every unit's cycles in the new primary", lambda: all(
        lab.store.cycles(u, t0, float("inf")) for u in units), 120, step=0.2)
    probes = time.time() - t0
    lab.patroni.rejoin(old)
    lab.patroni.wait_replicating(timeout=180)
    return {"promoted": promoted, "leader": leads, "every unit written": probes}


def summary(name: str, values: list[float]) -> dict:
    out = {"n": len(values), "median_s": round(statistics.median(values), 2), "max_s": round(max(values), 2),
           "all_s": [round(v, 2) for v in values]}
    print(f"{name}: median {out['median_s']} s, max {out['max_s']} s over {len(values)} ({out['all_s']})", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--patroni", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ok, why = can_build_netlab()
    if not ok:
        print(f"bench/takeover.py: {why}", file=sys.stderr)
        return 2
    print(f"heartbeat {HEARTBEAT} s, failover_delay {FAILOVER} s; {args.repeat} repetitions each", flush=True)
    results: dict[str, dict] = {}
    with NetLab() as netlab:
        lab = FaultLab(Path(tempfile.mkdtemp(prefix="slawatch-takeover-")), netlab, patroni=args.patroni)
        try:
            lab.wait_ready(timeout=180)
            if args.patroni:
                runs = [primary_kill(lab) for _ in range(args.repeat)]
                for key in runs[0]:
                    results[f"patroni primary kill: {key}"] = summary(f"Patroni primary SIGKILL -> {key}",
                                                                      [r[key] for r in runs])
            else:
                results["leader cut from PostgreSQL"] = summary(
                    "leader cut from PostgreSQL", [leader_cut(lab) for _ in range(args.repeat)])
                results["leader SIGSTOP"] = summary("leader SIGSTOP", [leader_pause(lab) for _ in range(args.repeat)])
        finally:
            lab.close()
    if args.json:
        args.json.write_text(json.dumps({"heartbeat_s": HEARTBEAT, "failover_delay_s": FAILOVER, **results}, indent=1))
    return 0


if __name__ == "__main__":
    import signal as _signal

    _signal.signal(_signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still tears the lab down (finally blocks)
    sys.exit(main())
