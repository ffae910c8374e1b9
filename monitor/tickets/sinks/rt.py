"""Request Tracker 5 over its REST2 API. Against duplicates: the subject carries ``[slawatch:<uid>]``, searched
before "open". Acknowledging: someone took the ticket, or set it to open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import HttpUrl, SecretStr

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkSettings

if TYPE_CHECKING:
    from monitor.store.base import Ticket

__all__ = ["RtSinkSettings", "RtSink", "RT_PRIORITY"]


class RtSinkSettings(SinkSettings):
    """Settings of a Request Tracker sink: URL, token and queue."""

    type: Literal["rt"]
    url: HttpUrl
    token: SecretStr
    queue: str = "General"
    verify_tls: bool = True


#: ticket severity -> RT priority (0 lowest .. 99 highest)
RT_PRIORITY = {"critical": 90, "major": 70, "minor": 40}


class RtSink(HttpSink):
    """Request Tracker 5, REST2 API."""

    def __init__(self, cfg: RtSinkSettings):
        super().__init__(cfg.name, str(cfg.url) + "REST/2.0" if str(cfg.url).endswith("/") else str(cfg.url) + "/REST/2.0",
                         cfg.timeout, verify=cfg.verify_tls,
                         headers={"Authorization": f"token {cfg.token.get_secret_value()}"})
        self.queue = cfg.queue

    def _tag(self, t: Ticket) -> str:
        return f"[slawatch:{t.uid}]"

    async def _find(self, t: Ticket) -> str | None:
        resp = await self._request("GET", "/tickets", params={"query": f"Subject LIKE '{self._tag(t)}'"})
        items = resp.json().get("items") or []
        return str(items[0]["id"]) if items else None

    async def deliver(self, d: Delivery) -> str:
        """Create the RT ticket (found again by its slawatch id after a crash), correspond on it, or resolve it;
        returns the ticket number."""
        t = d.ticket
        ticket_id = d.external_id
        if ticket_id is None:
            ticket_id = await self._find(t)
            if ticket_id is None:
                body = {"Queue": self.queue, "Subject": f"{t.title} {self._tag(t)}",
                        "Content": d.text, "ContentType": "text/plain",
                        "Priority": RT_PRIORITY.get(t.severity, 50)}
                requestor = d.extra.get("requestor")
                if requestor:
                    body["Requestor"] = requestor
                resp = await self._request("POST", "/ticket", json=body)
                return str(resp.json()["id"])
            if d.action == "open":
                return ticket_id
        if d.action in ("open", "update", "reopen", "resolve"):
            await self._request("POST", f"/ticket/{ticket_id}/comment", content=d.text.encode(),
                                headers={"Content-Type": "text/plain"})
        if d.action == "resolve":
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "resolved"})
        elif d.action == "reopen":
            # RT's default lifecycle goes from resolved to open, not to new
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "open"})
        return ticket_id

    async def poll(self, external_id: str, last_action: str) -> str | None:
        """Acknowledged when someone took the ticket (an owner other than Nobody), or set it to open
        (unless slawatch itself set it to open by reopening it)."""
        data = (await self._request("GET", f"/ticket/{external_id}")).json()
        owner = (data.get("Owner") or {}).get("id", "Nobody")
        if owner != "Nobody":
            return f"taken by {owner} in RT"
        if data.get("Status") == "open" and last_action != "reopen":
            return "set to open in RT"
        return None
