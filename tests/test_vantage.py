"""N-of-M vantage consensus with real parts: three slawatch nodes, each in the network namespace of its own
site with its own uplink, probing customer hosts in namespaces of their own, against a real PostgreSQL.

Cutting one site's uplink must give no customer outage and no ticket, only that site's monitoring outage;
cutting a customer's host must give one outage per circuit, dated from the quorum's first bad cycle, and
one ticket each."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from daemonconfig import CLUSTER_NODE
from conftest import REPO, SLAWATCH, needs_root, wait_for
from procs import spawn, stop

pytestmark = [needs_root, pytest.mark.slow]

HEARTBEAT, FAILOVER, INTERVAL = 0.5, 3.0, 1.0
SITES = ("a", "b", "c")
CIRCUITS = [f"t{i}" for i in range(1, 5)]  # on the customer host that gets cut
OTHER = "t5"  # on another customer's host, never cut

CONFIG = CLUSTER_NODE + """\
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: {interval}s, failure_threshold: 2, recovery_threshold: 2,
            probes: {{icmp: {{count: 1, timeout: 300ms}}}}, vantage: {{sites: [a, b, c], quorum: 2}}}}
targets:
{targets}
"""


class SiteNode:
    def __init__(self, tmp_path, dsn: str, site: str, netns: str, addresses: dict[str, str]):
        self.name = f"n{site}"
        targets = "\n".join(f"  - {{id: {t}, contract: c1, kind: internet, address: {a}}}" for t, a in addresses.items())
        self.path = tmp_path / f"{self.name}.yaml"
        self.path.write_text(CONFIG.format(node=self.name, site=site, heartbeat=HEARTBEAT, failover=FAILOVER,
                                           dsn=dsn, interval=INTERVAL, targets=targets))
        self.log = open(tmp_path / f"{self.name}.log", "w+")
        self.proc = spawn(["ip", "netns", "exec", netns, *SLAWATCH, "run", "-c", str(self.path)],
                                     cwd=self.path.parent, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self) -> None:
        stop(self.proc, timeout=30)

    def lines(self) -> list[dict]:
        self.log.seek(0)
        return [json.loads(x) for x in self.log.read().splitlines() if x.startswith("{")]


def _down_outages(store, target: str) -> list:
    return [o for o in store.outages(target) if o.kind == "down"]


def test_one_sites_uplink_is_its_own_outage_a_customers_host_is_the_customers(tmp_path, netlab, pg_cluster, icmp_mode):
    from netlab import SiteLab
    from pgcluster import PgCluster

    from monitor.store.postgres import PostgresStore

    lab = SiteLab(netlab, list(SITES), ["acme", "other"])
    acme, other = lab.customers["acme"], lab.customers["other"]
    addresses = {t: acme.address(i) for i, t in enumerate(CIRCUITS, 1)} | {OTHER: other.address(1)}
    pg = PgCluster(listen=tuple(f"198.19.{h.index}.1" for h in lab.sites.values()))
    nodes: list[SiteNode] = []
    try:
        db = pg.create_db().rsplit("/", 1)[1]
        store = PostgresStore(pg.dsn(db))
        store.migrate()
        for site, host in lab.sites.items():
            nodes.append(SiteNode(tmp_path, pg.dsn(db, host=f"198.19.{host.index}.1"), site, host.netns, addresses))
        everything = [*CIRCUITS, OTHER]
        wait_for("every target up by consensus", lambda: all(
            (st := store.state(t)) is not None and st.state == "up" for t in everything), timeout=60)
        # every site probes every target (one unit per site), each from its own node. The consensus is up once a
        # quorum (2 of 3 sites) says so: the third site's node may still be starting, so wait for its cycles too
        # (a unit left unprobed fails here, naming it), then check who wrote them
        units = [f"{t}@{site}" for t in everything for site in SITES]

        def unprobed() -> list[str]:
            return [u for u in units if not store.cycles(u, time.time() - 5 * INTERVAL, float("inf"))]

        try:
            wait_for("a recent cycle of every unit", lambda: not unprobed(), timeout=30)
        except AssertionError:
            raise AssertionError(f"units without a cycle in the last {5 * INTERVAL:g} s: {unprobed()}; nodes' logs: "
                                 + "; ".join(f"{n.name}: {n.lines()[-5:]}" for n in nodes)) from None
        for t in everything:
            for site in SITES:
                cs = store.cycles(f"{t}@{site}", time.time() - 5 * INTERVAL, float("inf"))
                assert {c.site for c in cs} == {site} and {c.node for c in cs} == {f"n{site}"}, (t, site)

        # 1. site a loses its uplink: its own monitoring outage, no customer outage, no ticket
        lab.cut("a")
        cut = time.time()
        wait_for("site a's monitoring outage", lambda: any(
            e.kind == "site_outage_started" and e.data["site"] == "a" for e in store.events(cut - 1, time.time() + 1)),
            timeout=20)
        wait_for("site a's own view of every target down", lambda: all(_down_outages(store, f"{t}@a")
                                                                      for t in everything), timeout=20 * INTERVAL)
        for t in everything:
            assert _down_outages(store, t) == [], t
        assert store.tickets(contract="c1") == []
        status = subprocess.run(SLAWATCH + ["cluster", "status", "-c", str(nodes[0].path), "--json"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "a" in json.loads(status.stdout)["site_outages"]
        lab.restore("a")
        wait_for("site a back", lambda: any(
            e.kind == "site_outage_ended" and e.data["site"] == "a" for e in store.events(cut, time.time() + 1)),
            timeout=20)
        # the site's dark time is unknown for its own view only, never the customers'
        assert any("site a monitoring outage" in u.reason for u in store.unknown_intervals(f"{CIRCUITS[0]}@a", cut - 1,
                                                                                        time.time()))
        assert not [u for u in store.unknown_intervals(CIRCUITS[0], cut - 1, time.time()) if u.end > cut]
        wait_for("site a sees them up again", lambda: all(
            (st := store.state(f"{t}@a")) is not None and st.state == "up" for t in everything), timeout=20)

        # 2. the customer's host goes away: one outage per circuit from the quorum's first bad cycle, one ticket
        lab.cut("acme")
        cut = time.time()
        wait_for("four outages", lambda: all(_down_outages(store, t) for t in CIRCUITS), timeout=20)
        time.sleep(2 * INTERVAL)
        for t in CIRCUITS:
            [outage] = _down_outages(store, t)
            firsts = sorted(max(o.start for o in _down_outages(store, f"{t}@{site}")) for site in SITES)
            assert outage.start == pytest.approx(firsts[1], abs=0.002)  # the 2nd of 3 sites' first bad cycle
            assert cut - 1 < outage.start < cut + 3 * INTERVAL
            assert set(outage.evidence["sites"]) == set(SITES) and outage.evidence["quorum"] == 2
        assert _down_outages(store, OTHER) == []
        tickets = store.tickets(contract="c1")
        assert sorted(t.incident_key for t in tickets) == sorted(f"outage:c1:{t}" for t in CIRCUITS)
        lab.restore("acme")
        wait_for("the outages end", lambda: all(o.end is not None for t in CIRCUITS for o in _down_outages(store, t)),
                 timeout=20)
        for t in CIRCUITS:
            [outage] = _down_outages(store, t)
            assert outage.end - outage.start < 15
        assert len(store.tickets(contract="c1")) == len(CIRCUITS)  # still one each
        # the month's report keeps each site's evidence: which sites saw it, their last good and first bad cycles
        month = time.strftime("%Y-%m", time.gmtime())
        out = tmp_path / "report.json"
        r = subprocess.run(SLAWATCH + ["report", "-c", str(nodes[0].path), "--month", month, "--format", "json",
                                        "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        docs = {t["id"]: t for t in json.loads(out.read_text())["contracts"][0]["targets"]}
        for t in CIRCUITS:
            assert docs[t]["vantage"] == {"sites": list(SITES), "quorum": 2}
            [item] = [i for i in docs[t]["outages"]["items"] if i["start"] >= time.strftime("%Y", time.gmtime())
                      and i["probe_evidence"].get("quorum")]
            sites = item["probe_evidence"]["sites"]
            assert set(sites) == set(SITES) and all(sites[x]["saw_it_down"] for x in SITES)
            assert all(sites[x]["first_bad"]["at"] >= cut - 1 and sites[x]["last_good"]["at"] < sites[x]["first_bad"]["at"]
                       for x in SITES)
        for node in nodes:
            assert not [x for x in node.lines() if "Traceback" in x.get("exc", "")], node.name
        store.close()
    finally:
        for node in nodes:
            node.stop()
        pg.close()
