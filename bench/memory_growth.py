#!/usr/bin/env python3
"""What grows in the daemon's memory: the daemon in this process under tracemalloc, snapshots compared.

    .venv/bin/python bench/memory_growth.py [--targets 10000] [--first 10] [--second 40] [--frames 4]

The daemon runs in-process (``monitor.daemon.Daemon``, as ``slawatch run`` runs it) on N loopback targets (1 in 10
voice, 100 contracts, 30 s interval, ICMP only; 127.0.0.0/8), with an exporter scraped every 15 s as Prometheus
would. tracemalloc snapshots are taken at minute ``--first`` and ``--second``; printed: RSS and traced memory at
both, and the allocation sites (``--frames`` deep) whose memory grew most between them. tracemalloc slows the
daemon and adds its own memory: the figures here are for finding what grows, RSS and the slope are measured by
bench/exporter_scale.py without it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from procstat import loopback_config  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    from monitor.config import load_config
    from monitor.daemon import Daemon, check_runnable
    from monitor.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="slawatch-memgrowth-"))
    port = _free_port()
    path = loopback_config(args.targets, tmp, port)
    tracemalloc.start(args.frames)
    config = load_config(path)
    check_runnable(config)
    daemon = Daemon(config, path, open_store(config.storage))
    snapshots: dict[str, tuple[tracemalloc.Snapshot, float, int]] = {}
    started = time.monotonic()
    done = threading.Event()

    def scraper() -> None:
        while not done.wait(15):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
                    resp.read()
            except OSError:
                pass

    def watcher(loop: asyncio.AbstractEventLoop) -> None:
        for name, minute in (("first", args.first), ("second", args.second)):
            wait = started + minute * 60 - time.monotonic()
            if wait > 0 and done.wait(wait):
                return
            snap = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
            snapshots[name] = (snap, rss_mb(), tracemalloc.get_traced_memory()[0])
            print(f"minute {minute:g}: RSS {snapshots[name][1]:.1f} MB, traced {snapshots[name][2] / 1e6:.1f} MB",
                  flush=True)
        done.set()
        loop.call_soon_threadsafe(daemon.stopping.set)

    async def main_async() -> int:
        loop = asyncio.get_running_loop()
        threading.Thread(target=watcher, args=(loop,), daemon=True).start()
        threading.Thread(target=scraper, daemon=True).start()
        return await daemon.run()

    asyncio.run(main_async())
    if "second" not in snapshots:
        print("the daemon stopped before the second snapshot", file=sys.stderr)
        return 1
    (a, rss_a, traced_a), (b, rss_b, traced_b) = snapshots["first"], snapshots["second"]
    print(f"\nMemory growth, {args.targets} targets, minute {args.first:g} -> {args.second:g}: RSS {rss_a:.1f} -> "
          f"{rss_b:.1f} MB ({rss_b - rss_a:+.1f}), traced {traced_a / 1e6:.1f} -> {traced_b / 1e6:.1f} MB "
          f"({(traced_b - traced_a) / 1e6:+.1f})")
    print(f"Top {args.top} allocation sites by growth ({args.frames} frames, most recent last):")
    for stat in b.compare_to(a, "traceback")[: args.top]:
        if stat.size_diff <= 0:
            continue
        print(f"  {stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+9d} blocks  (now {stat.size / 1e6:.2f} MB)")
        for line in stat.traceback.format()[-2 * args.frames:]:
            print(f"      {line.strip()}")
    return 0


if __name__ == "__main__":
    parsed = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parsed.add_argument("--targets", type=int, default=10000)
    parsed.add_argument("--first", type=float, default=10, help="minute of the first snapshot")
    parsed.add_argument("--second", type=float, default=40, help="minute of the second snapshot")
    parsed.add_argument("--frames", type=int, default=4)
    parsed.add_argument("--top", type=int, default=25)
    sys.exit(run(parsed.parse_args()))
