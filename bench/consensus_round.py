#!/usr/bin/env python3
"""The leader's vantage-consensus round at scale: N multi-site targets x 3 sites, on a real PostgreSQL.

    .venv/bin/python bench/consensus_round.py [--targets 1000,5000,10000] [--sites 3]

Per size: the store read of one round (``load_states`` of the units, and of the targets on the first round,
as the leader does every heartbeat), the pure decision (``ConsensusKeeper.round``: views, dark sites, ``decide``) and the batch
write of the round's states, each the median of 5 rounds. No reference tool does N-of-M consensus, so the
figures are absolute; the share of a 2 s heartbeat they take is printed beside them. Traffic: none.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from monitor.config import parse_config  # noqa: E402
from monitor.cluster.consensus import unit_id  # noqa: E402
from monitor.store import Batch, StateRecord  # noqa: E402
from monitor.cluster.vantage import ConsensusKeeper  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="1000,5000,10000")
    parser.add_argument("--sites", type=int, default=3)
    args = parser.parse_args()
    from pgcluster import PgCluster

    from monitor.store.postgres import PostgresStore

    sites = [f"s{i}" for i in range(args.sites)]
    cluster = PgCluster()
    try:
        for n in (int(x) for x in args.targets.split(",")):
            cfg = parse_config({
                "cluster": {"node": "n1", "site": sites[0]},
                "storage": {"backend": "postgresql", "dsn": "postgresql://x@127.0.0.1/x"},
                "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
                "targets": [{"id": f"t{i}", "contract": "c1", "kind": "internet", "address": "127.0.0.1",
                             "vantage": {"sites": sites, "quorum": 2}} for i in range(n)]})
            store = PostgresStore(cluster.create_db(f"bench_consensus_{n}"))
            store.migrate()
            now = time.time()
            batch = Batch()
            for i, t in enumerate(cfg.targets):
                for j, site in enumerate(sites):
                    down = i % 50 == 0 and j < 2  # 2 % of the targets down from two sites
                    uid = unit_id(t.id, site)
                    batch.states[uid] = StateRecord(uid, "down" if down else "up", now - 60, now,
                                                    {"last_cycle": now - 1, "first_cycle": now - 3600})
            store.write(batch)
            keeper = ConsensusKeeper(10.0)
            reads, decides, writes = [], [], []
            for _ in range(5):
                t0 = time.perf_counter()
                states = store.load_states(keeper.state_names(cfg.targets))
                t1 = time.perf_counter()
                out = Batch()
                keeper.round(cfg.targets, states, time.time(), out, {})
                t2 = time.perf_counter()
                store.write(out)
                t3 = time.perf_counter()
                reads.append(t1 - t0)
                decides.append(t2 - t1)
                writes.append(t3 - t2)
            down = sum(1 for s in keeper.states.values() if s == "down")
            total = statistics.median(reads) + statistics.median(decides) + statistics.median(writes)
            print(f"{n:>6} targets x {len(sites)} sites: read {statistics.median(reads) * 1000:7.1f} ms, "
                  f"decide {statistics.median(decides) * 1000:7.1f} ms, write {statistics.median(writes) * 1000:7.1f} ms"
                  f" = {total * 1000:7.1f} ms per round ({total / 2 * 100:.1f} % of a 2 s heartbeat); {down} down")
            store.close()
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
