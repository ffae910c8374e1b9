"""What the benchmarks read about a daemon process (from /proc) and the loopback addresses they probe."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["address", "cpu_seconds", "rss_mb", "loopback_config"]

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


def loopback_config(n: int, tmp: Path, port: int) -> Path:
    """A config of ``n`` loopback targets (1 in 10 voice, 100 contracts, 30 s, ICMP only) with its store and
    exporter in ``tmp``, as the exporter and memory benchmarks run the daemon on."""
    targets = "\n".join(f"  - {{id: t{i:06d}, contract: c{i % 100:03d}, kind: {'voice' if i % 10 == 0 else 'internet'}, "
                        f"address: {address(i)}}}" for i in range(n))
    contracts = "\n".join(f"  - {{id: c{i:03d}, customer: C{i}, provider: P, objectives: {{availability: 99.9%}}}}"
                          for i in range(100))
    path = tmp / "slawatch.yaml"
    path.write_text(f"""storage: {{path: {tmp / 's.db'}}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json, level: warning}}
contracts:
{contracts}
defaults:
  targets: {{interval: 30s, probes: {{icmp: {{count: 3, spacing: 20ms, timeout: 1s}}}}}}
targets:
{targets}
""")
    return path
