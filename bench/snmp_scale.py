#!/usr/bin/env python3
"""SNMP scale benchmark: 1,000 agents polled for `system` + `if-mib`, slawatch against net-snmp's tools.

    .venv/bin/python bench/snmp_scale.py [--agents 1000] [--concurrency 128]

The agents: real net-snmp snmpd processes, each bound to 100 of the N
loopback addresses (127.20.x.y, one UDP endpoint each). Every address is a
separate agent endpoint from the poller's side, each with the host's
interfaces. snmpsim could give each its own data; this benchmark measures
the poller, and snmpd keeps the agent side identical for both pollers.

slawatch polls all of them with its SNMP probe: one GET PDU of 3 scalars
plus GETBULK rounds of the 15 interface columns, with concurrency bounded to
--concurrency. The reference does the same with net-snmp's command-line
tools, run concurrently (xargs -P): per agent, one `snmpget` of the 3
scalars and one `snmpbulkget` of the 15 columns (one PDU, as many rows as
interfaces); and, when installed (the `bench` extra), through ezsnmp, the
net-snmp C library in-process, without the tools' process start-up. Printed:
cycle wall time, PDUs/s, varbinds/s, CPU seconds, RSS, and the ratios. The
slawatch figure is a steady cycle (the second); the first, where table sizes
are not yet known, is printed beside it. Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PORT = 16300
V3 = ("bench", "benchauth123", "benchpriv123")  # SHA / AES authPriv user for --version 3


def addresses(n: int) -> list[str]:
    return [f"127.20.{i // 250}.{i % 250 + 1}" for i in range(n)]


PER_AGENT_PROCESS = 100  # snmpd's agentAddress value has a length limit


def start_agents(addrs: list[str], tmp: Path) -> list[subprocess.Popen]:
    procs = []
    for n, start in enumerate(range(0, len(addrs), PER_AGENT_PROCESS)):
        d = tmp / f"agent{n}"
        (d / "persist").mkdir(parents=True)
        endpoints = ",".join(f"udp:{a}:{PORT}" for a in addrs[start:start + PER_AGENT_PROCESS])
        (d / "snmpd.conf").write_text(f"agentAddress {endpoints}\nrocommunity public default\n"
                                      f'createUser {V3[0]} SHA "{V3[1]}" AES "{V3[2]}"\nrouser {V3[0]} priv\n')
        procs.append(subprocess.Popen(["snmpd", "-f", "-Lf", str(d / "log"), "-C", "-c", str(d / "snmpd.conf"), "-p", str(d / "pid")],
                                      env={**os.environ, "SNMP_PERSISTENT_DIR": str(d / "persist")},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(subprocess.run(["snmpget", "-v2c", "-c", "public", "-r0", "-t1", f"{addrs[i]}:{PORT}", "1.3.6.1.2.1.1.5.0"],
                              capture_output=True).returncode == 0 for i in range(PER_AGENT_PROCESS - 1, len(addrs), PER_AGENT_PROCESS)):
            return procs
        time.sleep(0.5)
    for proc in procs:  # do not leave agents behind
        proc.terminate()
    raise RuntimeError(f"snmpd did not come up; see the logs under {tmp}")


def slawatch_cycle(addrs: list[str], concurrency: int, version: str = "2c") -> dict:
    from monitor.config.models import SnmpProbeConfig
    from probes.base import ProbeContext
    from probes.snmp import SnmpEngineHolder, snmp_probe

    auth = ({"community": "public"} if version == "2c" else
            {"user": V3[0], "auth_protocol": "sha", "auth_key": V3[1], "priv_protocol": "aes", "priv_key": V3[2]})
    settings = SnmpProbeConfig(version=version, port=PORT, profiles=["system", "if-mib"], timeout="2s", retries=1, **auth)

    async def cycle(ctx):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        results = await asyncio.gather(*(snmp_probe(a, a, settings, context=ctx) for a in addrs))
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        ok = sum(r.ok for r in results)
        varbinds = sum(len(r.scalars) + sum(len(c) for c in r.interfaces.values()) for r in results)
        return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), "ok": ok,
                "pdus": sum(r.pdus for r in results), "varbinds": varbinds,
                "interfaces": sum(len(r.interfaces) for r in results)}

    async def run():
        ctx = ProbeContext(snmp_engine=SnmpEngineHolder(max_concurrent=concurrency))
        await snmp_probe("warm", addrs[0], settings, context=ctx)  # engine start-up is not part of a cycle
        first = await cycle(ctx)  # tables of unknown size: GETBULK at max-repetitions
        steady = await cycle(ctx)  # every later cycle: one row more than last time
        ctx.snmp_engine.close()
        return first, steady

    first, steady = asyncio.run(run())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**steady, "rss_mb": rss, "first": first}


def ezsnmp_cycle(addrs: list[str], concurrency: int, rows: int, version: str = "2c") -> dict | None:
    """The same polling through ezsnmp (the net-snmp C library), in a pool of threads (its calls release the GIL);
    sessions are opened before the clock starts, as slawatch keeps its socket."""
    try:
        from ezsnmp import Session
    except ImportError:
        return None
    from concurrent.futures import ThreadPoolExecutor

    from probes.snmp import IF_COLUMNS, SYSTEM

    auth = ({"version": "2c", "community": "public"} if version == "2c" else
            {"version": "3", "security_level": "authPriv", "security_username": V3[0], "auth_protocol": "SHA",
             "auth_passphrase": V3[1], "privacy_protocol": "AES", "privacy_passphrase": V3[2]})
    sessions = [Session(hostname=a, port_number=PORT, timeout=2, retries=1, set_max_repeaters_to_num=rows, **auth)
                for a in addrs]

    def poll(session) -> int:
        try:
            return len(session.get(list(SYSTEM.values()))) + len(session.bulk_get(list(IF_COLUMNS.values())))
        except Exception:
            return -1

    with ThreadPoolExecutor(concurrency) as pool:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        counts = list(pool.map(poll, sessions))
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), "pdus": 2 * len(addrs),
            "ok": sum(c > 0 for c in counts), "varbinds": sum(c for c in counts if c > 0),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def netsnmp_cycle(addrs: list[str], concurrency: int, rows: int, version: str = "2c") -> dict:
    from probes.snmp import IF_COLUMNS, SYSTEM

    commands = []
    for a in addrs:
        auth = ("-v2c -c public" if version == "2c" else
                f"-v3 -l authPriv -u {V3[0]} -a SHA -A {V3[1]} -x AES -X {V3[2]}")
        commands.append(f"snmpget {auth} -t2 -r1 -Oqn {a}:{PORT} " + " ".join(SYSTEM.values()))
        commands.append(f"snmpbulkget {auth} -t2 -r1 -Oqn -Cn0 -Cr{rows} {a}:{PORT} " + " ".join(IF_COLUMNS.values()))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(commands) + "\n")
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(["xargs", "-P", str(concurrency), "-L", "1", "-I", "{}", "sh", "-c", "{}"],
                                stdin=open(fh.name), stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.strip()]
    os.unlink(fh.name)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "pdus": len(commands), "varbinds": len(lines),
            "rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--version", choices=["2c", "3"], default="2c",
                        help="2c or 3 (SHA/AES authPriv); both through slawatch's own codec. With 3, slawatch's "
                             "v2c cycle is measured in the same run too, for the ratio")
    args = parser.parse_args()
    if not shutil.which("snmpd"):
        print("snmp_scale: needs net-snmp's snmpd and tools (scripts/dev-setup installs them)", file=sys.stderr)
        return 2
    addrs = addresses(args.agents)
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-snmpbench-"))
    agents = start_agents(addrs, tmp)
    try:
        s = slawatch_cycle(addrs, args.concurrency, args.version)
        v2c = slawatch_cycle(addrs, args.concurrency, "2c") if args.version == "3" else None
        rows = max(1, s["interfaces"] // max(s["ok"], 1))
        n = netsnmp_cycle(addrs, min(args.concurrency, 64), rows, args.version)
        e = ezsnmp_cycle(addrs, min(args.concurrency, 64), rows, args.version)
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"SNMP scale benchmark: {args.agents} agents ({len(agents)} snmpd processes, {args.agents} loopback endpoints), "
          f"system + if-mib ({rows} interfaces each), {'v2c' if args.version == '2c' else 'v3 authPriv SHA/AES'}; "
          f"{os.cpu_count()} CPUs")
    f = s["first"]
    print(f"  slawatch   cycle {s['wall']:6.2f} s  cpu {s['cpu']:6.2f} s  rss {s['rss_mb']:6.1f} MB  ok {s['ok']}/{args.agents}  "
          f"{s['pdus']} PDUs ({s['pdus'] / s['wall']:,.0f}/s)  {s['varbinds']} varbinds ({s['varbinds'] / s['wall']:,.0f}/s)")
    print(f"             (first cycle, table sizes unknown, GETBULK max-repetitions 25: {f['wall']:.2f} s, "
          f"cpu {f['cpu']:.2f} s, ok {f['ok']}/{args.agents}, {f['pdus']} PDUs)")
    print(f"  net-snmp   cycle {n['wall']:6.2f} s  cpu {n['cpu']:6.2f} s  rss {n['rss_mb']:6.1f} MB (largest process)  "
          f"{n['pdus']} PDUs ({n['pdus'] / n['wall']:,.0f}/s)  {n['varbinds']} varbinds ({n['varbinds'] / n['wall']:,.0f}/s)"
          f"  [snmpget + snmpbulkget, xargs -P {min(args.concurrency, 64)}]")
    if e:
        print(f"  ezsnmp     cycle {e['wall']:6.2f} s  cpu {e['cpu']:6.2f} s  ok {e['ok']}/{args.agents}  "
              f"{e['pdus']} PDUs ({e['pdus'] / e['wall']:,.0f}/s)  {e['varbinds']} varbinds ({e['varbinds'] / e['wall']:,.0f}/s)"
              f"  [net-snmp C library, {min(args.concurrency, 64)} threads]")
    else:
        print("  ezsnmp     not installed (pip install '.[bench]'); skipped")
    if v2c:
        print(f"  slawatch v2c cycle {v2c['wall']:6.2f} s  cpu {v2c['cpu']:6.2f} s  ok {v2c['ok']}/{args.agents}  "
              f"(same agents, same run)")
        print(f"  ratio slawatch v3/v2c:         wall {s['wall'] / v2c['wall']:.2f}, cpu {s['cpu'] / v2c['cpu']:.2f}")
    print(f"  ratio slawatch/net-snmp tools: wall {s['wall'] / n['wall']:.2f}, cpu {s['cpu'] / n['cpu']:.2f}")
    if e:
        print(f"  ratio slawatch/ezsnmp:         wall {s['wall'] / e['wall']:.2f}, cpu {s['cpu'] / e['cpu']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
