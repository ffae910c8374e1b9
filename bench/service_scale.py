#!/usr/bin/env python3
"""Service probe scale benchmark: 1,000 SIP OPTIONS targets against Kamailio and 1,000 HTTPS targets against a
local server, slawatch's probes against sipsak and a concurrent curl run in the same run.

    .venv/bin/python bench/service_scale.py [--targets 1000] [--concurrency 128]

SIP: one real Kamailio (the tests' harness, 4 UDP workers) on a loopback port answers OPTIONS with 200.
slawatch runs one cycle of N ``sip`` probes over UDP, at most --concurrency at a time, in one process (as the
daemon does). The reference is sipsak, one process per OPTIONS (as a NOC's cron or Nagios check runs it),
64 at a time with xargs -P: sipsak has no batch mode.

HTTPS: a threaded TLS server in its own process (the tests' handler, a certificate from the tests' openssl
PKI, verified against its CA). slawatch runs N ``http`` probes (GET, TLS verified, status and body checked, one
connection each, as a probe must); the reference is one ``curl --parallel --parallel-max C`` process fetching
the same N URLs with the same CA: curl's own event loop, no process per request, connection reuse off
(``Connection: close``) and no TLS session resumption (``--no-sessionid``): a full handshake per request, as
each probe does (a resumed TLS 1.3 session shows no certificate).

Printed per kind: cycle wall time, client CPU seconds (slawatch's own process; curl's and sipsak's as reaped
children), checks per second, successes, and the ratio slawatch / reference. Traffic stays on loopback.
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
sys.path.insert(0, str(REPO / "tests"))

SERVER = """
import ssl, sys
sys.path.insert(0, {tests!r})
from servicepeers import _Handler, _Server
_Server.request_queue_size = 1024
server = _Server(("127.0.0.1", {port}), _Handler)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain({cert!r}, {key!r})
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _cycle(probe, settings, n: int, concurrency: int, address: str = "127.0.0.1") -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with gate:
            return await probe(f"t{i}", address, settings)

    return await asyncio.gather(*(one(i) for i in range(n)))


def slawatch_run(probe, settings, n: int, concurrency: int) -> dict:
    asyncio.run(_cycle(probe, settings, min(n, 50), concurrency))  # warm-up: imports, the first handshakes
    cpu0, t0 = self_cpu(), time.perf_counter()
    results = asyncio.run(_cycle(probe, settings, n, concurrency))
    wall, cpu = time.perf_counter() - t0, self_cpu() - cpu0
    ok = sum(r.ok for r in results)
    responses = sorted(r.response for r in results if r.ok and r.response is not None)
    reasons = {r.reason for r in results if not r.ok}
    return {"wall": wall, "cpu": cpu, "ok": ok, "p50_ms": responses[len(responses) // 2] * 1000 if responses else None,
            "reasons": sorted(reasons)[:3]}


def sipsak_run(port: int, n: int, parallel: int) -> dict:
    cmd = f"sipsak -s sip:127.0.0.1:{port} >/dev/null 2>&1 && echo ok || echo fail"
    cpu0, t0 = children_cpu(), time.perf_counter()
    out = subprocess.run(["xargs", "-P", str(parallel), "-I{}", "sh", "-c", cmd],
                         input="\n".join(str(i) for i in range(n)), capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    return {"wall": wall, "cpu": cpu, "ok": out.stdout.split().count("ok")}


def curl_run(urls: list[str], ca: Path, parallel: int, tmp: Path) -> dict:
    config = tmp / "curl.conf"
    config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    cpu0, t0 = children_cpu(), time.perf_counter()
    out = subprocess.run(["curl", "-s", "--parallel", "--parallel-max", str(parallel), "--no-sessionid",
                          "-H", "Connection: close",
                          "--cacert", str(ca), "-w", "%{http_code}\n", "-K", str(config)],
                         capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    return {"wall": wall, "cpu": cpu, "ok": out.stdout.split().count("200")}


def line(name: str, r: dict, n: int) -> str:
    p50 = f"  p50 response {r['p50_ms']:.2f} ms" if r.get("p50_ms") is not None else ""
    return (f"  {name:<22} cycle {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s  {n / r['wall']:8,.0f} checks/s  "
            f"ok {r['ok']}/{n}{p50}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    for tool in ("kamailio", "sipsak", "curl", "openssl"):
        if not shutil.which(tool):
            print(f"service_scale: needs {tool} (scripts/dev-setup installs it)", file=sys.stderr)
            return 2
    from conftest import free_port
    from peers import Kamailio
    from probes.http import HttpProbeConfig, http_probe
    from probes.sip import SipProbeConfig, sip_probe
    from servicepeers import Pki

    n, c = args.targets, args.concurrency
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-servicebench-"))
    pki = Pki(tmp / "pki")
    cert, key = pki.leaf("bench", 30)
    kamailio = Kamailio(tmp / "kamailio", free_port(), cert, key)
    server = None
    try:
        kamailio.start()
        sip_cfg = SipProbeConfig(port=kamailio.port, timeout="5s")
        s_sip = slawatch_run(sip_probe, sip_cfg, n, c)
        r_sip = sipsak_run(kamailio.port, n, 64)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(REPO / "tests"), port=port,
                                                                       cert=str(cert), key=str(key))],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"https://127.0.0.1:{port}/ok"
        http_cfg = HttpProbeConfig(url=url, ca_file=str(pki.ca), body_regex="healthy", timeout="10s")
        s_http = slawatch_run(http_probe, http_cfg, n, c)
        r_http = curl_run([url] * n, pki.ca, c, tmp)
    finally:
        kamailio.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Service probe benchmark: {n} targets per kind, concurrency {c}, {os.cpu_count()} CPUs, loopback")
    print("SIP OPTIONS over UDP against Kamailio:")
    print(line("slawatch sip probe", s_sip, n))
    print(line("sipsak (xargs -P 64)", r_sip, n))
    print(f"  ratio slawatch/sipsak: wall {s_sip['wall'] / r_sip['wall']:.3f}  cpu {s_sip['cpu'] / r_sip['cpu']:.3f}")
    print("HTTPS GET (TLS verified, one connection each) against a local threaded server:")
    print(line("slawatch http probe", s_http, n))
    print(line(f"curl --parallel {c}", r_http, n))
    print(f"  ratio slawatch/curl: wall {s_http['wall'] / r_http['wall']:.3f}  cpu {s_http['cpu'] / r_http['cpu']:.3f}")
    for name, r in (("sip", s_sip), ("http", s_http)):
        if r["reasons"]:
            print(f"  {name} failures: {r['reasons']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
