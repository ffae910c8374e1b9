#!/usr/bin/env python3
"""ICMP scale benchmark: slawatch's IcmpEngine against fping, measured in the same run.

    sudo .venv/bin/python bench/icmp_scale.py [--sizes 1000,10000] [--gap-ms 0.2]

Targets: half loopback addresses (127.0.0.0/8) and half addresses of a
namespace test host (kernel replies), plus one namespace address whose
replies a userspace responder delays by exactly 20 ms. Each target gets 3
echoes. Both tools use the same pacing: slawatch's engine gap between any
two packets is fping's -i, and the spacing within a burst is fping's -p
(one round over all targets, N x gap, as fping sends round-robin). A final
fping run at -i 0 shows the machine's limit.

Printed per size: wall seconds per cycle, CPU seconds (user + sys), peak
RSS, replies received, the median RTT error on the 20 ms host under full
load, and the slawatch/fping ratios for wall time and CPU.

slawatch runs in a child process so that its RSS and CPU are its own; its
CPU and wall are measured around the cycle (interpreter start-up excluded,
as it does not recur in the daemon). fping's are the whole process (its
start-up is negligible). Traffic goes only to loopback and to the namespace
hosts this script creates and removes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

DELAY_MS = 20.0
TIMEOUT_S = 1.0
COUNT = 3


def loopback_addresses(n: int) -> list[str]:
    # 127.1.0.1 ... : unique, never 127.0.0.0/16, never .0 or .255
    out = []
    i = 0
    while len(out) < n:
        a, b = divmod(i, 254)
        out.append(f"127.{1 + a // 256}.{a % 256}.{b + 1}")
        i += 1
    return out


# --------------------------------------------------------------------------- the slawatch side (child)


def worker(spec: dict) -> dict:
    from probes.icmp import IcmpEngine, IcmpSettings

    addresses = spec["addresses"]
    settings = IcmpSettings(count=COUNT, spacing=spec["spacing"], timeout=TIMEOUT_S)

    async def cycle():
        engine = IcmpEngine(gap=spec["gap"])
        try:
            # open the sockets first, as the daemon has them open already
            engine.mode()
            t0 = time.perf_counter()
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            results = await asyncio.gather(*(engine.burst(a, settings) for a in addresses))
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.perf_counter() - t0
        finally:
            engine.close()
        return results, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    results, wall, cpu = asyncio.run(cycle())
    delayed = next(r for r in results if r.address == spec["delayed"])
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sent": sum(r.sent for r in results),
        "received": sum(r.received for r in results),
        "delayed_median_ms": delayed.rtt_median * 1000 if delayed.rtt_median else None,
    }


def run_slawatch(addresses: list[str], delayed: str, gap: float, spacing: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"addresses": addresses, "delayed": delayed, "gap": gap, "spacing": spacing}, fh)
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", fh.name], capture_output=True, text=True, check=True)
    finally:
        os.unlink(fh.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- fping


def run_fping(addresses: list[str], delayed: str, gap_ms: float, period_ms: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(addresses) + "\n")
    cmd = ["fping", "-q", "-C", str(COUNT), "-i", f"{gap_ms:g}", "-p", f"{period_ms:g}", "-t", str(int(TIMEOUT_S * 1000)), "-f", fh.name]
    with tempfile.TemporaryFile("w+") as errfile:  # a file, not a pipe: fping must never block on output
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errfile, text=True)
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        errfile.seek(0)
        err = errfile.read()
    os.unlink(fh.name)
    received, delayed_rtts = 0, []
    for line in err.splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if not m:
            continue
        values = [v for v in m.group(2).split() if v != "-"]
        received += len(values)
        if m.group(1) == delayed:
            delayed_rtts = [float(v) for v in values]
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "sent": len(addresses) * COUNT,
        "received": received,
        "delayed_median_ms": statistics.median(delayed_rtts) if delayed_rtts else None,
        "cmd": " ".join(cmd[:-1] + ["FILE"]),
    }


# --------------------------------------------------------------------------- main


def fmt(name: str, r: dict) -> str:
    err = "-" if r["delayed_median_ms"] is None else f"{r['delayed_median_ms'] - DELAY_MS:+.3f} ms"
    return (f"  {name:<22} wall {r['wall']:7.2f} s   cpu {r['cpu']:6.2f} s   rss {r['rss_mb']:6.1f} MB   "
            f"received {r['received']}/{r['sent']}   20ms-host median error {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--gap-ms", type=float, default=0.2, help="gap between any two packets (fping -i)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(Path(args.worker).read_text()))))
        return 0
    from netlab import NetLab, can_build_netlab

    ok, why = can_build_netlab()
    if not ok:
        print(f"icmp_scale: {why}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    with NetLab() as lab:
        bulk = lab.add_host("bulk", v4_prefix="198.18.128.0/17", v6=False)
        slow = lab.add_host("slow", v6=False, kernel_replies=False)
        delayed = slow.address(1)
        slow.set_rules({"default": {}, "addresses": {delayed: {"delay_ms": DELAY_MS}}})
        print(f"ICMP scale benchmark: {COUNT} echoes per target, timeout {TIMEOUT_S:g} s, gap {args.gap_ms:g} ms; "
              f"{os.cpu_count()} CPUs; fping {subprocess.run(['fping', '-v'], capture_output=True, text=True).stdout.split()[-1]}")
        for n in sizes:
            half = (n - 1) // 2
            addresses = loopback_addresses(n - 1 - half) + bulk.addresses(half) + [delayed]
            gap = args.gap_ms / 1000
            period_ms = max(n * args.gap_ms, 10.0)
            print(f"\nN = {n} targets ({n - 1 - half} loopback, {half} namespace, 1 delayed by {DELAY_MS:g} ms); "
                  f"burst spacing {period_ms:g} ms")
            s = run_slawatch(addresses, delayed, gap, period_ms / 1000)
            f = run_fping(addresses, delayed, args.gap_ms, period_ms)
            s0 = run_slawatch(addresses, delayed, 0.0, period_ms / 1000)
            f0 = run_fping(addresses, delayed, 0, period_ms)
            print(fmt("slawatch (paced)", s))
            print(fmt("fping (same pacing)", f))
            print(f"  ratio slawatch/fping at the same pacing: wall {s['wall'] / f['wall']:.2f}, cpu {s['cpu'] / f['cpu']:.2f}")
            print(fmt("slawatch gap 0", s0))
            print(fmt("fping -i 0", f0))
            print(f"  ratio slawatch/fping flat out: wall {s0['wall'] / f0['wall']:.2f}, cpu {s0['cpu'] / f0['cpu']:.2f}")
            print(f"  fping command: {f['cmd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
