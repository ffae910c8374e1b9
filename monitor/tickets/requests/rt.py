"""Customer requests from Request Tracker 5 over REST 2 (#28): which requests of some queues changed since an
instant, and each one's timeline (monitor.tickets.requests.base) from its transaction history.

RT's history, as REST 2 gives it with ``fields=Type,Creator,Created,Field,NewValue``: ``Create`` (the request,
by its requestor when it came through ``rt-mailgate``), ``Correspond`` (a reply the customer is sent), ``Comment``
(internal), ``Status`` (``NewValue`` the new status; RT itself opens a ticket on a reply), and ``EmailRecord``
(a copy of a mail RT sent, such as its auto-reply: not a reply by anyone). Times are whole seconds in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from monitor.tickets.requests.base import Event, RequestTimeline, timeline
from monitor.tickets.sinks.base import HttpSink

__all__ = ["RtRequestSource", "rt_time"]

_KINDS = {"Create": "create", "Correspond": "reply", "Comment": "comment", "Status": "status"}


def rt_time(text: str) -> int:
    """RT's ``2026-12-07T22:20:04Z`` as UTC ms."""
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() * 1000)


class RtRequestSource(HttpSink):
    """Request Tracker 5's REST 2 API, read-only: the requests of ``queues``."""

    def __init__(self, name: str, url: str, token: str, queues: list[str], timeout: float = 10.0,
                 verify: bool = True, waiting: frozenset[str] = frozenset({"stalled"}),
                 closed: frozenset[str] = frozenset({"resolved"})):
        base = url.rstrip("/") + "/REST/2.0"
        super().__init__(name, base, timeout, verify=verify, headers={"Authorization": f"token {token}"})
        self.queues = queues
        self.waiting, self.closed = waiting, closed
        self._queue_names: dict[str, str] = {}  # queue id -> name, looked up once

    async def changed_since(self, since_ms: int) -> list[str]:
        """Ids of the requests in the queues updated at or after ``since_ms``, oldest update first (a resumable
        cursor: the caller keeps the last update it saw)."""
        # TicketSQL reads a date in the RT user's time zone (RT's $Timezone, US/Eastern by default): ask from a day
        # earlier, whatever the zone, and keep what REST 2's own UTC LastUpdated says is new enough
        since = datetime.fromtimestamp(since_ms / 1000 - 86400, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        queues = " OR ".join(f"Queue = '{q}'" for q in self.queues)
        query = f"({queues}) AND LastUpdated >= '{since}'"
        out: list[tuple[int, str]] = []
        page = 1
        while True:
            resp = await self._request("GET", f"/tickets?query={quote(query)}&orderby=LastUpdated&order=ASC"
                                              f"&fields=LastUpdated&per_page=100&page={page}")
            data = resp.json()
            out += [(rt_time(item["LastUpdated"]), str(item["id"])) for item in data.get("items") or []
                    if item.get("LastUpdated") and rt_time(item["LastUpdated"]) >= since_ms - 999]
            if page >= int(data.get("pages") or 1):
                return [tid for _, tid in sorted(out)]
            page += 1

    async def timeline(self, ticket_id: str, now_ms: int | None = None) -> RequestTimeline:
        """The request's timeline from its ticket and transaction history."""
        ticket = (await self._request("GET", f"/ticket/{ticket_id}")).json()
        events: list[Event] = []
        page = 1
        while True:
            resp = await self._request("GET", f"/ticket/{ticket_id}/history?fields=Type,Creator,Created,Field,"
                                              f"NewValue&per_page=100&page={page}")
            data = resp.json()
            for tx in data.get("items") or []:
                kind = _KINDS.get(tx.get("Type", ""))
                if kind is None or kind == "status" and tx.get("Field") != "Status":
                    continue
                events.append(Event(rt_time(tx["Created"]), kind, (tx.get("Creator") or {}).get("id", ""),  # type: ignore[arg-type]
                                    tx.get("NewValue") if kind == "status" else None))
            if page >= int(data.get("pages") or 1):
                break
            page += 1
        requestors = tuple(r["id"] for r in ticket.get("Requestor") or [])
        queue = await self.queue_name(str((ticket.get("Queue") or {}).get("id", "")))
        t = timeline(self.name, str(ticket_id), queue, ticket.get("Subject", ""), requestors, events,
                     waiting=self.waiting, closed=self.closed, now_ms=now_ms)
        t.priority = int(ticket.get("Priority") or 0)
        t.fields = {str(cf.get("name")): str(cf["values"][0]) for cf in ticket.get("CustomFields") or []
                    if isinstance(cf, dict) and cf.get("values")}
        t.updated_ms = rt_time(ticket["LastUpdated"]) if ticket.get("LastUpdated") else t.opened_ms
        return t

    async def queue_name(self, queue_id: str) -> str:
        """A queue's name from its id (REST 2 links a ticket's queue by id), looked up once."""
        if queue_id not in self._queue_names:
            data = (await self._request("GET", f"/queue/{queue_id}")).json()
            self._queue_names[queue_id] = data.get("Name", queue_id)
        return self._queue_names[queue_id]
