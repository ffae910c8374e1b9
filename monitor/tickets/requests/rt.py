"""Customer requests from Request Tracker 5 over REST 2 (#28): which requests of some queues changed since an
instant, and each one's timeline (monitor.tickets.requests.base) from its transaction history.

RT's history, as REST 2 gives it with ``fields=Type,Creator,Created,Field,NewValue``: ``Create`` (the request,
by its requestor when it came through ``rt-mailgate``), ``Correspond`` (a reply the customer is sent), ``Comment``
(internal), ``Status`` (``NewValue`` the new status; RT itself opens a ticket on a reply), and ``EmailRecord``
(a copy of a mail RT sent, such as its auto-reply: not a reply by anyone). Times are whole seconds in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from monitor.tickets.requests.base import Event, RequestTimeline, SourceError, timeline
from monitor.tickets.sinks.base import HttpSink

__all__ = ["RtRequestSource", "rt_time"]

_KINDS = {"Create": "create", "Correspond": "reply", "Comment": "comment", "Status": "status"}


def rt_time(text: str) -> int:
    """RT's ``2026-12-07T22:20:04Z`` as UTC ms."""
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() * 1000)


class RtRequestSource(HttpSink):
    """Request Tracker 5's REST 2 API, read-only: the requests of ``queues`` (a
    :class:`~monitor.tickets.requests.base.RequestSource`)."""

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
        return [str(item["id"]) for item in await self._changed(since_ms)]

    async def changed_timelines(self, since_ms: int, now_ms: int | None = None,
                                with_fields: bool = False) -> list[RequestTimeline]:
        """The timelines of the requests updated at or after ``since_ms``, oldest update first, in few calls: the
        tickets' own fields come with the search, their histories 50 tickets to a TransactionSQL search (RT
        spends about a quarter of a CPU second on each call's token, so calls are what a sync costs);
        ``with_fields``: read each ticket too, for its custom fields."""
        try:
            return await self._changed_timelines(since_ms, now_ms, with_fields)
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
            # not REST 2's documented shape (a proxy's error page, a half-written answer): said, retried
            raise SourceError(f"{self.name}: RT answered what is not REST 2's shape ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None

    async def _changed_timelines(self, since_ms: int, now_ms: int | None, with_fields: bool) -> list[RequestTimeline]:
        items = await self._changed(since_ms)
        history: dict[str, list[dict]] = {str(item["id"]): [] for item in items}
        ids = list(history)
        for i in range(0, len(ids), 50):
            query = "ObjectType = 'RT::Ticket' AND (" + " OR ".join(f"ObjectId = {t}" for t in ids[i:i + 50]) + ")"
            for tx in await self._pages("/transactions", query, "Type,Creator,Created,Field,NewValue,ObjectId"):
                history.setdefault(str(tx.get("ObjectId")), []).append(tx)
        out = []
        for item in items:
            ticket = (await self._request("GET", f"/ticket/{item['id']}")).json() if with_fields else item
            txs = sorted(history[str(item["id"])], key=lambda tx: int(tx.get("id") or 0))
            out.append(await self._timeline(str(item["id"]), ticket, txs, now_ms))
        return out

    async def _pages(self, path: str, query: str, fields: str, order: str = "") -> list[dict]:
        """Every item of a REST 2 search, page by page (100 to a page, RT's most)."""
        out: list[dict] = []
        page = 1
        while True:
            resp = await self._request("GET", f"{path}?query={quote(query)}{order}&fields={fields}&per_page=100"
                                              f"&page={page}")
            data = resp.json()
            if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
                raise ValueError("a search answer without its items")
            out += data.get("items") or []
            if page >= int(data.get("pages") or 1):
                return out
            page += 1

    async def _changed(self, since_ms: int) -> list[dict]:
        """The search items (with the ticket fields a timeline needs) of the requests updated since ``since_ms``,
        oldest update first."""
        # TicketSQL reads a date in the RT user's time zone (RT's $Timezone, US/Eastern by default): ask from a day
        # earlier, whatever the zone, and keep what REST 2's own UTC LastUpdated says is new enough
        since = datetime.fromtimestamp(since_ms / 1000 - 86400, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        queues = " OR ".join(f"Queue = '{q}'" for q in self.queues)
        query = f"({queues}) AND LastUpdated >= '{since}'"
        items = await self._pages("/tickets", query, "LastUpdated,Created,Subject,Priority,Queue,Requestor,Status",
                                  "&orderby=LastUpdated&order=ASC")
        # every item has its id and LastUpdated (asked for): one without them is not REST 2's answer (SourceError)
        fresh = [(rt_time(item["LastUpdated"]), item) for item in items if str(item["id"])
                 and rt_time(item["LastUpdated"]) >= since_ms - 999]
        return [item for _, item in sorted(fresh, key=lambda pair: (pair[0], int(pair[1]["id"])))]

    async def timeline(self, ticket_id: str, now_ms: int | None = None) -> RequestTimeline:
        """The request's timeline from its ticket and transaction history."""
        ticket = (await self._request("GET", f"/ticket/{ticket_id}")).json()
        txs: list[dict] = []
        page = 1
        while True:
            resp = await self._request("GET", f"/ticket/{ticket_id}/history?fields=Type,Creator,Created,Field,"
                                              f"NewValue&per_page=100&page={page}")
            data = resp.json()
            txs += data.get("items") or []
            if page >= int(data.get("pages") or 1):
                break
            page += 1
        return await self._timeline(str(ticket_id), ticket, txs, now_ms)

    async def _timeline(self, ticket_id: str, ticket: dict, txs: list[dict], now_ms: int | None) -> RequestTimeline:
        """A timeline from a ticket's fields and its transactions in order."""
        events: list[Event] = []
        for tx in txs:
            kind = _KINDS.get(tx.get("Type", ""))
            if kind is None or kind == "status" and tx.get("Field") != "Status":
                continue
            events.append(Event(rt_time(tx["Created"]), kind, (tx.get("Creator") or {}).get("id", ""),  # type: ignore[arg-type]
                                tx.get("NewValue") if kind == "status" else None))
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
