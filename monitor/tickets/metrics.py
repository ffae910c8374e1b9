"""The ticket ledger's and the outbox's metrics."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.measure.live import LiveState

__all__ = ["TicketCollector"]


class TicketCollector(Collector):
    """Ticket series: counts by state and severity, outbox, delivery failures, response targets met."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        """The ticket families: tickets by state and severity, outbox pending per sink."""
        open_ticket = GaugeMetricFamily("slawatch_target_open_ticket", "The open outage ticket's id, for circuits "
                                        "that have one (none for the others).", labels=["contract", "target"])
        for key, ticket_id in sorted(self.live.open_outage_tickets.items()):
            _, contract, target = key.split(":", 2)
            open_ticket.add_metric([contract, target], ticket_id)
        yield open_ticket
        tickets = GaugeMetricFamily("slawatch_tickets", "Tickets in the ledger by contract, state and severity.",
                                    labels=["contract", "state", "severity"])
        for (contract, state, severity), n in sorted(self.live.ticket_counts.items()):
            tickets.add_metric([contract, state, severity], n)
        yield tickets
        failures = CounterMetricFamily("slawatch_ticket_delivery_failures", "Failed deliveries to a ticket sink.", labels=["sink"])
        pending = GaugeMetricFamily("slawatch_ticket_outbox_pending", "Deliveries waiting for a ticket sink.", labels=["sink"])
        for sink in sorted(set(self.live.delivery_failures) | set(self.live.outbox_pending)):
            failures.add_metric([sink], self.live.delivery_failures.get(sink, 0))
            pending.add_metric([sink], self.live.outbox_pending.get(sink, 0))
        yield failures
        yield pending
        requests = GaugeMetricFamily("slawatch_customer_requests_open", "Customer requests not yet resolved (#28).",
                                     labels=["contract", "severity"])
        for (contract, severity), n in sorted(self.live.requests_open.items()):
            requests.add_metric([contract, severity], n)
        yield requests
        nearest = GaugeMetricFamily("slawatch_customer_request_next_breach_seconds",
                                    "Business seconds before the next open request passes a response or resolution "
                                    "target (negative: past it).", labels=["contract", "severity"])
        for (contract, severity), left in sorted(self.live.requests_next_breach.items()):
            nearest.add_metric([contract, severity], left)
        yield nearest
        breaches = GaugeMetricFamily("slawatch_customer_request_breaches",
                                     "This month's customer requests (the contract's zone) whose first response or "
                                     "resolution missed its target, as known at the source's last read.",
                                     labels=["contract", "severity", "clock"])
        for (contract, severity, clock), n in sorted(self.live.request_breaches.items()):
            breaches.add_metric([contract, severity, clock], n)
        yield breaches
        read = GaugeMetricFamily("slawatch_customer_request_source_last_read_timestamp_seconds",
                                 "When a request source was last read successfully (unix time): the requests' "
                                 "figures are as of then.", labels=["source"])
        for source, at in sorted(self.live.request_sources_read.items()):
            read.add_metric([source], at)
        yield read
        met = GaugeMetricFamily("slawatch_ticket_response_target_met_ratio",
                                "Share of this month's tickets that met the contract's response target.",
                                labels=["severity", "response"])
        for (severity, kind), (ok, n) in sorted(self.live.response_met.items()):
            met.add_metric([severity, kind], ok / n)
        yield met
