#!/usr/bin/env python3
"""A long seeded fault-injection run and its checker (tests/faults.py; the suite runs a short one).

    .venv/bin/python bench/faults.py [--seed 1] [--minutes 15] [--patroni] [--kinds kill,pause,...] [--json out.json]

Four real nodes in two sites, each in its own network namespace, against a real PostgreSQL (with
``--patroni``: two Patroni members on etcd, synchronous replication, and ``primarykill`` among the faults).
The nemesis applies the seeded schedule of faults one at a time while the customers' hosts are blacked out
on a seeded schedule; afterwards the checker verifies the invariants over the whole history and prints
each one's result, the counts and the history. Exit status 0 when every invariant held, 1 otherwise.
Needs root (namespaces, nftables). Traffic stays in the namespaces it makes (198.18.0.0/15, 198.19.0.0/16).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from faults import FAULTS, FaultLab, check, schedule  # noqa: E402
from netlab import NetLab, can_build_netlab  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--patroni", action="store_true", help="PostgreSQL under Patroni + etcd; adds primarykill")
    ap.add_argument("--kinds", help=f"comma-separated fault kinds (default: {','.join(FAULTS)}[,primarykill])")
    ap.add_argument("--json", type=Path, help="write the verdict, the schedule and the evidence here")
    args = ap.parse_args()
    ok, why = can_build_netlab()
    if not ok:
        print(f"bench/faults.py: {why}", file=sys.stderr)
        return 2
    kinds = tuple(args.kinds.split(",")) if args.kinds else FAULTS + (("primarykill",) if args.patroni else ())
    unknown = set(kinds) - set(FAULTS) - {"primarykill"}
    if unknown:
        print(f"bench/faults.py: --kinds: unknown fault kind(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    seconds = args.minutes * 60
    faults, blackouts = schedule(args.seed, seconds, kinds)
    print(f"seed {args.seed}: {len(faults)} faults and {sum(len(b) for b in blackouts.values())} blackouts in "
          f"{seconds:g} s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-faults-"))
    t0 = time.monotonic()
    with NetLab() as netlab:
        lab = FaultLab(tmp, netlab, patroni=args.patroni)
        try:
            lab.wait_ready(timeout=180)
            print(f"ready after {time.monotonic() - t0:.0f} s", flush=True)
            run = lab.run(args.seed, seconds, kinds, progress=lambda line: print(line, flush=True))
            verdict = check(run, lab.store, lab.receiver)
            if args.json:
                lab.dump(run, args.json.with_suffix(".evidence.json"))
                args.json.write_text(json.dumps({"seed": args.seed, "seconds": seconds, "patroni": args.patroni,
                                                 "ok": verdict.ok, "violations": verdict.violations,
                                                 "counts": verdict.counts}, indent=1, default=str))
        finally:
            codes = lab.close()
    print(verdict.summary(full=True))
    print(f"nodes' exit codes: {codes}; wall time {time.monotonic() - t0:.0f} s; logs in {tmp}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    import signal as _signal

    _signal.signal(_signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still tears the lab down (finally blocks)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
