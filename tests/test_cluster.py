"""The cluster: real daemon processes against a real PostgreSQL, sharding, failover, fencing and one leader."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest

from conftest import REPO, SLAWATCH, free_port, wait_for
from monitor.cluster.member import owner_of
from monitor.config import parse_config
from monitor.errors import ClusterError, ConfigError
from procs import spawn, stop

HEARTBEAT, FAILOVER, INTERVAL = 0.5, 3.0, 1.0
N_TARGETS = 48


# --------------------------------------------------------------------------- pure parts
def test_config_hash_ignores_only_the_nodes_own_name_and_site():
    from monitor.cluster.member import config_hash

    base = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
            "targets": [{"id": "t", "contract": "c1", "kind": "internet", "address": "127.0.0.1"}],
            "storage": {"backend": "postgresql", "dsn": "postgresql://a:pw1@127.0.0.1/x"}}
    one = parse_config({**base, "cluster": {"node": "n1", "site": "a"}})
    two = parse_config({**base, "cluster": {"node": "n2", "site": "b"}, "exporter": {"listen": "127.0.0.1:9999"},
                        "storage": {"backend": "postgresql", "dsn": "postgresql://a:pw2@10.0.0.1/x"}})
    other = parse_config({**base, "cluster": {"node": "n1", "site": "a"},
                          "targets": base["targets"] + [{"id": "u", "contract": "c1", "kind": "internet",
                                                         "address": "127.0.0.2"}]})
    assert config_hash(one) == config_hash(two) != config_hash(other)


def test_rendezvous_moves_about_one_nth_on_a_join_and_only_to_the_newcomer():
    targets = [f"t{i}" for i in range(3000)]
    three = {t: owner_of(t, ["a", "b", "c"]) for t in targets}
    four = {t: owner_of(t, ["a", "b", "c", "d"]) for t in targets}
    moved = [t for t in targets if three[t] != four[t]]
    assert all(four[t] == "d" for t in moved)  # nothing moves between the old nodes
    assert 0.20 < len(moved) / len(targets) < 0.30  # about a quarter
    assert max(Counter(three.values()).values()) < 1.1 * len(targets) / 3  # balanced
    # a death moves only the dead node's targets
    two = {t: owner_of(t, ["a", "c"]) for t in targets}
    assert all(two[t] == three[t] for t in targets if three[t] != "b")


@pytest.mark.parametrize("patch, path, message", [
    ({"cluster": {"node": "n1", "site": "a"}}, "cluster", "a cluster needs the postgresql store"),
    ({"targets": [{"id": "t", "contract": "c1", "kind": "internet", "address": "127.0.0.1",
                   "vantage": {"sites": ["a", "b"], "quorum": 3}}]},
     "targets[0].vantage", "quorum 3 is larger than the number of sites (2)"),
    ({"targets": [{"id": "t", "contract": "c1", "kind": "internet", "address": "127.0.0.1",
                   "vantage": {"sites": ["a", "b", "c"], "quorum": 2}}]},
     "targets[0].vantage", "vantage sites need a cluster section"),
    ({"cluster": {"node": "n1", "site": "a", "heartbeat": "2s", "failover_delay": "5s"},
      "storage": {"backend": "postgresql", "dsn": "postgresql://x@127.0.0.1/x"}},
     "cluster.failover_delay", "must be at least 3 heartbeats of"),
])
def test_cluster_config_errors_name_the_key(patch, path, message):
    raw = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
           "targets": [{"id": "t", "contract": "c1", "kind": "internet", "address": "127.0.0.1"}], **patch}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert any(p.startswith(path) and message in p for p in info.value.problems), info.value.problems


# --------------------------------------------------------------------------- real nodes
CONFIG = """\
cluster: {{node: {node}, site: {site}, heartbeat: {heartbeat}s, failover_delay: {failover}s}}
storage: {{backend: postgresql, dsn: '{dsn}', flush_interval: 200ms, connect_timeout: 2s}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: {interval}s, probes: {{icmp: {{count: 1, timeout: 300ms}}}}}}
targets:
{targets}
"""


class Node:
    def __init__(self, tmp_path, dsn: str, name: str, site: str, n_targets: int = N_TARGETS, netns: str | None = None):
        self.name, self.site, self.port, self.dsn = name, site, free_port(), dsn
        self.path = tmp_path / f"{name}.yaml"
        self.write(n_targets)
        self.log = open(tmp_path / f"{name}.log", "w+")
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = spawn(prefix + SLAWATCH + ["run", "-c", str(self.path)], cwd=self.path.parent,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def write(self, n_targets: int) -> None:
        targets = "\n".join(f"  - {{id: t{i:03d}, contract: c1, kind: internet, address: 127.0.{i // 200}.{i % 200 + 1}}}"
                            for i in range(n_targets))
        self.path.write_text(CONFIG.format(node=self.name, site=self.site, heartbeat=HEARTBEAT, failover=FAILOVER,
                                           dsn=self.dsn, port=self.port, interval=INTERVAL, targets=targets))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        return stop(self.proc, timeout=30)

    def lines(self) -> list[dict]:
        self.log.seek(0)
        return [json.loads(x) for x in self.log.read().splitlines() if x.startswith("{")]


def status(node: Node) -> dict:
    r = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(node.path), "--json"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cycles_by_target(store, since: float) -> dict[str, list]:
    return {f"t{i:03d}": store.cycles(f"t{i:03d}", since, float("inf")) for i in range(N_TARGETS)}


def cycles_of_all(store, since: float, at_least: int = 2, targets=None, timeout: float = 20 * INTERVAL) -> dict:
    """Wait until every target (all, or those named) has ``at_least`` cycles since ``since``; return them. A
    condition, not a fixed window: on a busy machine the cycles come late, never fewer."""
    names = targets if targets is not None else [f"t{i:03d}" for i in range(N_TARGETS)]

    def enough():
        got = {t: store.cycles(t, since, float("inf")) for t in names}
        return got if all(len(cs) >= at_least for cs in got.values()) else None

    return wait_for(f"{at_least} cycles of every target", enough, timeout=timeout, step=INTERVAL / 2)


def assert_never_double_probed(cycles: dict[str, list]) -> None:
    """Two cycles of one target less than half an interval apart would be two nodes in one slot."""
    for target, cs in cycles.items():
        starts = sorted(c.started for c in cs)
        close = [(a, b) for a, b in zip(starts, starts[1:]) if b - a < INTERVAL / 2]
        assert not close, (target, close[:3], [c.node for c in cs][:6])


@pytest.mark.slow
def test_three_nodes_shard_fail_over_elect_one_leader_and_take_a_fourth(tmp_path, cluster_db):
    dsn, store = cluster_db
    nodes = {n: Node(tmp_path, dsn, n, "core") for n in ("n1", "n2", "n3")}
    try:
        st = wait_for("three live nodes and a leader", lambda: (lambda s: s if s["leader"] and sum(
            r["state"] == "live" for r in s["nodes"]) == 3 else None)(status(nodes["n1"])), timeout=60)
        # every target probed, each by exactly one node
        t0 = time.time()
        cycles = cycles_of_all(store, t0, at_least=3)
        owners = {t: {c.node for c in cs} for t, cs in cycles.items()}
        assert all(len(o) == 1 for o in owners.values()), [t for t, o in owners.items() if len(o) != 1]
        per_node = Counter(next(iter(o)) for o in owners.values())
        assert set(per_node) == {"n1", "n2", "n3"} and all(v >= N_TARGETS / 6 for v in per_node.values()), per_node
        st = status(nodes["n1"])  # the owned counts each node reports at its heartbeat, now settled
        assert sum(r["targets_owned"] for r in st["nodes"]) == N_TARGETS, st
        assert not any(r["config_differs"] for r in st["nodes"]), st  # they differ only in cluster.node
        assert st["lagging_targets"] == [], st

        # SIGKILL a node that is not the leader: its targets are probed again by the others within
        # failover_delay + one interval (+ a heartbeat to notice), nothing is probed twice, the gap is unknown
        victim = next(n for n in ("n1", "n2", "n3") if n != st["leader"])
        orphaned = sorted(t for t, o in owners.items() if o == {victim})
        nodes[victim].kill()
        killed = time.time()
        wait_for("the victim's targets taken over", lambda: all(  # the gap is written with the takeover's cycle
            any(c.node != victim for c in store.cycles(t, killed, float("inf"))) for t in orphaned),
            timeout=FAILOVER + 20 * INTERVAL)
        after = cycles_by_target(store, killed)
        for t in orphaned:
            took_over = [c for c in after[t] if c.node != victim]
            assert took_over, f"{t} was not taken over"
            assert took_over[0].started - killed <= FAILOVER + INTERVAL + 2 * HEARTBEAT + 0.5, (t, took_over[0].started - killed)
            gaps = [u for u in store.unknown_intervals(t, killed - 2 * INTERVAL, time.time()) if "no probe cycles" in u.reason]
            assert gaps, f"the takeover gap of {t} is not unknown time"
        assert not [o for o in store.outages() if o.kind == "down"]  # never downtime
        assert_never_double_probed(cycles_by_target(store, t0))

        # SIGKILL the leader: another node leads within failover_delay
        leader = st["leader"]
        nodes[leader].kill()
        lost_at = time.time()
        new = wait_for("a new leader", lambda: (lambda s: s["leader"] if s["leader"] not in (None, leader) else None)(
            status(nodes[next(n for n in nodes if n not in (leader, victim))])), timeout=FAILOVER + 10, step=0.2)
        assert time.time() - lost_at <= FAILOVER + 2 * HEARTBEAT + 3, time.time() - lost_at  # (status runs take ~1 s)
        survivor = next(n for n in nodes if n not in (leader, victim))
        assert new == survivor

        # two new nodes join: each takes about its share, none is lost or doubled
        nodes["n4"] = Node(tmp_path, dsn, "n4", "core")
        nodes["n5"] = Node(tmp_path, dsn, "n5", "core")
        wait_for("three live nodes", lambda: sum(r["state"] == "live" for r in status(nodes[survivor])["nodes"]) == 3,
                 timeout=60)
        wait_for("the shards settled on three nodes", lambda: (lambda s: sum(
            r["targets_owned"] for r in s["nodes"] if r["state"] == "live") == N_TARGETS and all(
            r["targets_owned"] for r in s["nodes"] if r["state"] == "live"))(status(nodes[survivor])), timeout=60)
        t1 = time.time() + 2 * HEARTBEAT  # past the heartbeat that moved the last unit
        cycles = cycles_of_all(store, t1, at_least=3)
        owners = {t: {c.node for c in cs} for t, cs in cycles.items()}
        assert all(len(o) == 1 for o in owners.values()), {t: o for t, o in owners.items() if len(o) != 1}
        assert Counter(next(iter(o)) for o in owners.values()).keys() == {survivor, "n4", "n5"}
        assert_never_double_probed(cycles_by_target(store, t0))
    finally:
        codes = {n: node.stop() for n, node in nodes.items()}
    assert all(codes[n] == 0 for n in nodes if n not in (victim, leader)), codes
    for n, node in nodes.items():
        assert not [x for x in node.lines() if x["level"] == "error" and "Traceback" in x.get("exc", "")], n


@pytest.mark.slow
def test_a_reload_on_one_node_is_picked_up_by_every_node(tmp_path, cluster_db):
    """n1's file gains eight targets and n1 reloads: it publishes its shared sections, n2 adopts them at its next
    heartbeat, and the new targets are sharded over both nodes. A node started later with an old file runs it,
    and cluster status shows its config differing."""
    dsn, store = cluster_db
    nodes = {n: Node(tmp_path, dsn, n, "core", n_targets=8) for n in ("n1", "n2")}
    try:
        wait_for("two live nodes", lambda: sum(r["state"] == "live" for r in status(nodes["n1"])["nodes"]) == 2,
                 timeout=60)
        before = {r["config_hash"] for r in status(nodes["n1"])["nodes"]}
        assert len(before) == 1
        nodes["n1"].write(16)
        nodes["n1"].proc.send_signal(signal.SIGHUP)
        wait_for("both nodes on the new config", lambda: (lambda hashes: len(hashes) == 1 and hashes != before)(
            {r["config_hash"] for r in status(nodes["n1"])["nodes"]}), timeout=30)
        t0 = time.time()
        new = cycles_of_all(store, t0, at_least=2, targets=[f"t{i:03d}" for i in range(8, 16)])
        assert {c.node for cs in new.values() for c in cs} == {"n1", "n2"}  # n2 probes its share of them
        assert any("cluster config version 1 from n1" in x["msg"] for x in nodes["n2"].lines())
        assert any("config published to the cluster as version 1" in x["msg"] for x in nodes["n1"].lines())

        # a third node started from an old file runs it, and says so; status shows it differing
        nodes["n3"] = Node(tmp_path, dsn, "n3", "core", n_targets=8)
        wait_for("n3 live", lambda: any(r["node"] == "n3" and r["state"] == "live" for r in status(nodes["n1"])["nodes"]),
                 timeout=60)
        rows = {r["node"]: r for r in status(nodes["n1"])["nodes"]}
        assert rows["n3"]["config_differs"] and not rows["n2"]["config_differs"]
        assert any("differs from the cluster's latest published one" in x["msg"] for x in nodes["n3"].lines())
    finally:
        for node in nodes.values():
            node.stop()


def test_cluster_status_lists_lagging_targets(tmp_path, cluster_db):
    """A target whose last stored cycle is older than three intervals is a lagging shard, named in the status."""
    from monitor.store import Batch, StateRecord

    dsn, store = cluster_db
    now = time.time()
    store.write(Batch(states={"t000": StateRecord("t000", "up", now - 100, now - 100, {"last_cycle": now - 100}),
                              "t001": StateRecord("t001", "up", now - 100, now, {"last_cycle": now - 0.5})}))
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(node="n1", site="core", heartbeat=HEARTBEAT, failover=FAILOVER, dsn=dsn,
                                  port=free_port(), interval=INTERVAL,
                                  targets="  - {id: t000, contract: c1, kind: internet, address: 127.0.0.1}\n"
                                          "  - {id: t001, contract: c1, kind: internet, address: 127.0.0.2}"))
    r = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(path), "--json"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    [lag] = json.loads(r.stdout)["lagging_targets"]
    assert lag["target"] == "t000" and 99 < lag["last_cycle_age_s"] < 120
    r = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(path)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert "lagging: 1 targets whose last cycle is older than 3 intervals: t000" in r.stdout


@pytest.mark.slow
def test_a_second_node_with_the_same_name_is_refused(tmp_path, cluster_db):
    dsn, store = cluster_db
    first = Node(tmp_path, dsn, "same", "core", n_targets=2)
    try:
        wait_for("the first node", lambda: any(n.node == "same" for n in store.cluster_nodes()), timeout=30)
        twin_dir = tmp_path / "twin"
        twin_dir.mkdir()
        twin = Node(twin_dir, dsn, "same", "core", n_targets=2)
        assert twin.proc.wait(timeout=60) == 2
        twin.log.seek(0)
        err = twin.log.read()
        assert "cluster.node 'same' is already live" in err and "Traceback" not in err
    finally:
        first.stop()


def test_cluster_status_without_a_cluster_is_a_clear_error(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("contracts: []\ntargets: []\n")
    r = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(conf)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "no cluster section" in r.stderr


def test_fencing_refuses_a_write_under_an_expired_lease(cluster_db):
    from monitor.errors import FencedError
    from monitor.store import Batch, CycleRecord
    from monitor.store.base import Fence

    dsn, store = cluster_db
    epoch = store.cluster_join("f1", "core", "inst-1", "h", "v", "host", 1, 1.0)
    fence = Fence("f1", "inst-1", epoch, 1.0)
    store.write(Batch(cycles=[CycleRecord("t", "icmp", 1.0, 0.0, True, "good", None)]), fence=fence)
    assert store.cluster_heartbeat(fence, 1, "h")
    time.sleep(1.2)  # the lease expires
    with pytest.raises(FencedError):
        store.write(Batch(cycles=[CycleRecord("t", "icmp", 2.0, 0.0, True, "good", None)]), fence=fence)
    assert not store.cluster_heartbeat(fence, 1, "h")  # an expired lease is not renewed: the node must rejoin
    again = store.cluster_join("f1", "core", "inst-1", "h", "v", "host", 1, 1.0)
    assert again > epoch
    with pytest.raises(FencedError):  # the old epoch stays fenced after the rejoin
        store.write(Batch(cycles=[CycleRecord("t", "icmp", 3.0, 0.0, True, "good", None)]), fence=fence)
    assert [c.started for c in store.cycles("t", 0, 10)] == [1.0]
    with pytest.raises(ClusterError):
        store.cluster_join("f1", "core", "inst-2", "h", "v", "host", 2, 1.0)  # a live name: refused


def test_a_leader_term_that_is_over_writes_nothing(cluster_db):
    """#33: the leader lease in the database's time, and the term every leader-only write presents. A lease
    that ran out goes to another node under a higher term; the old holder's writes under its old term (a
    batch, the ledger's transaction, an outbox row) are refused, and it cannot take the lease back while the
    new one is live. A renewal keeps the term."""
    from dataclasses import replace

    from monitor.errors import FencedError
    from monitor.events import outage_event
    from monitor.store import Batch
    from monitor.store.base import Delivered, Fence

    dsn, store = cluster_db
    fences = {}
    for i, name in enumerate(("l1", "l2"), 1):
        epoch = store.cluster_join(name, "core", f"inst-{i}", "h", "v", "host", i, 30.0)
        fences[name] = Fence(name, f"inst-{i}", epoch, 30.0)
    assert store.cluster_leader() is None and store.cluster_leadership() is None
    first = store.leader_lease(fences["l1"], 0.6)
    assert first is not None and store.cluster_leader() == "l1"
    assert store.leader_lease(fences["l2"], 30.0) is None  # held, not expired
    renewed = store.leader_lease(fences["l1"], 0.6)
    assert renewed is not None and renewed.term == first.term and renewed.since == first.since
    old = replace(fences["l1"], term=first.term)
    store.write(Batch(events=[outage_event("outage_started", "c1", "t1", 1.0, None)]), fence=old)  # its term holds
    time.sleep(0.8)  # the lease runs out in the database's time
    info = store.cluster_leadership()
    assert store.cluster_leader() is None and info is not None and info.node == "l1" and info.remaining < 0
    second = store.leader_lease(fences["l2"], 30.0)
    assert second is not None and second.term > first.term and store.cluster_leader() == "l2"
    with pytest.raises(FencedError, match="term"):
        store.write(Batch(events=[outage_event("outage_started", "c1", "t2", 2.0, None)]), fence=old)
    with pytest.raises(FencedError, match="term"):
        with store.tickets_tx(old) as tx:
            tx.open_root_ids()
    with pytest.raises(FencedError, match="term"):
        store.outbox_delivered(Delivered(1, 1, "s", "open", "x", 3.0), old)
    assert store.leader_lease(fences["l1"], 30.0) is None  # no way back while l2's lease lives
    assert [e.key for e in store.events(0, 10)] == ["outage_started:t1:1000"]  # nothing of the stale term
    store.write(Batch(events=[outage_event("outage_started", "c1", "t3", 3.0, None)]),
                fence=replace(fences["l2"], term=second.term))
    store.leader_release(fences["l2"])
    assert store.cluster_leader() is None
    # the history: each term once, its holder, and lease spans that never overlap in the database's time
    terms = store.leader_terms()
    assert [(t.node, t.term) for t in terms] == [("l1", first.term), ("l2", second.term)]
    assert terms[0].since == pytest.approx(first.since) and terms[0].expires <= terms[1].since
    assert terms[1].remaining <= 0  # released
    assert store.leader_terms(since=terms[1].expires + 1) == []


def _cuttable_database(netlab, name: str):
    """A PostgreSQL of its own that a lab host's namespace reaches only through its veth (cut it to partition
    a node in that namespace from the database, and nothing else): (host, cluster, migrated store, the DSN
    from here, the DSN from the namespace)."""
    from pgcluster import PgCluster

    from monitor.store.postgres import PostgresStore

    site = netlab.add_host(name)  # its veth: 198.19.<i>.1 here, 198.19.<i>.2 in the namespace
    host_side = f"198.19.{site.index}.1"
    pg = PgCluster(listen=(host_side,))
    db = pg.create_db().rsplit("/", 1)[1]
    store = PostgresStore(pg.dsn(db))
    store.migrate()
    return site, pg, store, pg.dsn(db), pg.dsn(db, host=host_side)


@pytest.mark.slow
def test_a_node_partitioned_from_postgresql_stops_and_its_shard_moves(tmp_path, netlab, icmp_mode):
    """n3 runs in a namespace whose only way to PostgreSQL is its veth; cutting it partitions n3 from the
    database only. n3 stops probing within failover_delay, n1 and n2 take its shard, and after the heal n3
    rejoins under a new epoch: no slot is probed twice and nothing n3 measured after its lease expired is stored."""
    site, pg, store, near, far = _cuttable_database(netlab, "pgpart")
    nodes: dict[str, Node] = {}
    try:
        nodes["n1"] = Node(tmp_path, near, "n1", "core")
        nodes["n2"] = Node(tmp_path, near, "n2", "core")
        nodes["n3"] = Node(tmp_path, far, "n3", "core", netns=site.netns)
        wait_for("three live nodes", lambda: sum(r["state"] == "live" for r in status(nodes["n1"])["nodes"]) == 3,
                 timeout=60)
        wait_for("the shards settled on three nodes", lambda: (lambda s: sum(
            r["targets_owned"] for r in s["nodes"] if r["state"] == "live") == N_TARGETS and all(
            r["targets_owned"] for r in s["nodes"] if r["state"] == "live"))(status(nodes["n1"])), timeout=60)
        t0 = time.time() + 2 * HEARTBEAT
        n3_targets = sorted(t for t, cs in cycles_of_all(store, t0, at_least=2).items() if {c.node for c in cs} == {"n3"})
        assert len(n3_targets) >= N_TARGETS / 6

        site.cut()
        cut = time.time()
        wait_for("n3's shard taken over", lambda: all(
            any(c.node in ("n1", "n2") for c in store.cycles(t, cut, float("inf"))) for t in n3_targets),
            timeout=FAILOVER + 20 * INTERVAL)
        during = cycles_by_target(store, cut)
        for t in n3_targets:
            assert [c for c in during[t] if c.node in ("n1", "n2")], f"{t} was not taken over"
        n3_epoch = next(n.epoch for n in store.cluster_nodes() if n.node == "n3")

        site.restore()
        wait_for("n3 back under a new epoch", lambda: next(
            (n.epoch for n in store.cluster_nodes() if n.node == "n3" and n.alive(FAILOVER)), n3_epoch) > n3_epoch,
            timeout=30)
        back = time.time()
        wait_for("n3 probing again", lambda: any(c.node == "n3" for t in n3_targets
                                                 for c in store.cycles(t, back, float("inf"))), timeout=20 * INTERVAL)
        cycles = cycles_by_target(store, t0)
        assert_never_double_probed(cycles)
        lease_end = cut + FAILOVER + 1.0  # the lease cannot outlive the last heartbeat before the cut by more
        late = [(t, c.started - cut) for t, cs in cycles.items() for c in cs
                if c.node == "n3" and cut + FAILOVER < c.started and c.started < lease_end + 2 * HEARTBEAT]
        assert not late, late[:5]  # nothing from n3 between its lease's end and its rejoin
        assert any(c.node == "n3" and c.started > cut + FAILOVER for cs in cycles.values() for c in cs), \
            "n3 probes again after rejoining"
        lines = nodes["n3"].lines()
        assert any("rejoining under a new epoch" in x["msg"] for x in lines)
        assert not [x for x in lines if "Traceback" in x.get("exc", "")]
        store.close()
    finally:
        for node in nodes.values():
            node.stop()
        pg.close()


@pytest.mark.slow
def test_a_restart_after_a_crash_takes_its_name_back_at_once(tmp_path, cluster_db):
    """systemd restarts a crashed node within seconds, long before its lease ends: a dead process of this host
    is taken over at once (the new epoch fences it), where a live one is refused (the test above)."""
    dsn, store = cluster_db
    node = Node(tmp_path, dsn, "phoenix", "core", n_targets=2)
    try:
        wait_for("the node", lambda: any(n.node == "phoenix" for n in store.cluster_nodes()), timeout=30)
        first = next(n.epoch for n in store.cluster_nodes() if n.node == "phoenix")
        node.kill()
        node.proc = spawn(SLAWATCH + ["run", "-c", str(node.path)], cwd=node.path.parent, stdout=subprocess.DEVNULL,
                                     stderr=node.log)
        t0 = time.time()
        wait_for("the restart to join", lambda: next(
            (n.epoch for n in store.cluster_nodes() if n.node == "phoenix" and n.pid == node.proc.pid), 0) > first,
            timeout=FAILOVER)
        assert time.time() - t0 < FAILOVER and node.proc.poll() is None
        assert any("taking over cluster.node phoenix from a dead process" in x["msg"] for x in node.lines())
    finally:
        node.stop()


@pytest.mark.slow
def test_a_leader_cut_from_postgresql_is_replaced_within_the_lease(tmp_path, netlab, icmp_mode):
    """#33: the leader (n3, in a namespace whose only way to PostgreSQL is its veth) is cut from the database
    silently, with PostgreSQL's keepalive settings at their defaults. Its lease ends in the database's time
    and another node leads within failover_delay + 2 heartbeats, under a higher term (an advisory lock on the
    cut leader's session kept the cluster leaderless for the server's keepalive time: 2 h 11 min). After the
    heal n3 does not take the lead back."""
    site, pg, store, near, far = _cuttable_database(netlab, "leadcut")
    nodes: dict[str, Node] = {}
    try:
        nodes["n3"] = Node(tmp_path, far, "n3", "core", netns=site.netns)
        wait_for("n3 leads", lambda: store.cluster_leader() == "n3", timeout=60, step=0.1)
        nodes["n1"] = Node(tmp_path, near, "n1", "core")
        nodes["n2"] = Node(tmp_path, near, "n2", "core")
        wait_for("three live nodes", lambda: sum(n.alive(FAILOVER) for n in store.cluster_nodes()) == 3, timeout=60)
        before = store.cluster_leadership()
        assert before is not None and before.node == "n3"

        site.cut()
        cut = time.time()
        new = wait_for("another leader", lambda: (lambda i: i if i and i.node != "n3" and i.remaining > 0 else None)(
            store.cluster_leadership()), timeout=FAILOVER + 10, step=0.05)
        took = time.time() - cut
        assert took <= FAILOVER + 2 * HEARTBEAT + 0.5, took
        assert new.term > before.term and new.since >= cut - 1
        time.sleep(2 * HEARTBEAT)
        status_during = status(nodes["n1"])
        assert status_during["leader"] == new.node and status_during["leader_lease"]["term"] == new.term

        site.restore()
        wait_for("n3 live again", lambda: any(n.node == "n3" and n.alive(FAILOVER) for n in store.cluster_nodes()),
                 timeout=30)
        for _ in range(int(4 * HEARTBEAT / 0.1)):  # the lead stays where it went
            info = store.cluster_leadership()
            assert info is not None and info.node == new.node and info.term == new.term
            time.sleep(0.1)
        lines = nodes["n3"].lines()
        assert any("no longer the cluster's leader" in x["msg"] for x in lines), [x["msg"] for x in lines][-10:]
        assert not [x for x in lines if "Traceback" in x.get("exc", "")]
        store.close()
    finally:
        for node in nodes.values():
            node.stop()
        pg.close()
    print(f"takeover after the leader's cut: {took:.2f} s (failover_delay {FAILOVER} s, heartbeat {HEARTBEAT} s)")


@pytest.mark.slow
def test_a_paused_leader_steps_down_and_never_leads_again_under_its_old_term(tmp_path, cluster_db):
    """#33: SIGSTOP of the leader for longer than its lease. Another node leads within failover_delay + 2
    heartbeats under a higher term; after SIGCONT the paused node exports that it does not lead (at once: its
    lease is counted on its own monotonic clock), the lead stays with the new holder, and nothing it writes
    after the resume is refused with a traceback."""
    from test_daemon_e2e import scrape

    dsn, store = cluster_db
    nodes = {n: Node(tmp_path, dsn, n, "core", n_targets=12) for n in ("n1", "n2", "n3")}
    try:
        wait_for("three live nodes and a leader", lambda: store.cluster_leader() is not None and sum(
            n.alive(FAILOVER) for n in store.cluster_nodes()) == 3, timeout=60)
        before = store.cluster_leadership()
        assert before is not None
        paused = nodes[before.node]
        paused.proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        try:
            new = wait_for("another leader", lambda: (lambda i: i if i and i.node != before.node and i.remaining > 0
                                                      else None)(store.cluster_leadership()),
                           timeout=FAILOVER + 10, step=0.05)
            took = time.time() - stopped
            time.sleep(max(0.0, FAILOVER + 2 - (time.time() - stopped)))  # paused for longer than its lease
        finally:
            paused.proc.send_signal(signal.SIGCONT)
        assert took <= FAILOVER + 2 * HEARTBEAT + 0.5, took
        assert new.term > before.term
        leads = (("slawatch_cluster_leader", ()))
        assert wait_for("the resumed node's exporter", lambda: scrape(paused.port), timeout=10)[leads] == 0.0
        for _ in range(int(4 * HEARTBEAT / 0.1)):
            info = store.cluster_leadership()
            assert info is not None and info.node == new.node and info.term == new.term
            time.sleep(0.1)
        assert scrape(paused.port)[leads] == 0.0 and scrape(nodes[new.node].port)[leads] == 1.0
        seen = scrape(nodes[new.node].port)  # what the shipped cluster alerts read
        assert seen[("slawatch_cluster_site_live_nodes", (("site", "core"),))] == 3.0
        assert seen[("slawatch_cluster_config_versions", ())] == 1.0
    finally:
        codes = {n: node.stop() for n, node in nodes.items()}
    assert all(c == 0 for c in codes.values()), codes
    for n, node in nodes.items():
        assert not [x for x in node.lines() if "Traceback" in x.get("exc", "")], n
    print(f"takeover after SIGSTOP of the leader: {took:.2f} s (failover_delay {FAILOVER} s, heartbeat {HEARTBEAT} s)")


@pytest.mark.slow
def test_sla_series_exist_once_across_the_cluster_for_every_target(tmp_path, cluster_db):
    """#33: the leader exports slawatch_sla_* for every configured target (its own, the other node's, and a
    multi-site target whose units the sites' nodes probe), the other node none: each series once across the
    cluster. They came only for the leader's own units before."""
    from test_daemon_e2e import scrape

    dsn, store = cluster_db
    targets = "\n".join(f"  - {{id: t{i}, contract: c1, kind: internet, address: 127.0.0.{i + 1}}}" for i in range(6))
    targets += "\n  - {id: m1, contract: c1, kind: internet, address: 127.0.1.1, vantage: {sites: [a, b], quorum: 1}}"
    nodes = {}
    for name, site in (("n1", "a"), ("n2", "b")):
        node = Node.__new__(Node)
        node.name, node.site, node.port, node.dsn = name, site, free_port(), dsn
        node.path = tmp_path / f"{name}.yaml"
        node.path.write_text(CONFIG.format(node=name, site=site, heartbeat=HEARTBEAT, failover=FAILOVER, dsn=dsn,
                                           port=node.port, interval=INTERVAL, targets=targets))
        node.log = open(tmp_path / f"{name}.log", "w+")
        node.proc = spawn(SLAWATCH + ["run", "-c", str(node.path)], cwd=node.path.parent, stdout=subprocess.DEVNULL,
                          stderr=node.log)
        nodes[name] = node
    configured = {f"t{i}" for i in range(6)} | {"m1"}

    def series() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, node in nodes.items():
            for (metric, labels), _value in scrape(node.port).items():
                if metric == "slawatch_sla_availability_ratio" and dict(labels).get("window") == "month":
                    out.setdefault(dict(labels)["target"], []).append(name)
        return out

    try:
        wait_for("two live nodes and a leader", lambda: store.cluster_leader() is not None and sum(
            n.alive(FAILOVER) for n in store.cluster_nodes()) == 2, timeout=60)
        seen = wait_for("every target's SLA series", lambda: (lambda s: s if set(s) == configured else None)(
            series()), timeout=60)
        leader = store.cluster_leader()
        assert all(where == [leader] for where in seen.values()), seen  # once, on the leader
        owners = {c.node for t in configured - {"m1"} for c in store.cycles(t, time.time() - 5, float("inf"))}
        assert owners == {"n1", "n2"}  # some of those targets are probed by the node that does not lead
        # slawatch status: the multi-site target's last cycle, RTT and loss, and each site's (it said "never")
        r = subprocess.run(SLAWATCH + ["status", "-c", str(nodes["n1"].path), "--json"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        [m1] = [row for row in json.loads(r.stdout) if row["target"] == "m1"]
        assert m1["last_cycle"] is not None and time.time() - m1["last_cycle"] < 5 * INTERVAL, m1
        assert m1["rtt_median"] is not None and m1["loss"] == 0.0, m1
        assert set(m1["sites"]) == {"a", "b"} and all(v["last_cycle"] and v["state"] == "up"
                                                      for v in m1["sites"].values()), m1
        text = subprocess.run(SLAWATCH + ["status", "-c", str(nodes["n1"].path)], cwd=REPO, capture_output=True,
                              text=True, timeout=60).stdout
        assert "  @a" in text and "  @b" in text and "never" not in text, text
    finally:
        codes = {n: node.stop() for n, node in nodes.items()}
    assert all(c == 0 for c in codes.values()), codes


def test_a_batch_measured_under_an_expired_lease_is_adopted_for_the_units_nobody_else_measured(cluster_db):
    """#33: a database outage outlasts a node's lease; it rejoins under a new epoch. What it measured meanwhile
    is written under the new lease for the units no other node wrote a cycle of since the batch's first cycle
    (it was their only prober); a unit another node took over meanwhile is left out, whole (cycles, state)."""
    from monitor.errors import FencedError
    from monitor.store import Batch, CycleRecord, StateRecord
    from monitor.store.base import Fence

    dsn, store = cluster_db
    t = float(int(time.time()))  # whole seconds: timestamptz keeps microseconds
    old = Fence("n1", "i1", store.cluster_join("n1", "core", "i1", "h", "v", "host", 1, 0.3), 0.3)
    other = Fence("n2", "i2", store.cluster_join("n2", "core", "i2", "h", "v", "host", 2, 30.0), 30.0)

    def cycle(unit, at, node):
        return CycleRecord(unit, "icmp", at, 0.01, True, "up", None, node=node, site="core")

    batch = Batch(cycles=[cycle(u, t + i, "n1") for u in ("u1", "u2") for i in range(3)],
                  states={u: StateRecord(u, "up", t, t + 2, {"last_cycle": t + 2}) for u in ("u1", "u2")})
    store.write(Batch(cycles=[cycle("u2", t + 1.5, "n2")]), fence=other)  # n2 took u2 over meanwhile
    time.sleep(0.5)  # n1's lease (0.3 s in the database's time) runs out
    new = Fence("n1", "i1b", store.cluster_join("n1", "core", "i1b", "h", "v", "host", 3, 0.3), 30.0)
    with pytest.raises(FencedError):
        store.write(batch, fence=old)  # the old lease is over
    assert store.adopt(batch, None, new) == {"u2"}
    assert [c.started for c in store.cycles("u1", t - 1, t + 10)] == [t, t + 1, t + 2]
    assert [(c.node, c.started) for c in store.cycles("u2", t - 1, t + 10)] == [("n2", t + 1.5)]
    assert store.state("u1") is not None and store.state("u2") is None
