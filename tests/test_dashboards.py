"""Dashboards and rules, proven from Prometheus's side: a real Prometheus (Debian) scrapes a real
`slawatch run`, and every panel's PromQL must return data. Also the JSON's structure, promtool, and the
consistency of the exported month-to-date availability with the engine's figure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SLAWATCH, free_port
from procs import spawn, stop

DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
#: the sites dashboard needs a cluster (test_sites_dashboard_against_a_real_cluster); the others one node
CLUSTER_DASHBOARDS = [p for p in DASHBOARDS if p.name == "sites.json"]
#: the self-monitoring dashboard is per slawatch instance, not per contract
SELF_DASHBOARDS = [p for p in DASHBOARDS if p.name == "self.json"]
NODE_DASHBOARDS = [p for p in DASHBOARDS if p not in CLUSTER_DASHBOARDS]
RULES = REPO / "dashboards" / "prometheus"
#: what the live stack could start (a Request Tracker for the customer-request panel)
LIVE: dict[str, bool] = {"requests": False}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panel_queries(d: dict) -> list[tuple[str, str]]:
    out = [(f"{d['uid']}/{p['title']}", t["expr"]) for p in d["panels"] for t in p["targets"]]
    out += [(f"{d['uid']}/annotation {a['name']}", a["expr"]) for a in d["annotations"]["list"] if "expr" in a]
    return out


#: families beyond the default series budget (monitor/metrics/targets.py) and the option that adds them
OPT_IN = {"slawatch_icmp_rtt_seconds": "histograms", "slawatch_sla_excluded_seconds": "detail",
          "slawatch_sla_at_risk": "detail", "slawatch_sla_breached": "detail", "slawatch_jitter_rfc3550": "detail",
          "slawatch_sla_error_budget_remaining_seconds": "detail", "slawatch_target_last_cycle": "detail",
          "slawatch_voice_r_factor_window": "detail", "slawatch_sla_burn_rate": "burn_rates",
          "slawatch_probe_phase_seconds": "phases"}


def test_panels_on_opt_in_families_say_which_option_they_need():
    """The live stack below turns the opt-in families on; every other panel must work on the defaults."""
    for path in DASHBOARDS:
        d = load(path)
        for p in d["panels"]:
            for family, option in OPT_IN.items():
                if any(family in t["expr"] for t in p["targets"]):
                    assert f"exporter.per_target.{option}: true" in p.get("description", ""), (path.name, p["title"])


def test_dashboard_structure():
    assert len(DASHBOARDS) == 6 and len(CLUSTER_DASHBOARDS) == 1 and len(SELF_DASHBOARDS) == 1
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == 6 and all(u.startswith("slawatch-") for u in uids)
    for path in DASHBOARDS:
        d = load(path)
        names = [v["name"] for v in d["templating"]["list"]]
        extra = ["site"] if path in CLUSTER_DASHBOARDS else []
        expected = ["datasource", "instance"] if path in SELF_DASHBOARDS else ["datasource", "contract", "target", *extra]
        assert names == expected, path.name
        # links between the dashboards, keeping the variables and the time range
        assert any(link["type"] == "dashboards" and link["tags"] == ["slawatch"] and link["includeVars"]
                   and link["keepTime"] for link in d.get("links", [])), path.name
        assert d["templating"]["list"][0]["type"] == "datasource" and d["templating"]["list"][0]["query"] == "prometheus"
        text = path.read_text()
        for p in d["panels"]:
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (path.name, p["title"])
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
            assert any("$contract" in t["expr"] or "slawatch_tickets" in t["expr"] or "$site" in t["expr"]
                       or "$instance" in t["expr"] for t in p["targets"]), p["title"]
        uids_used = {v for k, v in _walk(d) if k == "uid"} - set(uids) - {"${datasource}", "-- Grafana --"}
        assert uids_used == set(), f"hard-coded datasource in {path.name}: {uids_used}"
        assert '"datasource": "' not in text  # no datasource given by name
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))


#: panels that show a state (up/down, the target state): their values mapped to words and colours
STATE_PANELS = {"Targets by state", "State timeline", "Circuits by state, and for how long (down first)",
                "Service checks: SIP, portal, email, chat (failing first)", "SNMP agent", "SNMP interface status",
                "Sites with their own monitoring outage", "Each site's view of each circuit"}
#: time series of a figure a contract has an objective for, or a NOC acts on: thresholds drawn as lines
AGAINST_OBJECTIVE = {"Loss", "Jitter", "MOS (E-model)", "R-factor", "Jitter against objective",
                     "Loss against objective", "One-way delay (RTT/2)", "Month-to-date availability against objective",
                     "Targets down", "Budget burn rate (1h), with the 6x and 14.4x paging lines",
                     "Error budget burndown this month", "Sites seeing each circuit down"}


def test_every_state_and_objective_panel_has_thresholds_units_and_mappings():
    """#27 (Grafana's own best practices): every stat, gauge, bar gauge, pie chart, table and state timeline has
    thresholds; a panel showing a state maps its values to words and colours; a time series of a figure with an
    objective draws its thresholds; every panel has a unit (or maps its values); no table asks for a range."""
    seen = set()
    for path in DASHBOARDS:
        for p in load(path)["panels"]:
            title, kind = p["title"], p["type"]
            defaults = p.get("fieldConfig", {}).get("defaults", {})
            steps = defaults.get("thresholds", {}).get("steps", [])
            where = (path.name, title)
            if kind in ("stat", "gauge", "bargauge", "piechart", "table", "state-timeline") or title in AGAINST_OBJECTIVE:
                assert steps and steps[0]["value"] is None, where
                assert len(steps) >= 2 or defaults.get("mappings"), where
            if title in STATE_PANELS:
                assert defaults.get("mappings"), where
                seen.add(title)
            if title in AGAINST_OBJECTIVE:
                assert len(steps) >= 2 and (kind != "timeseries" or defaults["custom"]["thresholdsStyle"]["mode"]
                                            in ("line", "area", "line+area", "dashed")), where
                seen.add(title)
            assert defaults.get("unit") or defaults.get("mappings"), where
            if kind == "table":
                assert all(t.get("instant") and not t.get("range") for t in p["targets"]), where
    assert seen == STATE_PANELS | AGAINST_OBJECTIVE, (STATE_PANELS | AGAINST_OBJECTIVE) - seen


def test_rfc3550_jitter_is_its_own_series_and_open_tickets_follow_the_contract():
    """#27: the "RFC 3550" line queried the IPDV series again; "Open tickets" ignored the contract filter."""
    detail = load(REPO / "dashboards" / "target-detail.json")
    [jitter] = [p for p in detail["panels"] if p["title"] == "Jitter"]
    exprs = {t["legendFormat"].rsplit(" ", 1)[-1] if "RFC" not in t["legendFormat"] else "3550": t["expr"]
             for t in jitter["targets"]}
    assert exprs["3550"].startswith("slawatch_jitter_rfc3550_seconds") and len(set(exprs.values())) == 2
    noc = load(REPO / "dashboards" / "noc-overview.json")
    for p in noc["panels"]:
        if p["title"].startswith("Open tickets"):
            assert all('contract=~"$contract"' in t["expr"] for t in p["targets"]), p["title"]


def _walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_promtool_check_and_test_rules():
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (scripts/dev-setup installs prometheus)")
    check = subprocess.run(["promtool", "check", "rules", "slawatch-rules.yml"], cwd=RULES, capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 18 rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "slawatch-rules.test.yml"], cwd=RULES, capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def prom_query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def concrete(expr: str) -> str:
    return (expr.replace("$contract", ".*").replace("$target", ".*").replace("$site", ".*").replace("$instance", ".*").replace("$__rate_interval", "15s")
            .replace("$__range", "1m").replace("$__interval", "5s"))


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory, request):
    if not shutil.which("prometheus"):
        pytest.skip("Prometheus is not installed (scripts/dev-setup installs prometheus)")
    from probes.icmp import socket_mode
    from monitor.errors import ProbeSetupError

    try:
        socket_mode()
    except ProbeSetupError as exc:
        pytest.skip(str(exc))
    tmp = tmp_path_factory.mktemp("stack")
    extra, lab = "", None
    if os.geteuid() == 0:  # a dark namespace target gives outages, tickets and budget burn something to show
        from netlab import NetLab

        lab = NetLab()
        host = lab.add_host("dash", kernel_replies=False)
        host.set_rules({"default": {}, "addresses": {host.address(3): {"blackout": True}}})
        extra = f'  - {{id: dark, contract: internet, kind: internet, address: "{host.address(3)}"}}\n'
    agent = None
    if shutil.which("snmpd"):
        from peers import Snmpd

        agent = Snmpd(free_port()).start()
        extra += (f"  - {{id: router, contract: internet, kind: internet, address: 127.0.0.1, probes: {{icmp: {{count: 2}},"
                  f" snmp: {{version: 2c, community: public, port: {agent.port}, profiles: [system, if-mib], interfaces: [lo],"
                  f" timeout: 300ms, retries: 0}}}}}}\n")
    # a support channel: the portal over HTTPS (service probe success, response time, certificate expiry)
    from servicepeers import HttpServer, Pki

    pki = Pki(tmp / "pki")
    portal = HttpServer(Pki.context(*pki.leaf("portal", 90)))
    extra += (f'  - {{id: portal, contract: support, kind: support, address: 127.0.0.1, probes: {{icmp: null, '
              f'http: {{url: "https://127.0.0.1:{portal.port}/ok", ca_file: "{pki.ca}", timeout: 500ms}}}}}}\n')
    # a customer request in a real RT (#28): the requests panel's series
    rt, requests = None, ""
    from peers import RtServer, rt_available

    if rt_available()[0]:
        rt = RtServer(free_port()).start()
        rt.api("POST", "/ticket", {"Queue": "General", "Subject": "portal login fails", "Priority": 75,
                                   "Requestor": "bob@reseller.example", "Content": "We cannot log in."})
        requests = (f'request_sources: [{{name: rt, url: "{rt.url}", token: "{rt.token}", queues: {{General: support}},'
                    ' interval: 1s}]\n')
    LIVE["requests"] = rt is not None
    from conftest import TEST_STORE, StoreMaker

    stores = StoreMaker(TEST_STORE, tmp, request)
    port, prom_port, db = free_port(), free_port(), stores.location("store")
    (tmp / "slawatch.yaml").write_text(f"""
storage: {stores.yaml(db, flush_interval="200ms")}
exporter: {{listen: "127.0.0.1:{port}", per_target: {{histograms: true, detail: true, phases: true}}}}
logging: {{format: json}}
contracts:
  - {{id: internet, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%, latency: {{percentile: 95, max: 80ms}}, loss: 0.5%}}}}
  - {{id: voice, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.95%, jitter: 30ms, loss: 1%, mos: 4.0}}}}
  - {{id: support, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.5%, response_time: {{percentile: 95, max: 2s}}, tls_expiry_min: 14d}},
     response_targets: {{critical: {{acknowledge: 1h, resolve: 4h}}, major: {{acknowledge: 2h, resolve: 8h}}, minor: {{acknowledge: 8h, resolve: 40h}}}}}}
{requests}defaults:
  targets: {{interval: 1s, failure_threshold: 2, probes: {{icmp: {{count: 5, spacing: 20ms, timeout: 300ms}}}}}}
targets:
  - {{id: lo1, contract: internet, kind: internet, address: 127.0.0.1}}
  - {{id: lo2, contract: internet, kind: internet, address: 127.0.0.2}}
  - {{id: v1, contract: voice, kind: voice, address: 127.0.0.3, probes: {{icmp: {{count: 40, spacing: 15ms}}}}}}
{extra}""")
    daemon = spawn(SLAWATCH + ["run", "-c", str(tmp / "slawatch.yaml")], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the rules as shipped, evaluated every second instead of every 30 s for the test
    (tmp / "rules.yml").write_text((RULES / "slawatch-rules.yml").read_text().replace("interval: 30s", "interval: 1s"))
    (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
scrape_configs:
  - job_name: slawatch
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""")
    prom = spawn(["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "prometheus.log", "w"))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if prom_query(prom_port, 'slawatch_sla_availability_ratio{window="month"}') and \
                        prom_query(prom_port, "slawatch_voice_r_factor"):
                    break
            except OSError:
                pass
            time.sleep(1)
        time.sleep(20)  # enough samples for the rate windows
        yield prom_port, db, tmp / "slawatch.yaml", lab is not None
    finally:
        for proc in (prom, daemon):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if lab:
            lab.close()
        if agent:
            agent.stop()
        if rt:
            rt.stop()
        portal.stop()


@pytest.mark.parametrize("dashboard", [p.name for p in NODE_DASHBOARDS])
def test_every_panel_query_returns_data(live_stack, dashboard):
    prom_port, _, _, _ = live_stack
    empty = []
    for where, expr in panel_queries(load(REPO / "dashboards" / dashboard)):
        if ("annotation Outages" in where or "slawatch_target_open_ticket" in expr) and not live_stack[3]:
            continue  # without root there is no down target to annotate, nor its open ticket
        if "slawatch_customer_request" in expr and not LIVE["requests"]:
            continue  # without Request Tracker 5 there is no customer request
        if not prom_query(prom_port, concrete(expr)):
            empty.append(where)
    assert empty == []


def test_sites_dashboard_against_a_real_cluster(tmp_path, cluster_db):
    """Four real nodes in three sites (two in site a) scraped by a real Prometheus through the shipped cluster scrape
    config (its job and labels, with this machine's ports): every panel of the sites dashboard answers, site a's
    two nodes split its units (each unit owned by one node of its site), and the consensus series come from the
    leader alone."""
    import yaml

    if not shutil.which("prometheus"):
        pytest.skip("Prometheus is not installed (scripts/dev-setup installs prometheus)")
    dsn, store = cluster_db
    targets = "\n".join(f"  - {{id: c{i}, contract: internet, kind: internet, address: 127.0.1.{i}}}" for i in range(1, 7))
    nodes = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}
    ports, procs = {n: free_port() for n in nodes}, []
    shipped = yaml.safe_load((RULES / "cluster-scrape.yml").read_text())
    job = shipped["scrape_configs"][0]
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[n]}"], "labels": {"node": n, "site": site}}
                             for n, site in nodes.items()]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"},
                                                             "scrape_configs": [job]}))
    prom_port = free_port()
    try:
        for n, site in nodes.items():
            path = tmp_path / f"{n}.yaml"
            path.write_text(f"""
cluster: {{node: {n}, site: {site}, heartbeat: 500ms, failover_delay: 3s}}
storage: {{backend: postgresql, dsn: '{dsn}', flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{ports[n]}"}}
logging: {{format: json}}
contracts:
  - {{id: internet, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, probes: {{icmp: {{count: 2, spacing: 20ms, timeout: 300ms}}}},
            vantage: {{sites: [a, b, c], quorum: 2}}}}
targets:
{targets}
""")
            procs.append(spawn(SLAWATCH + ["run", "-c", str(path)], cwd=path.parent, stdout=subprocess.DEVNULL,
                                          stderr=open(tmp_path / f"{n}.log", "w")))
        procs.append(spawn(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                                      stderr=open(tmp_path / "prometheus.log", "w")))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if len(prom_query(prom_port, "slawatch_vantage_state == 1")) == 6 and \
                        len(prom_query(prom_port, "slawatch_vantage_site_up")) == 18:
                    break
            except OSError:
                pass
            time.sleep(1)
        time.sleep(5)
        empty = [where for where, expr in panel_queries(load(CLUSTER_DASHBOARDS[0]))
                 if "annotation" not in where and not prom_query(prom_port, concrete(expr))]
        assert empty == []
        # every site's view of every circuit, once: site a's units split between its two nodes
        views = prom_query(prom_port, "slawatch_vantage_site_up")
        assert sorted((r["metric"]["target"], r["metric"]["site"]) for r in views) == \
            sorted((f"c{i}", s) for i in range(1, 7) for s in "abc")
        by_node = {r["metric"]["node"] for r in views if r["metric"]["site"] == "a"}
        assert by_node == {"a1", "a2"}, by_node
        # the consensus and site-outage series from one node only: the leader
        assert len({r["metric"]["node"] for r in prom_query(prom_port, "slawatch_vantage_state")}) == 1
        assert {r["metric"]["site"] for r in prom_query(prom_port, "slawatch_cluster_site_outage")} == {"a", "b", "c"}
        # the cycles agree: each site's units are probed by one node of that site at a time
        for i in range(1, 7):
            for site in "abc":
                cycles = store.cycles(f"c{i}@{site}", time.time() - 4, float("inf"))
                assert cycles and len({c.node for c in cycles}) == 1 and {c.site for c in cycles} == {site}
    finally:
        for proc in procs:
            stop(proc, timeout=30)


def test_recording_rules_produce_series(live_stack):
    prom_port = live_stack[0]
    for record in ("slawatch:icmp_loss:ratio_rate5m", "slawatch:icmp_rtt_seconds:p95_5m", "slawatch:availability_errors:ratio_rate1h",
                   "slawatch:error_budget:ratio"):
        assert prom_query(prom_port, record), record


def test_exported_month_to_date_matches_the_engine(live_stack):
    """The figure in Prometheus equals the engine's for the same instant, to within one probe interval."""
    from monitor.config import load_config
    from monitor.sla.evaluator import SlaEvaluator
    from monitor.store import open_store

    prom_port, db, path, _ = live_stack
    config = load_config(path)
    # the same instant on both sides: the one the daemon's figures were computed for
    [sample] = prom_query(prom_port, "slawatch_sla_evaluation_timestamp_seconds")
    at = float(sample["value"][1])
    exported = {r["metric"]["target"]: float(r["value"][1])
                for r in prom_query(prom_port, 'slawatch_sla_availability_ratio{window="month"}')}
    [check] = prom_query(prom_port, "slawatch_sla_evaluation_timestamp_seconds")
    assert float(check["value"][1]) == at  # no new evaluation in between
    store = open_store(config.storage, readonly=True)
    try:
        states = store.load_states()
        # what the daemon knew at that instant: its cycles up to then
        coverage = {t: (s.tracker.get("first_cycle"), min(s.tracker.get("last_cycle"), at)) for t, s in states.items()}
        engine, _ = SlaEvaluator(config, store).evaluate(at, coverage)
    finally:
        store.close()
    assert set(exported) == {t for t, s in engine.items() if s.mtd.so_far.ratio is not None}
    for target, value in exported.items():
        mtd = engine[target].mtd
        one_interval = 1000 / max(mtd.so_far.eligible_ms, 1)  # interval 1 s, as a share of the time that counts
        assert abs(value - float(mtd.so_far.ratio)) <= one_interval, (target, value, float(mtd.so_far.ratio))


def test_panels_read_right_at_a_glance():
    """Defects (#15): the interface-status timeline drew down (2) like up (1); the at-risk flag (0/1) was shown
    as a percentage; excluded time was summed over every target (13.6 M s of unknown read as 158 days)."""
    detail = load(REPO / "dashboards" / "target-detail.json")
    [status] = [p for p in detail["panels"] if p["title"] == "SNMP interface status"]
    options = status["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert (options["1"]["text"], options["1"]["color"]) == ("up", "green")
    assert (options["2"]["text"], options["2"]["color"]) == ("down", "red")
    sla = load(REPO / "dashboards" / "sla-credits.json")
    [projected] = [p for p in sla["panels"] if p["title"] == "Projected availability at month end"]
    [flag] = [o for o in projected["fieldConfig"]["overrides"] if o["matcher"]["options"] == "B"]
    assert {"id": "unit", "value": "none"} in flag["properties"]
    [excluded] = [p for p in sla["panels"] if p["title"].startswith("Excluded time this month")]
    assert not excluded["targets"][0]["expr"].startswith("sum")
    noc = load(REPO / "dashboards" / "noc-overview.json")  # which circuits are down right now, and since when
    assert any("slawatch_target_state_since_seconds" in t["expr"] for p in noc["panels"] for t in p["targets"])
