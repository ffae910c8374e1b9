#!/usr/bin/env python3
"""Customer-request sync benchmark (#28): a month of 10,000 requests in a real Request Tracker 5, read by the
daemon's request stage (monitor.tickets.requests.stage) into a SQLite store, and the report's customer-request
section for 100 contracts.

    .venv/bin/python bench/request_sync.py [--requests 10000] [--contracts 100] [--changes 100]

RT: the tests' throwaway RT 5 (SQLite, its standalone server on loopback). The requests are created with RT's
own API in one Perl process (scrips off while loading, so no auto-reply mail per request): requestor
``u<i>@d<i % contracts>.example`` (a shared queue split by mail domain into the contracts), priorities across
the three severities, every second request answered by staff, every fourth resolved, every tenth stalled; their
creation spread over the last 30 days (dates set in RT's database after the load), as a month of requests comes.

Measured, with the stage's own code (sync, escalation, the published figures):
- first sync: wall, slawatch's CPU (this process), RT's CPU (its server process), HTTP requests, requests/s;
- an idle poll (nothing changed): the cost each ``interval`` pays;
- a poll after ``--changes`` staff replies;
- the report's customer-request section for every contract (monitor.reports.report._requests), from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

LOAD = r"""
use RT; RT::LoadConfig(); RT::Init();
my $dbh = $RT::Handle->dbh; $dbh->do("PRAGMA synchronous = OFF");
$dbh->do("UPDATE Scrips SET Disabled = 1");
use POSIX qw(strftime);
my ($n, $contracts) = @ARGV;
my $now = time; my $span = 30 * 86400;
sub stamp { strftime("%Y-%m-%d %H:%M:%S", gmtime(shift)) }
$RT::Handle->BeginTransaction;
for my $i (0..$n-1) {
  my $t = RT::Ticket->new(RT->SystemUser);
  my $d = sprintf("d%03d", $i % $contracts);
  my ($id, $txn, $msg) = $t->Create(Queue => 'General', Subject => "request $i", Priority => ($i % 3) * 40,
                                    Requestor => ["u$i\@$d.example"]);
  die $msg unless $id;
  $t->Correspond(Content => "on it") if $i % 2 == 0;
  $t->SetStatus('stalled') if $i % 10 == 5;
  $t->SetStatus('resolved') if $i % 4 == 0;
  # spread over the last 30 days, as a month of requests arrives: each transaction an hour after the one before
  my $base = $now - $span + int($i * ($span - 86400) / $n); my $k = 0;
  my $txs = $dbh->selectcol_arrayref("SELECT id FROM Transactions WHERE ObjectType = 'RT::Ticket' AND ObjectId = ? ORDER BY id", undef, $id);
  $dbh->do("UPDATE Transactions SET Created = ? WHERE id = ?", undef, stamp($base + 3600 * $k++), $_) for @$txs;
  $dbh->do("UPDATE Tickets SET Created = ?, LastUpdated = ? WHERE id = ?", undef, stamp($base), stamp($base + 3600 * ($k - 1)), $id);
}
$RT::Handle->Commit;
$dbh->do("UPDATE Scrips SET Disabled = 0");
print "loaded\n";
"""

CHANGE = r"""
use RT; RT::LoadConfig(); RT::Init();
for my $id (@ARGV) { my $t = RT::Ticket->new(RT->SystemUser); $t->Load($id); $t->Correspond(Content => "update"); }
print "changed\n";
"""


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--contracts", type=int, default=100)
    ap.add_argument("--changes", type=int, default=100)
    args = ap.parse_args()

    from conftest import free_port
    from peers import RT_LIB, RtServer, rt_available

    from monitor.config import parse_config
    from monitor.measure.live import LiveState
    from monitor.reports.report import _requests
    from monitor.service import Runtime
    from monitor.store import SqliteStore
    from monitor.tickets.requests.stage import RequestStage
    from procstat import cpu_seconds

    ok, why = rt_available()
    if not ok:
        print(f"skipped: {why}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="slawatch-bench-req-"))
    rt = RtServer(free_port()).start()
    try:
        t0 = time.monotonic()
        r = subprocess.run(["perl", f"-I{RT_LIB}", "-e", LOAD, str(args.requests), str(args.contracts)], env=rt.env,
                           capture_output=True, text=True, timeout=3600)
        assert r.returncode == 0, r.stderr[-2000:]
        print(f"RT loaded with {args.requests} requests in {time.monotonic() - t0:.1f} s")
        targets = {s: {"acknowledge": "4h", "resolve": "2d"} for s in ("critical", "major", "minor")}
        contracts = [{"id": f"c{i:03d}", "customer": f"C{i}", "provider": "P", "objectives": {"availability": "99.9%"},
                      "response_targets": targets,
                      "request_escalation": [{"at": "50%", "sinks": ["hook"], "provider": ["noc@p.example"]}]}
                     for i in range(args.contracts)]
        config = parse_config({
            "contracts": contracts,
            "ticket_sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}],
            "request_sources": [{"name": "rt", "url": rt.url, "token": rt.token, "queues": {"General": "c000"},
                                 "requestor_domains": {f"d{i:03d}.example": f"c{i:03d}" for i in range(args.contracts)},
                                 "interval": "60s"}]})
        store = SqliteStore(tmp / "s.db")
        store.migrate()
        runtime = Runtime(store=store, live=LiveState(), scheduler=None, leads=lambda: True,  # type: ignore[arg-type]
                          leader_fence=lambda: None)
        stage = RequestStage(config, runtime)
        stage.sources = stage._build(config)
        client = stage.sources["rt"][1]
        calls = {"n": 0}
        real = client._request

        async def counted(*a, **kw):
            calls["n"] += 1
            return await real(*a, **kw)

        client._request = counted

        def rt_cpu() -> float:  # the RT server and its pre-forked workers
            pids = subprocess.run(["pgrep", "-g", str(rt.proc.pid)], capture_output=True, text=True).stdout.split()
            total = 0.0
            for pid in pids:
                try:
                    total += cpu_seconds(int(pid))
                except OSError:
                    pass
            return total

        async def poll(label: str, expect: int | None = None) -> None:
            calls["n"] = 0
            c0, r0, w0 = cpu(), rt_cpu(), time.monotonic()
            n = await stage.sync("rt")
            wall, mine, theirs = time.monotonic() - w0, cpu() - c0, rt_cpu() - r0
            if expect is not None:
                assert n == expect, (label, n, expect)
            print(f"{label}: {n} requests in {wall:.2f} s wall ({n / wall if wall and n else 0:.0f}/s), "
                  f"slawatch CPU {mine:.2f} s ({mine / max(n, 1) * 1000:.2f} ms per request), RT server CPU "
                  f"{theirs:.2f} s, {calls['n']} HTTP requests")

        async def run() -> None:
            await poll("first sync", args.requests)
            await poll("idle poll (the last update's second is read again: at least once, never lost)")
            ids = [r.external_id for r in store.requests()][: args.changes]
            subprocess.run(["perl", f"-I{RT_LIB}", "-e", CHANGE, *ids], env=rt.env, check=True, capture_output=True,
                           timeout=600)
            await poll(f"poll after {args.changes} staff replies", None)
            await poll("idle poll again")
            await client.aclose()

        asyncio.run(run())
        tickets = store.tickets()
        print(f"escalation tickets: {len(tickets)} (open requests past 50 % of a 4 h response or 2 d resolution)")
        now = time.time()
        start, end = now - 31 * 86400, now + 86400
        w0, c0 = time.monotonic(), cpu()
        sections = [_requests(store, c, start, end, now) for c in config.contracts]
        wall = time.monotonic() - w0
        counted_requests = sum(f.count for s in sections if s for f in s.by_severity)
        print(f"report section for {len(config.contracts)} contracts: {wall:.2f} s wall, CPU {cpu() - c0:.2f} s, "
              f"{counted_requests} requests judged ({wall / len(config.contracts) * 1000:.1f} ms per contract)")
        store.close()
    finally:
        rt.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
