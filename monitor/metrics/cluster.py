"""Cluster metrics: this node, its lease and ownership, and the multi-site consensus (monitor.cluster.vantage)."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector

from monitor.measure.live import LiveState

__all__ = ["ClusterCollector"]


class ClusterCollector(Collector):
    """The cluster member's figures: node, leadership, owned targets, members, epoch, rejoins."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        """The cluster's families: membership, leadership, ownership, heartbeats."""
        yield from self._cluster_metrics()
        yield from self._vantage_metrics(self.live.snapshot())

    def _cluster_metrics(self):
        member = self.live.cluster
        if member is None:
            return
        cfg = member.cfg
        yield InfoMetricFamily("slawatch_cluster_node", "This node's name and site in the cluster.",
                               value={"node": cfg.node, "site": cfg.site})
        yield GaugeMetricFamily("slawatch_cluster_leader", "1 on the node that runs the cluster-wide work.",
                                value=1 if member.leader else 0)
        yield GaugeMetricFamily("slawatch_cluster_targets_owned", "Targets this node probes now.",
                                value=len(member.owned) if member.may_probe() else 0)
        yield GaugeMetricFamily("slawatch_cluster_epoch", "This node's fencing epoch.", value=member.epoch or 0)
        yield CounterMetricFamily("slawatch_cluster_rejoins", "Times the lease was lost and the node rejoined.",
                                  value=member.rejoins_total)
        nodes = GaugeMetricFamily("slawatch_cluster_nodes", "Cluster members this node sees, by liveness.",
                                  labels=["state"])
        view = member.view
        alive = [n for n in view if n.alive(cfg.failover_delay)]
        nodes.add_metric(["live"], len(alive))
        nodes.add_metric(["dead"], len(view) - len(alive))
        yield nodes
        per_site = GaugeMetricFamily("slawatch_cluster_site_live_nodes", "Live nodes per site, as this node sees "
                                     "them (every site a node or a multi-site target names; 0: nothing probes from "
                                     "there).", labels=["site"])
        keeper = self.live.vantage
        sites = {n.site for n in view} | set(getattr(keeper, "sites", ()) or ()) | {cfg.site}
        for site in sorted(sites):
            per_site.add_metric([site], sum(1 for n in alive if n.site == site))
        yield per_site
        yield GaugeMetricFamily("slawatch_cluster_config_versions", "Distinct configs among the live nodes, as this "
                                "node sees them (1 when every node runs the same config).",
                                value=len({n.config_hash for n in alive}))

    def _vantage_metrics(self, targets):
        """Multi-site targets (monitor.cluster.consensus): each owning node exports its sites' views of the units it
        probes; the leader the consensus state and each site's monitoring outage."""
        units = self.live.site_units
        if not units:
            return
        labels = ["contract", "target", "site"]
        site_up = GaugeMetricFamily("slawatch_vantage_site_up", "1 if the site sees the target up, 0 down; absent "
                                    "while it has no evidence (this node's units).", labels=labels)
        site_rtt = GaugeMetricFamily("slawatch_vantage_site_rtt_seconds", "Median RTT of the site's last answered "
                                     "cycle of the target (this node's units).", labels=labels)
        for t in targets:
            unit = units.get(t.target)
            if unit is None:
                continue
            lab = [t.contract, unit[0], unit[1]]
            if t.tracker.state in ("up", "degraded"):
                site_up.add_metric(lab, 1)
            elif t.tracker.state == "down":
                site_up.add_metric(lab, 0)
            rtt_ms = (t.last_good or {}).get("rtt_ms")
            if rtt_ms is not None:
                site_rtt.add_metric(lab, rtt_ms / 1000)
        yield from (site_up, site_rtt)
        keeper, member = self.live.vantage, self.live.cluster
        if keeper is None or member is None or not member.leader:
            return
        state = StateSetMetricFamily("slawatch_vantage_state", "A multi-site target's state by the sites' consensus "
                                     "(leader only).", labels=["contract", "target"])
        down = GaugeMetricFamily("slawatch_vantage_sites_down", "Sites that see the target down (leader only).",
                                 labels=["contract", "target"])
        for target, cur in sorted(keeper.states.items()):
            contract = keeper.contracts.get(target, "")
            state.add_metric([contract, target], {s: s == cur for s in ("up", "down", "unknown")})
            down.add_metric([contract, target], sum(1 for v in keeper.views.get(target, ()) if v.state == "down"))
        dark = GaugeMetricFamily("slawatch_cluster_site_outage", "1 while the site has its own monitoring outage "
                                 "(every target dark from there while other sites see them; leader only).",
                                 labels=["site"])
        for site in sorted(keeper.sites):
            dark.add_metric([site], 1 if site in keeper.dark else 0)
        yield from (state, down, dark)

