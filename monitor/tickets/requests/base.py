"""A customer request's timeline, whatever system it lives in: when it was opened, when staff first answered the
customer, when it waited on the customer, when it was resolved (and reopened).

Built from a list of :class:`Event` (the source system's history, in order) by :func:`timeline`, the one rule:
- the first response is the first reply *to the customer* by someone who is not a requestor: not a requestor's own
  message, not an internal comment, not an auto-reply (systems record those as mail, not as a reply);
- a pause runs from entering a waiting status (RT's ``stalled``) to leaving it;
- a resolution ends the resolution clock; a reopen starts it again, and the time between does not count;
- all instants in integer ms (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from monitor.errors import SlawatchError


class SourceError(SlawatchError):
    """A request source could not be read, or answered what is not its documented shape: the sync retries
    at its next round, and nothing is judged from what could not be seen."""

__all__ = ["Event", "RequestTimeline", "timeline", "RequestSource", "SourceError"]


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a request's history: ``kind`` is create, reply (to the customer), comment (internal) or
    status (``new_status``); ``by`` who did it."""

    at_ms: int
    kind: Literal["create", "reply", "comment", "status"]
    by: str
    new_status: str | None = None


@dataclass(slots=True)
class RequestTimeline:
    """The figures the clocks need."""

    source: str
    external_id: str
    queue: str
    subject: str
    requestors: tuple[str, ...]
    opened_ms: int
    first_response_ms: int | None = None
    resolved_ms: int | None = None
    #: waiting on the customer (paused clocks), and resolved-then-reopened spans (not counted either)
    pauses: list[tuple[int, int]] = field(default_factory=list)
    reopened: int = 0
    status: str = "new"
    #: the source system's priority of the request (RT: 0-99), and when it last changed there
    priority: int = 0
    updated_ms: int = 0
    #: the source system's custom fields (name -> first value), for contract_field and severity_field
    fields: dict[str, str] = field(default_factory=dict)


def timeline(source: str, external_id: str, queue: str, subject: str, requestors: tuple[str, ...], events: list[Event],
             waiting: frozenset[str] = frozenset({"stalled"}), closed: frozenset[str] = frozenset({"resolved"}),
             now_ms: int | None = None) -> RequestTimeline:
    """The request's timeline from its history (``events`` in order; the first is its creation)."""
    created = next(e for e in events if e.kind == "create")
    t = RequestTimeline(source, external_id, queue, subject, requestors, created.at_ms)
    who = {r.lower() for r in requestors}
    paused_since: int | None = None
    resolved_since: int | None = None
    for e in events:
        if e.kind == "reply" and t.first_response_ms is None and e.by.lower() not in who:
            t.first_response_ms = e.at_ms
        if e.kind != "status" or e.new_status is None:
            continue
        status = e.new_status
        if paused_since is not None and status not in waiting:
            t.pauses.append((paused_since, e.at_ms))
            paused_since = None
        if resolved_since is not None and status not in closed:
            t.pauses.append((resolved_since, e.at_ms))  # reopened: the resolved span does not count
            resolved_since = None
            t.resolved_ms = None
            t.reopened += 1
        if status in waiting and paused_since is None:
            paused_since = e.at_ms
        if status in closed and resolved_since is None:
            resolved_since = t.resolved_ms = e.at_ms
        t.status = status
    if paused_since is not None and now_ms is not None:
        t.pauses.append((paused_since, now_ms))  # still waiting on the customer
    return t


class RequestSource(Protocol):
    """Where customer requests are read from (Request Tracker 5 is the one built; Jira Service Management or
    ServiceNow follow the same shape): what changed since an instant, as timelines built by :func:`timeline`.
    ``tests/test_request_sources.py`` runs one contract suite over every implementation."""

    name: str

    async def changed_timelines(self, since_ms: int, now_ms: int | None = None,
                                with_fields: bool = False) -> list[RequestTimeline]:
        """The timelines of the requests updated at or after ``since_ms`` (UTC ms), oldest update first; each
        one's ``updated_ms`` is the cursor to resume from. Raises :class:`SourceError` (or another
        SlawatchError) when the source cannot be read or answers garbage."""
        ...

    async def aclose(self) -> None:
        """Close the source's connections."""
        ...
