"""Per-contract metrics: the objectives (not repeated per target: the series budget), who the customer is,
and when the SLA figures were computed."""

from __future__ import annotations

from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.measure.live import LiveState

__all__ = ["ContractCollector"]


class ContractCollector(Collector):
    """Per-contract series: objectives, thresholds and contract info."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        """The per-contract families: each contract's objective thresholds and availability objective ratio (from
        the leader's SLA figures), its info series and the instant the figures are for."""
        yield from self._contract_metrics(self.live.snapshot())

    def _contract_metrics(self, targets):
        """The contracts' objectives: per contract, not per target (the series budget)."""
        thresholds = GaugeMetricFamily(
            "slawatch_objective_threshold", "The contract's objective, in base units (latency/jitter/one_way_delay s, "
            "loss and availability ratio, mos).", labels=["contract", "objective"])
        ratio = GaugeMetricFamily("slawatch_sla_objective_ratio", "The contract's availability objective.",
                                  labels=["contract", "objective"])
        sla = self.live.sla_snapshot()
        seen: set[str] = set()
        for t in targets:
            if t.contract in seen:
                continue
            seen.add(t.contract)
            for name, value in sorted(t.objectives.items()):
                thresholds.add_metric([t.contract, name], value)
            s = sla.get(t.target)
            if s is not None:
                ratio.add_metric([t.contract, "availability"], s.objective_ratio)
        yield thresholds
        yield ratio
        info = GaugeMetricFamily("slawatch_contract_info", "A contract's customer and provider (value 1), to join "
                                 "on contract.", labels=["contract", "customer", "provider"])
        for contract, (customer, provider) in sorted(self.live.contracts.items()):
            info.add_metric([contract, customer, provider], 1)
        yield info
        if self.live.sla_time is not None:
            yield GaugeMetricFamily("slawatch_sla_evaluation_timestamp_seconds",
                                    "The instant the slawatch_sla_* figures were computed for.", value=self.live.sla_time)


