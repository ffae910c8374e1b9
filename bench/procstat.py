"""What the benchmarks read about a daemon process (from /proc) and the loopback addresses they probe."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["address", "cpu_seconds", "rss_mb"]

TICK = os.sysconf("SC_CLK_TCK")


def address(i: int) -> str:
    """The i-th loopback target address (127.0.0.0/8 only), 62,500 per /16."""
    return f"127.{1 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
