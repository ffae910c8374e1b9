"""Request Tracker 5 over its REST2 API. Against duplicates: the subject carries ``[slawatch:<uid>]``, searched
before "open". Acknowledging: someone took the ticket, or set it to open.

What the customer sees: RT mails a ticket's requestors (its autoreply on create, its notice on resolve) with the
ticket's text. So the customer (the contract's ``customer_email``) is a Cc by default, which RT's default scrips
mail only for correspondence a person writes; the ticket is created with a short customer-facing text, and
slawatch's own text (address, probe cause, links) goes in as a comment, which RT mails to AdminCcs only.
``customer_as: requestor`` restores the old behaviour for queues whose scrips are made for it."""

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
    #: how the contract's customer_email joins the ticket: cc (default: RT mails it only what a person
    #: corresponds), requestor (RT's autoreply and resolve notices go to it), none
    customer_as: Literal["cc", "requestor", "none"] = "cc"


#: ticket severity -> RT priority (0 lowest .. 99 highest)
RT_PRIORITY = {"critical": 90, "major": 70, "minor": 40}


class RtSink(HttpSink):
    """Request Tracker 5, REST2 API."""

    def __init__(self, cfg: RtSinkSettings):
        super().__init__(cfg.name, str(cfg.url) + "REST/2.0" if str(cfg.url).endswith("/") else str(cfg.url) + "/REST/2.0",
                         cfg.timeout, verify=cfg.verify_tls,
                         headers={"Authorization": f"token {cfg.token.get_secret_value()}"})
        self.queue = cfg.queue
        self.customer_as = cfg.customer_as

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
        if ticket_id is not None and t.kind == "customer request":
            # the customer's own request in this RT (monitor.tickets.ledger): only ever an internal comment on
            # it, never a status change
            await self._comment(ticket_id, d.text)
            return ticket_id
        if ticket_id is None:
            ticket_id = await self._find(t)
            if ticket_id is None:
                body = {"Queue": self.queue, "Subject": f"{t.title} {self._tag(t)}",
                        "Content": customer_text(t), "ContentType": "text/plain",
                        "Priority": RT_PRIORITY.get(t.severity, 50)}
                customer = d.extra.get("requestor")
                if customer and self.customer_as != "none":
                    body["Requestor" if self.customer_as == "requestor" else "Cc"] = customer
                resp = await self._request("POST", "/ticket", json=body)
                ticket_id = str(resp.json()["id"])
                # slawatch's own text (address, cause, links) as a comment: internal, never mailed to the customer
                await self._comment(ticket_id, d.text)
                return ticket_id
            if d.action == "open":  # created before a crash: its comment may be missing (twice beats never)
                await self._comment(ticket_id, d.text)
                return ticket_id
        if d.action in ("open", "update", "reopen", "resolve"):
            await self._comment(ticket_id, d.text)
        if d.action == "resolve":
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "resolved"})
        elif d.action == "reopen":
            # RT's default lifecycle goes from resolved to open, not to new
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "open"})
        return ticket_id

    async def _comment(self, ticket_id: str, text: str) -> None:
        """An internal comment on the RT ticket (RT mails comments to AdminCcs only, never to the customer)."""
        await self._request("POST", f"/ticket/{ticket_id}/comment", content=text.encode(),
                            headers={"Content-Type": "text/plain"})

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


def customer_text(t: "Ticket") -> str:
    """The ticket's customer-facing text: what is affected and since when, nothing internal."""
    from monitor.tickets.sinks.base import iso_time

    return (f"Service incident: {t.title}, since {iso_time(t.opened)}.\n"
            f"Our network operations centre is working on it. Reference: {t.uid}.\n")
