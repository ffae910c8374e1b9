"""Alertmanager v2 API: one alert per ticket; an alert's identity is its label set, which carries the uid.
Refreshing: firing alerts are re-sent before Alertmanager's resolve_timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import HttpUrl

from probes.settings import Duration

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkSettings, alert_labels, iso_time

if TYPE_CHECKING:
    from monitor.store.base import Ticket

__all__ = ["AlertmanagerSinkSettings", "AlertmanagerSink"]


class AlertmanagerSinkSettings(SinkSettings):
    """Settings of an Alertmanager sink: its URL."""

    type: Literal["alertmanager"]
    url: HttpUrl
    #: after an outage ticket resolves, a ``SlawatchRecovered`` alert per circuit lasts this long: the shipped
    #: inhibit rules (dashboards/prometheus/alertmanager.yml) hold the circuit's burn-rate alerts quiet while
    #: their short window still remembers the outage (5 min in the shipped rules). 0 sends none.
    recovery_hold: Duration = 600.0


class AlertmanagerSink(HttpSink):
    """Alertmanager v2 API: one alert per ticket, identified by its labels."""

    def __init__(self, cfg: AlertmanagerSinkSettings):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout)
        self.recovery_hold = cfg.recovery_hold

    def alert(self, t: Ticket, text: str, resolved_at: float | None) -> dict:
        """The ticket as one Alertmanager alert (labels, annotations, start and, when resolved, end)."""
        alert = {"labels": alert_labels(t), "annotations": {"summary": t.title, "description": text},
                 "startsAt": iso_time(t.opened), "generatorURL": ""}
        if resolved_at is not None:
            alert["endsAt"] = iso_time(resolved_at)
        return alert

    async def deliver(self, d: Delivery) -> str:
        """Post the ticket's alert (firing, or resolved with its end); returns the ticket's uid, which labels the alert."""
        resolved = d.ticket.resolved or d.extra.get("now") if d.action == "resolve" else None
        alerts = [self.alert(d.ticket, d.text, resolved)]
        if resolved is not None and d.ticket.kind == "outage" and self.recovery_hold > 0:
            alerts += [self.recovered(d.ticket, target, resolved) for target in d.ticket.targets]
        await self._request("POST", "/api/v2/alerts", json=alerts)
        return d.ticket.uid

    def recovered(self, t: Ticket, target: str, at: float) -> dict:
        """The circuit's recovery as an alert that ends ``recovery_hold`` after it (never notified: the shipped
        routes send it nowhere; it only inhibits the burn-rate alerts whose windows still hold the outage)."""
        return {"labels": {"alertname": "SlawatchRecovered", "contract": t.contract, "target": target,
                           "severity": "none", "slawatch_ticket": t.uid},
                "annotations": {"summary": f"{target} recovered; its burn-rate alerts stay quiet for "
                                           f"{self.recovery_hold:g} s"},
                "startsAt": iso_time(at), "endsAt": iso_time(at + self.recovery_hold), "generatorURL": ""}

    async def refresh(self, ticket: Ticket, text: str) -> None:
        """Re-send a firing alert, with the description it was opened with (``text``: cause, customer, links):
        Alertmanager resolves alerts not re-sent within its resolve_timeout."""
        await self._request("POST", "/api/v2/alerts", json=[self.alert(ticket, text, None)])
