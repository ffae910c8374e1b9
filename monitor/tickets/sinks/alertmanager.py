"""Alertmanager v2 API: one alert per ticket; an alert's identity is its label set, which carries the uid.
Refreshing: firing alerts are re-sent before Alertmanager's resolve_timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import HttpUrl

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkSettings, alert_labels, iso_time

if TYPE_CHECKING:
    from monitor.store.base import Ticket

__all__ = ["AlertmanagerSinkSettings", "AlertmanagerSink"]


class AlertmanagerSinkSettings(SinkSettings):
    """Settings of an Alertmanager sink: its URL."""

    type: Literal["alertmanager"]
    url: HttpUrl


class AlertmanagerSink(HttpSink):
    """Alertmanager v2 API: one alert per ticket, identified by its labels."""

    def __init__(self, cfg: AlertmanagerSinkSettings):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout)

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
        await self._request("POST", "/api/v2/alerts", json=[self.alert(d.ticket, d.text, resolved)])
        return d.ticket.uid

    async def refresh(self, ticket: Ticket, text: str) -> None:
        """Re-send a firing alert, with the description it was opened with (``text``: cause, customer, links):
        Alertmanager resolves alerts not re-sent within its resolve_timeout."""
        await self._request("POST", "/api/v2/alerts", json=[self.alert(ticket, text, None)])
