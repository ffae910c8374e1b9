"""A webhook in Alertmanager's JSON (version 4), optionally HMAC-SHA256 signed; ``Idempotency-Key`` header and
the group key carry the uid against duplicates."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Literal

from pydantic import HttpUrl, SecretStr

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkError, SinkSettings, alert_labels, iso_time

__all__ = ["WebhookSinkSettings", "WebhookSink"]


class WebhookSinkSettings(SinkSettings):
    """Settings of a webhook sink: URL and an optional HMAC secret."""

    type: Literal["webhook"]
    url: HttpUrl
    hmac_secret: SecretStr | None = None


class WebhookSink(HttpSink):
    """Alertmanager's webhook JSON (version 4), optionally HMAC-SHA256 signed."""

    def __init__(self, cfg: WebhookSinkSettings):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout)
        self.secret = cfg.hmac_secret.get_secret_value().encode() if cfg.hmac_secret else None
        self.url = str(cfg.url)

    def payload(self, d: Delivery) -> dict:
        """The JSON body for one delivery (ticket, action, text), signed separately."""
        t = d.ticket
        labels = alert_labels(t)
        status = "resolved" if d.action == "resolve" else "firing"
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "version": "4",
            "groupKey": f"{{}}:{{slawatch_ticket=\"{t.uid}\"}}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": self.name,
            "groupLabels": {"slawatch_ticket": t.uid},
            "commonLabels": labels,
            "commonAnnotations": {"summary": t.title, "description": d.text},
            "externalURL": "",
            "alerts": [{
                "status": status, "labels": labels,
                "annotations": {"summary": t.title, "description": d.text, "action": d.action},
                "startsAt": iso_time(t.opened),
                "endsAt": iso_time(d.extra.get("now")) if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": fingerprint,
            }],
        }

    async def deliver(self, d: Delivery) -> str:
        """POST the delivery's payload with its HMAC signature; returns ``slawatch/<ticket uid>`` as the external id."""
        body = json.dumps(self.payload(d), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": d.idempotency_key}
        if self.secret:
            headers["X-Slawatch-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        import httpx

        try:
            resp = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"{self.name}: POST: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise SinkError(f"{self.name}: POST: HTTP {resp.status_code}")
        return f"slawatch/{d.ticket.uid}"
