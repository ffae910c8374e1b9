"""A seeded fault-injection harness and a checker over the whole history (#33 item 5, after Jepsen).

Four real ``slawatch run`` nodes in two sites (a: a1, a2; b: b1, b2), each in a network namespace of its own,
against a real PostgreSQL, probe the hosts of customers in namespaces of their own, every target from both
sites (quorum 2 of 2). While the customers' hosts are blacked out on a seeded schedule (their kernel stops
answering echo requests: nftables), a *nemesis* applies a seeded schedule of faults, one at a time:

- ``kill``: SIGKILL of a node, restarted a few seconds later (as systemd would);
- ``pause``: SIGSTOP of a node for 20-40 s, then SIGCONT;
- ``dbcut``: a node cut from PostgreSQL (nftables drops its packets to the database's port, silently);
- ``targetcut``: a node cut from its targets (its packets to the customers dropped);
- ``sitecut``: a site's uplink cut (both of its nodes cut from the customers);
- ``pgrestart``: PostgreSQL stopped and started again;
- ``primarykill``: the Patroni primary SIGKILLed (with ``patroni=True``; restarted as a replica afterwards).

Every action is recorded with its wall-clock time (the history). The checker then reads the store and what a
webhook receiver got, and verifies invariants over the whole run (:func:`check`):

1. at most one leader at any database time (the leader terms' lease spans never overlap);
2. no unit's cycles written by two nodes for one slot;
3. every blackout of at least ``failure_threshold`` + 1 intervals that the quorum saw from its start became
   exactly one outage dated within one interval of the blackout's start, with exactly one ticket; no outage
   starts outside a blackout, and no blackout has more than one;
4. no span counted as up (by the month's figures, monitor.sla.monthly) while no site had fresh evidence (a
   cycle's evidence lasts its own slot: ``GAP_FACTOR`` intervals from its start);
5. no cycle lost once the store acknowledged it (cycles read back during the run are all there at the end).

tests/test_faults.py runs a short seeded schedule; bench/faults.py runs a long one and prints the checker's
result (docs/scaling.md has the figures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from daemonconfig import CLUSTER_NODE
from conftest import SLAWATCH
from fakehttp import FakeHttp
from procs import spawn, stop

SITES = {"a": ("a1", "a2"), "b": ("b1", "b2")}
CUSTOMERS = {"acme": 3, "beta": 3}  # customer host -> number of circuits on it
HEARTBEAT, FAILOVER, INTERVAL, THRESHOLD, RECOVERY, TIMEOUT = 0.5, 3.0, 1.0, 2, 2, 0.3
FAULTS = ("kill", "pause", "dbcut", "targetcut", "sitecut", "pgrestart")

CONFIG = CLUSTER_NODE + """\
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
    escalation: [{{tier: 1, after: 0s, sinks: [hook]}}]
defaults:
  targets: {{interval: {interval}s, failure_threshold: {threshold}, recovery_threshold: {recovery},
            probes: {{icmp: {{count: 1, timeout: {timeout}s}}}}, vantage: {{sites: [a, b], quorum: 2}}}}
targets:
{targets}
ticket_sinks:
  - {{name: hook, type: webhook, url: "{hook}"}}
"""


@dataclass
class Event:
    """One entry of the history: what was done, to what, when (wall clock, UTC seconds)."""

    at: float
    kind: str
    what: str
    phase: str  # start | end


@dataclass
class Fault:
    at: float  # seconds from the run's start
    kind: str
    what: str  # a node, a site or the database
    duration: float


def schedule(seed: int, seconds: float, kinds: tuple[str, ...] = FAULTS) -> tuple[list[Fault], dict[str, list]]:
    """The nemesis' faults (one at a time) and each customer's blackouts ([(start, end)] from the run's start),
    both from ``seed`` alone."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    t = rng.uniform(5, 10)
    nodes = [n for ns in SITES.values() for n in ns]
    bag: list[str] = []
    while True:
        if not bag:  # every kind once in a shuffled order, then again: a short run still has each kind
            bag = list(kinds)
            rng.shuffle(bag)
        kind = bag.pop()
        what = {"sitecut": rng.choice(sorted(SITES)), "pgrestart": "postgresql",
                "primarykill": "patroni"}.get(kind) or rng.choice(nodes)
        duration = {"kill": rng.uniform(2, 6), "pause": rng.uniform(20, 40), "dbcut": rng.uniform(10, 25),
                    "targetcut": rng.uniform(10, 20), "sitecut": rng.uniform(10, 20), "pgrestart": rng.uniform(3, 10),
                    "primarykill": 0.0}[kind]
        if t + duration > seconds - 10:
            break
        faults.append(Fault(round(t, 1), kind, what, round(duration, 1)))
        t += duration + rng.uniform(4, 10)
    blackouts: dict[str, list] = {}
    for customer in CUSTOMERS:
        spans, t = [], rng.uniform(8, 20)
        while True:
            length = rng.uniform(4, 12)
            if t + length > seconds - 10:
                break
            spans.append((round(t, 1), round(t + length, 1)))
            t += length + rng.uniform(8, 20)
        blackouts[customer] = spans
    return faults, blackouts


class Nft:
    """An nftables table of the harness in one namespace (None: the test's own, where only rules naming a lab
    veth go), with an input, an output and a forward chain to drop in. Drops are on a packet's way *in* (input,
    forward), so they are silent: a drop on the way out would fail the sender's call with EPERM at once."""

    def __init__(self, host, table: str = "swfault") -> None:
        self.host, self.table = host, table
        self._nft("add", "table", "inet", table)
        for chain, hook in (("in", "input"), ("through", "forward")):
            self._nft("add", "chain", "inet", table, chain, f"{{ type filter hook {hook} priority 0; policy accept; }}")

    def _nft(self, *args: str) -> None:
        if self.host is None:
            subprocess.run(["nft", *args], check=True, capture_output=True, text=True)
        else:
            self.host.exec("nft", *args)

    def drop(self, chain: str, *match: str) -> None:
        self._nft("add", "rule", "inet", self.table, chain, *match, "drop")

    def clear(self, chain: str) -> None:
        self._nft("flush", "chain", "inet", self.table, chain)

    def delete(self) -> None:
        if self.host is None:
            subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)


def _remove_stale_tables() -> None:
    """Delete the test namespace's ``swfault<pid>`` tables of harness runs whose process is gone (a run killed
    before its teardown)."""
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.rsplit(" ", 1)[-1]
        if name.startswith("swfault") and name[7:].isdigit() and not os.path.exists(f"/proc/{name[7:]}"):
            subprocess.run(["nft", "delete", "table", "inet", name], capture_output=True)


class Node:
    """One ``slawatch run`` in its namespace; restartable after a kill."""

    def __init__(self, tmp: Path, name: str, site: str, host, dsn: str, targets: str, hook: str) -> None:
        self.name, self.site, self.host = name, site, host
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(CONFIG.format(node=name, site=site, heartbeat=HEARTBEAT, failover=FAILOVER, dsn=dsn,
                                           interval=INTERVAL, threshold=THRESHOLD, recovery=RECOVERY, timeout=TIMEOUT,
                                           targets=targets,
                                           hook=hook))
        self.log = open(tmp / f"{name}.log", "a+")
        self.nft = Nft(host)
        self.proc: subprocess.Popen | None = None
        self.killed = False
        self.start()

    def start(self) -> None:
        self.proc = spawn(["ip", "netns", "exec", self.host.netns, *SLAWATCH, "run", "-c", str(self.path)],
                          cwd=self.path.parent, stdout=subprocess.DEVNULL, stderr=self.log)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        # ip netns exec execs the daemon: the process is the daemon itself
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGCONT)
        code = stop(self.proc, timeout=30)
        self.proc = None
        return code

    def lines(self) -> list[dict]:
        self.log.seek(0)
        return [json.loads(x) for x in self.log.read().splitlines() if x.startswith("{")]


class Receiver(FakeHttp):
    """The webhook's receiving end: every delivery (open, update, resolve ...) with its idempotency key."""

    def __init__(self, host: str) -> None:
        super().__init__({("POST", "/hook"): lambda req: (200, {"ok": True})}, host=host)

    def deliveries(self) -> list[dict]:
        out = []
        for req in list(self.requests):
            body = req["json"] or {}
            for alert in body.get("alerts", []):
                out.append({"key": req["headers"].get("Idempotency-Key"), "target": alert["labels"].get("target"),
                            "ticket": alert["labels"].get("slawatch_ticket"),
                            "action": alert["annotations"].get("action"), "kind": alert["labels"].get("ticket_kind")})
        return out


@dataclass
class Run:
    """What a run leaves for the checker."""

    start: float
    end: float
    history: list[Event]
    blackouts: dict[str, list[tuple[float, float]]]  # customer -> wall-clock spans
    targets: dict[str, str]  # target -> customer
    acked: set[tuple[str, float, str]]  # (unit, started, node) read back from the store during the run
    config_path: Path
    faults: list[Fault] = field(default_factory=list)


class FaultLab:
    """The lab: namespaces (netlab.SiteLab), PostgreSQL (or Patroni), the webhook receiver and the four nodes."""

    def __init__(self, tmp: Path, netlab, patroni: bool = False) -> None:
        self.pg = self.patroni = self.receiver = self.store = self.host_nft = None  # type: ignore[assignment]
        self.nodes: dict[str, Node] = {}
        try:
            self._build(tmp, netlab, patroni)
        except BaseException:
            self.close()  # whatever was made before the failure
            raise

    def _build(self, tmp: Path, netlab, patroni: bool) -> None:
        from netlab import SiteLab

        self.tmp = tmp
        names = [n for ns in SITES.values() for n in ns]
        self.lab = SiteLab(netlab, names, list(CUSTOMERS))
        self.hosts = self.lab.sites
        addresses = [f"198.19.{h.index}.1" for h in self.hosts.values()]
        self.pg = self.patroni = None
        if patroni:
            from patroni import PatroniCluster

            self.patroni = PatroniCluster(listen=tuple(addresses))
            self.db_port = 0
        else:
            from pgcluster import PgCluster

            self.pg = PgCluster(listen=tuple(addresses))
            self.db = self.pg.create_db().rsplit("/", 1)[1]
        self.receiver = Receiver(addresses[0])
        _remove_stale_tables()
        self.cust_nft = {c: Nft(h) for c, h in self.lab.customers.items()}
        self.router_nft = Nft(self.lab.router)
        self.host_nft = Nft(None, f"swfault{os.getpid()}")
        self.targets: dict[str, str] = {}
        lines = []
        for customer, n in CUSTOMERS.items():
            for i in range(1, n + 1):
                tid = f"{customer}{i}"
                self.targets[tid] = customer
                lines.append(f"  - {{id: {tid}, contract: c1, kind: internet, address: "
                             f"{self.lab.customers[customer].address(i)}}}")
        self.cust_prefixes = ", ".join(str(h.v4_prefix) for h in self.lab.customers.values())
        self.store = self._store()
        self.store.migrate()
        for site, members in SITES.items():
            for name in members:
                host = self.hosts[name]
                self.nodes[name] = Node(tmp, name, site, host, self.dsn(f"198.19.{host.index}.1"), "\n".join(lines),
                                        f"{self.receiver.url}hook")
        self.history: list[Event] = []
        self.acked: set[tuple[str, float, str]] = set()
        self._stop = threading.Event()

    def dsn(self, host: str = "127.0.0.1") -> str:
        if self.patroni is not None:
            return self.patroni.dsn(host=host)
        assert self.pg is not None
        return self.pg.dsn(self.db, host=host)

    def _store(self):
        from monitor.store.postgres import PostgresStore

        return PostgresStore(self.dsn())

    @property
    def db_ports(self) -> list[int]:
        if self.patroni is not None:
            return [m["port"] for m in self.patroni.members.values()]
        assert self.pg is not None
        return [self.pg.port]

    # -- the nemesis ------------------------------------------------------------------------------
    def _note(self, kind: str, what: str, phase: str) -> None:
        self.history.append(Event(time.time(), kind, what, phase))

    def apply(self, f: Fault) -> None:
        """Apply one fault for its duration (blocking), recording its start and end."""
        self._note(f.kind, f.what, "start")
        if f.kind == "kill":
            node = self.nodes[f.what]
            node.killed = True  # the nemesis restarts it, not the restarter
            node.signal(signal.SIGKILL)
            assert node.proc is not None
            node.proc.wait(timeout=10)
            self._sleep(f.duration)
            node.start()
            node.killed = False
        elif f.kind == "pause":
            self.nodes[f.what].signal(signal.SIGSTOP)
            self._sleep(f.duration)
            self.nodes[f.what].signal(signal.SIGCONT)
        elif f.kind == "dbcut":
            self._cut_db(self.nodes[f.what], True)
            self._sleep(f.duration)
            self._cut_db(self.nodes[f.what], False)
        elif f.kind in ("targetcut", "sitecut"):
            names = [f.what] if f.kind == "targetcut" else list(SITES[f.what])
            for name in names:  # on the router, both ways: the node's probes and the customers' replies
                link = self.lab.uplink[name].replace("x", "r", 1)
                self.router_nft.drop("through", "iifname", link)
                self.router_nft.drop("through", "oifname", link)
            self._sleep(f.duration)
            self.router_nft.clear("through")
        elif f.kind == "pgrestart":
            if self.patroni is not None:  # the primary's PostgreSQL, restarted by Patroni
                primary = self.patroni.wait_primary(timeout=120)
                self.patroni.restart(primary)
            else:
                assert self.pg is not None
                self.pg.stop("fast")
                self._sleep(f.duration)
                self.pg.start()
        elif f.kind == "primarykill":
            assert self.patroni is not None
            old = self.patroni.primary()
            assert old is not None
            self.patroni.kill(old)
            self.patroni.wait_primary(timeout=120, other_than=old)
            self._note(f.kind, f.what, "promoted")
            self.patroni.rejoin(old)
            self.patroni.wait_replicating(timeout=180)
        self._note(f.kind, f.what, "end")

    def _cut_db(self, node: Node, cut: bool) -> None:
        """Cut a node from the database, silently both ways: its packets dropped as they reach the test's
        namespace (on its veth), the database's dropped as they reach the node's namespace."""
        ports = "{ " + ", ".join(str(p) for p in self.db_ports) + " }"
        if cut:
            self.host_nft.drop("in", "iifname", node.host.veth, "tcp", "dport", ports)
            node.nft.drop("in", "tcp", "sport", ports)
        else:
            self.host_nft.clear("in")
            node.nft.clear("in")

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _blackouts(self, t0: float, spans: dict[str, list], out: dict[str, list]) -> None:
        events = sorted([(s, c, "start") for c, ss in spans.items() for s, _ in ss]
                        + [(e, c, "end") for c, ss in spans.items() for _, e in ss])
        begun: dict[str, float] = {}
        for at, customer, phase in events:
            self._stop.wait(max(0.0, t0 + at - time.monotonic()))
            if self._stop.is_set():
                break
            if phase == "start":
                self.cust_nft[customer].drop("in", "icmp", "type", "echo-request")
                begun[customer] = time.time()
            else:
                self.cust_nft[customer].clear("in")
                out[customer].append((begun.pop(customer), time.time()))
            self._note("blackout", customer, phase)
        for customer in begun:  # stopped early: end what is open
            self.cust_nft[customer].clear("in")
            out[customer].append((begun[customer], time.time()))

    def _restarter(self) -> None:
        """As systemd's ``Restart=on-failure`` with ``RestartSec=5s`` (systemd/slawatch.service): a node that
        exited on its own with an error (say, its database unreachable at start during a failover) is started
        again five seconds later."""
        while not self._stop.wait(1.0):
            for node in self.nodes.values():
                proc = node.proc
                if proc is not None and proc.poll() not in (None, 0) and not node.killed:
                    self._note("restart", node.name, "start")
                    self._stop.wait(5.0)
                    if self._stop.is_set():
                        return
                    node.start()
                    self._note("restart", node.name, "end")

    def _sample(self) -> None:
        """Read back what the store has acknowledged, every few seconds (a read that fails is skipped)."""
        store = None
        while not self._stop.wait(5.0):
            try:
                store = store or self._store()
                since = time.time() - 60
                for target in self.targets:
                    for site in SITES:
                        unit = f"{target}@{site}"
                        for c in store.cycles(unit, since, time.time()):
                            self.acked.add((unit, c.started, c.node or ""))
            except Exception:  # noqa: BLE001 - the database may be down or failing over: read next time
                if store is not None:
                    store.close()
                store = None
        if store is not None:
            store.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        from conftest import wait_for

        every = [n for ns in SITES.values() for n in ns]
        wait_for("four live nodes and a leader", lambda: self.store.cluster_leader() is not None and sum(
            n.alive(FAILOVER) for n in self.store.cluster_nodes() if n.node in every) == len(every), timeout=timeout)
        wait_for("every target up by consensus", lambda: all(
            (st := self.store.state(t)) is not None and st.state == "up" for t in self.targets), timeout=timeout)

    def run(self, seed: int, seconds: float, kinds: tuple[str, ...] = FAULTS, progress=None) -> Run:
        """The seeded run: blackouts and faults for ``seconds``, then everything healed and drained."""
        faults, spans = schedule(seed, seconds, kinds)
        start = time.time()
        t0 = time.monotonic()
        done: dict[str, list] = {c: [] for c in CUSTOMERS}
        threads = [threading.Thread(target=self._blackouts, args=(t0, spans, done), daemon=True),
                   threading.Thread(target=self._sample, daemon=True),
                   threading.Thread(target=self._restarter, daemon=True)]
        for th in threads:
            th.start()
        try:
            for f in faults:
                self._stop.wait(max(0.0, t0 + f.at - time.monotonic()))
                if progress:
                    progress(f"{time.monotonic() - t0:6.1f} s  {f.kind} {f.what} for {f.duration:g} s")
                self.apply(f)
            self._stop.wait(max(0.0, t0 + seconds - time.monotonic()))
        finally:
            self._stop.set()
            for th in threads:
                th.join(timeout=30)
            self.router_nft.clear("through")
            self.host_nft.clear("in")
            for node in self.nodes.values():  # heal whatever a failure left applied
                node.nft.clear("in")
                if node.proc is not None:
                    node.signal(signal.SIGCONT)
            if self.pg is not None:
                self.pg.start()
        end = time.time()
        self._drain(end)
        return Run(start, end, list(self.history), done, dict(self.targets), set(self.acked),
                   self.nodes["a1"].path, faults)

    def _drain(self, end: float, timeout: float = 60.0) -> None:
        """Wait until every node is live again and every unit has a cycle after the run's end."""
        from conftest import wait_for

        every = [n for ns in SITES.values() for n in ns]
        wait_for("every node live after the run", lambda: sum(
            n.alive(FAILOVER) for n in self.store.cluster_nodes() if n.node in every) == len(every), timeout=timeout)
        wait_for("every unit's cycles stored after the run", lambda: all(
            self.store.cycles(f"{t}@{s}", end + 2 * INTERVAL, float("inf")) for t in self.targets for s in SITES),
            timeout=timeout)
        time.sleep(2 * FAILOVER)  # the leader's consensus round and the ticket outbox after the last cycles

    def dump(self, run: Run, path: Path) -> None:
        """The run's evidence for a post-mortem, times from the run's start: outages, unknown time, events,
        leader terms, and each unit's cycles as runs of (first start, node, ok, count)."""
        lo = run.start

        def rel(x):
            return None if x is None else round(x - lo, 2)

        units = [f"{t}@{s}" for t in run.targets for s in SITES]
        runs: dict[str, list] = {}
        for u in units:
            out: list = []
            for c in self.store.cycles(u, lo - 10, run.end + 60):
                if out and out[-1][1] == c.node and out[-1][2] == c.ok:
                    out[-1][3] += 1
                else:
                    out.append([rel(c.started), c.node, c.ok, 1])
            runs[u] = out
        path.write_text(json.dumps({
            "history": [(rel(e.at), e.kind, e.what, e.phase) for e in run.history],
            "outages": [(o.target, o.kind, rel(o.start), rel(o.end)) for o in self.store.outages_between(lo - 10, run.end + 60)],
            "unknown": [(u.target, rel(u.start), rel(u.end), u.reason)
                        for u in self.store.unknown_intervals(None, lo - 10, run.end + 60)],
            "events": [(e.kind, e.target, rel(e.at)) for e in self.store.events(lo - 10, run.end + 60)],
            "terms": [(t.node, t.term, rel(t.since), rel(t.expires)) for t in self.store.leader_terms(lo - 60)],
            "cycles": runs,
            "logs": {n: [x for x in node.lines() if x.get("level") in ("warning", "error")][-200:]
                     for n, node in self.nodes.items()},
        }, indent=1, default=str))

    def close(self) -> dict[str, int | None]:
        """Stop every node and peer this lab started (also after a partial set-up); the nodes' exit codes."""
        codes = {name: node.stop() for name, node in self.nodes.items()}
        if self.host_nft is not None:
            self.host_nft.delete()
        for part in (self.receiver, self.store, self.pg, self.patroni):
            if part is not None:
                part.close()
        return codes


# ------------------------------------------------------------------------------------------------ the checker
@dataclass
class Verdict:
    """The checker's result: each invariant's violations (empty: held) and what it counted."""

    violations: dict[str, list] = field(default_factory=dict)
    counts: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def summary(self, full: bool = False) -> str:
        """One line per invariant (``full``: every violation; otherwise the first three), then the counts. Times
        are seconds from the run's start."""
        lines = [f"{k}: {'held' if not v else f'VIOLATED ({len(v)}): {v if full else v[:3]}'}"
                 for k, v in self.violations.items()]
        return "\n".join(lines + [f"{k}: {v}" for k, v in self.counts.items()])


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _minus(spans: list[tuple[float, float]], cut: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for s, e in spans:
        pieces = [(s, e)]
        for cs, ce in cut:
            pieces = [p for a, b in pieces for p in ((a, min(b, cs)), (max(a, ce), b)) if p[1] > p[0]]
        out.extend(pieces)
    return out


def _cut(run: Run, site: str, lo: float, hi: float) -> bool:
    """Whether the site, or a node of it, was cut from the customers at some time in [lo, hi]."""
    spans: dict[tuple[str, str], float] = {}
    for e in run.history:
        if e.kind not in ("sitecut", "targetcut") or (e.what != site and e.what not in SITES[site]):
            continue
        if e.phase == "start":
            spans[(e.kind, e.what)] = e.at
        elif e.phase == "end" and spans.pop((e.kind, e.what), e.at) <= hi and e.at >= lo:
            return True
    return any(at <= hi for at in spans.values())


def check(run: Run, store, receiver: Receiver, settle: float = 20.0) -> Verdict:
    """Verify the invariants over the run (see the module's docstring). ``settle``: seconds at the run's start
    left out of invariants 3 and 4 (the nodes' first cycles)."""
    from monitor.config import load_config
    from monitor.measure.state import GAP_FACTOR
    from monitor.sla.monthly import compute_month, load_month

    v = Verdict()
    lo, hi = run.start, run.end

    # 1. at most one leader at any database time
    terms = store.leader_terms(since=lo - 60)
    v.violations["one leader at a time"] = [(a.term, a.node, b.term, b.node, round(a.expires - b.since, 3))
                                           for a, b in zip(terms, terms[1:]) if b.since < a.expires]
    v.counts["leader terms"] = len(terms)

    # 2. no unit probed by two nodes in one slot
    units = {f"{t}@{s}": t for t in run.targets for s in SITES}
    cycles = {u: store.cycles(u, lo - 10, hi + 30) for u in units}
    double = []
    for unit, cs in cycles.items():
        cs = sorted(cs, key=lambda c: c.started)
        double += [(unit, a.node, b.node, round(b.started - a.started, 3)) for a, b in zip(cs, cs[1:])
                   if a.node != b.node and b.started - a.started < INTERVAL / 2]
    v.violations["one node per unit and slot"] = double
    v.counts["cycles"] = sum(len(cs) for cs in cycles.values())

    # 3. blackouts -> one outage and one ticket each
    outages = {t: [o for o in store.outages(t) if o.kind == "down" and o.start >= lo - 5] for t in run.targets}
    deliveries = receiver.deliveries()
    opened: dict[str, set] = {t: set() for t in run.targets}
    for d in deliveries:
        if d["action"] in ("open", "reopen") and d["target"] in opened:
            opened[d["target"]].add(d["key"])
    wrong, expected_total, seen_total = [], 0, 0
    for target, customer in run.targets.items():
        spans = run.blackouts[customer]
        for s, e in spans:
            if s < lo + settle:
                continue
            hits = [o for o in outages[target] if o.start < e + INTERVAL and (o.end is None or o.end > s - INTERVAL)]
            if len(hits) > 1:
                wrong.append((target, "two outages in one blackout", round(s - lo, 1), [round(o.start - lo, 1) for o in hits]))
            if e - s < (THRESHOLD + 1) * INTERVAL:
                continue
            saw = 0
            for site in SITES:
                if _cut(run, site, s - INTERVAL, s + (THRESHOLD + 1) * INTERVAL):
                    continue  # the site (or one of its nodes) could not reach the customers: not its sight
                # the site saw it from its start: up proven just before it (RECOVERY good cycles, as a recovery
                # needs: without them an earlier outage the site could not see end goes on), a bad cycle within
                # one interval of its start, and only bad ones after
                unit = cycles[f"{target}@{site}"]
                before = [c for c in unit if s - (RECOVERY + 1) * INTERVAL <= c.started < s]
                cs = [c for c in unit if s <= c.started < s + (THRESHOLD + 1) * INTERVAL]
                first_bad = [c for c in cs if c.started < s + INTERVAL and not c.ok]
                if (len(before) >= RECOVERY and all(c.ok for c in before) and first_bad and len(cs) >= THRESHOLD
                        and all(not c.ok for c in cs)):
                    saw += 1
            if saw < 2:
                continue  # not seen by the quorum from its start (a site was dark, cut or taking over)
            expected_total += 1
            if len(hits) != 1:
                wrong.append((target, "no outage for a blackout the quorum saw", round(s - lo, 1), round(e - lo, 1),
                              [(round(o.start - lo, 1), o.end and round(o.end - lo, 1)) for o in hits]))
                continue
            seen_total += 1
            if abs(hits[0].start - s) > INTERVAL:
                wrong.append((target, "outage dated off", round(hits[0].start - s, 3)))
        for o in outages[target]:
            if not any(s - INTERVAL <= o.start <= e + INTERVAL for s, e in spans):
                wrong.append((target, "outage outside every blackout", round(o.start - lo, 1)))
        if len(opened[target]) != len(outages[target]):
            wrong.append((target, "tickets opened != outages", len(opened[target]), len(outages[target])))
    v.violations["one outage and one ticket per blackout"] = wrong
    v.counts["blackouts the quorum saw"] = expected_total
    v.counts["blackouts"] = sum(len(spans) for spans in run.blackouts.values())
    v.counts["outages"] = sum(len(o) for o in outages.values())
    v.counts["tickets opened"] = sum(len(k) for k in opened.values())

    # 4. no span counted as up without fresh evidence from some site
    config = load_config(run.config_path)
    month = time.strftime("%Y-%m", time.gmtime(lo))
    figures = {tm.target: tm for cm in compute_month(config, load_month(store, config, month), int(hi * 1000))
               for tm in cm.targets}
    unseen_up = []
    w_lo, w_hi = lo + settle, hi
    tolerance = INTERVAL  # the consensus round that notices, and the store's lag (ConsensusKeeper.stale_after)
    for target in run.targets:
        fresh = _union([(c.started, c.started + GAP_FACTOR * INTERVAL) for s in SITES
                        for c in cycles[f"{target}@{s}"]])
        blind = _minus([(w_lo, w_hi)], fresh)
        tm = figures[target]
        not_up = _union([(a / 1000, b / 1000) for a, b in [*tm.down, *tm.unknown]])
        for gap in blind:
            counted_up = sum(b - a for a, b in _minus([gap], not_up))
            if counted_up > tolerance:
                unseen_up.append((target, round(gap[0] - lo, 1), round(gap[1] - gap[0], 3), round(counted_up, 3)))
    v.violations["no unseen time counted as up"] = unseen_up

    # 5. nothing the store acknowledged is lost
    now = {(u, c.started, c.node or "") for u, cs in cycles.items() for c in cs}
    lost = sorted(k for k in run.acked if k[1] >= lo - 10 and k not in now)
    v.violations["no acknowledged cycle lost"] = lost
    v.counts["cycles acknowledged during the run"] = len(run.acked)
    v.counts["history"] = "; ".join(f"{e.at - lo:.1f} {e.kind} {e.what} {e.phase}" for e in run.history)
    return v
