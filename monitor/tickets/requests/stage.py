"""The customer-request stage of the daemon (monitor.service, #28): on the leader, each request source is read
every ``interval``, from the cursor the store keeps for it, and the changed requests' timelines are stored with
the new cursor in one transaction. A source that does not answer is retried at the next round (said once a
minute); nothing is marked from what could not be seen."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.errors import SlawatchError
from monitor.service import Runtime
from monitor.store.base import RequestRecord
from monitor.tickets.requests.base import RequestTimeline

__all__ = ["RequestStage", "FIRST_SYNC_DAYS", "to_record", "records_of", "contract_of"]

log = logging.getLogger("slawatch.requests")

#: how far back the first sync of a source reads (a month and a day: the report's month and its edge)
FIRST_SYNC_DAYS = 32


def severity(priority: int, thresholds: dict[str, int]) -> str:
    """The request's severity from its priority: the first threshold it reaches, highest first (else minor)."""
    for name, at_least in sorted(thresholds.items(), key=lambda kv: -kv[1]):
        if priority >= at_least:
            return name
    return "minor"


#: the tag slawatch's own RT tickets carry in their subject (monitor.tickets.sinks.rt): never a customer request
OWN_TAG = "[slawatch:"
SEVERITIES = ("critical", "major", "minor")


def contract_of(settings: Any, t: RequestTimeline, contracts: frozenset[str] | None = None) -> str:
    """The request's contract: the custom field's value when it names one, else its requestor's mail domain's,
    else its queue's."""
    named = t.fields.get(settings.contract_field) if settings.contract_field else None
    if named is not None and (contracts is None or named in contracts):
        return named
    for requestor in t.requestors:
        domain = requestor.rpartition("@")[2].lower()
        if domain in settings.requestor_domains:
            return str(settings.requestor_domains[domain])
    return str(settings.queues[t.queue])


def to_record(settings: Any, t: RequestTimeline, contracts: frozenset[str] | None = None) -> RequestRecord:
    """What the store keeps of a request read from the source ``settings`` (its contract from the custom field,
    the requestor's domain or the queue; its severity from the custom field or the priority; seconds)."""
    field_severity = t.fields.get(settings.severity_field, "").lower() if settings.severity_field else ""
    sev = field_severity if field_severity in SEVERITIES else severity(t.priority, settings.severity_from_priority)
    return RequestRecord(settings.name, t.external_id, contract_of(settings, t, contracts), sev, t.subject,
        t.opened_ms / 1000,
        None if t.first_response_ms is None else t.first_response_ms / 1000,
        None if t.resolved_ms is None else t.resolved_ms / 1000, t.status,
        tuple((a / 1000, b / 1000) for a, b in t.pauses), t.reopened, t.updated_ms / 1000)


def records_of(settings: Any, timelines: list[RequestTimeline], contracts: frozenset[str]) -> list[RequestRecord]:
    """The customer requests among what a source read: those of its queues, except slawatch's own tickets."""
    return [to_record(settings, t, contracts) for t in timelines
            if t.queue in settings.queues and OWN_TAG not in t.subject]


class RequestStage:
    """Syncs the config's ``request_sources`` into the store (leader only)."""

    name = "customer-requests"

    def __init__(self, config: Any, rt: Runtime):
        from monitor.tickets.ledger import Ledger

        self.config, self.rt = config, rt
        self.sources: dict[str, Any] = {}
        #: escalation of the requests (#28), through the tickets' outbox (the tickets stage delivers it)
        self.ledger = Ledger(config)

    def _build(self, config: Any) -> dict[str, Any]:
        from monitor.tickets.requests.rt import RtRequestSource

        return {s.name: (s, RtRequestSource(s.name, str(s.url), s.token.get_secret_value(), list(s.queues),
                                            timeout=min(30.0, s.interval), verify=s.verify_tls,
                                            waiting=frozenset(s.waiting_statuses),
                                            closed=frozenset(s.resolved_statuses)))
                for s in config.request_sources}

    async def start(self) -> None:
        """One leader job per source."""
        self.sources = self._build(self.config)
        for name, (settings, _) in self.sources.items():
            self.rt.leader_job(f"requests-{name}", settings.interval, f"request sync from {name}", self._job(name))

    def _job(self, name: str) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            await self.sync(name)

        return job

    async def reload(self, world: Any) -> None:
        """The new config's sources (their jobs take effect at the next restart when the set of names changes)."""
        old = self.sources
        self.config = world.config
        self.ledger.reconfigure(world.config)
        self.sources = self._build(world.config)
        for _, client in old.values():
            await client.aclose()

    async def stop(self) -> None:
        """Close the sources' connections."""
        for _, client in self.sources.values():
            await client.aclose()

    async def sync(self, name: str) -> int:
        """Read what changed at ``name`` since its cursor and store it with the new cursor; returns how many."""
        if name not in self.sources:
            return 0
        settings, client = self.sources[name]
        store = self.rt.store
        cursor = await asyncio.to_thread(store.request_cursor, name)
        since = cursor if cursor is not None else time.time() - FIRST_SYNC_DAYS * 86400
        read_at = time.time()  # what is read is known as of (at least) now
        try:
            timelines = await client.changed_timelines(int(since * 1000), int(time.time() * 1000),
                                                       with_fields=bool(settings.contract_field or settings.severity_field))
        except SlawatchError as exc:
            if self.rt.said.due(f"requests-{name}"):
                log.warning("request source %s: %s (retried every %.0f s; said once a minute)", name, exc,
                            settings.interval)
            return 0
        records = records_of(settings, timelines, frozenset(c.id for c in self.config.contracts))
        await asyncio.to_thread(store.put_requests, records,
                                (name, max([since, *(r.updated for r in records)])), read_at)
        self.rt.live.request_sources_read[name] = read_at
        rows = await asyncio.to_thread(self.rt.store.requests, None, time.time() - FIRST_SYNC_DAYS * 86400, None)
        # escalation from what was just read: the source's open requests, and those that changed now (a
        # response or a resolution stops a clock); never from a source that could not be read
        changed = {(r.source, r.external_id) for r in records}
        mine = [r for r in rows if r.source == name and (r.resolved is None or (r.source, r.external_id) in changed)]
        if mine:  # the first sync's backlog: its tiers recorded, not sent
            await asyncio.to_thread(self.ledger.escalate_requests, store, mine, None, self.rt.leader_fence(),
                                    cursor is None)
        self._publish(rows)
        return len(records)

    def _publish(self, rows: list[RequestRecord]) -> None:
        """The open requests' figures for the exporter: how many per contract and severity, and the business
        seconds left before the next of their clocks passes its target."""
        from monitor.sla.business import business_seconds, calendar_for, clock_verdict
        from monitor.sla.periods import month_of, to_ms

        now = time.time()
        count: dict[tuple[str, str], int] = {}
        nearest: dict[tuple[str, str], float] = {}
        breaches: dict[tuple[str, str, str], int] = {}
        contracts = {c.id: c for c in self.config.contracts}
        read = self.rt.live.request_sources_read
        for r in rows:
            contract = contracts.get(r.contract)
            if contract is None:
                continue
            key = (r.contract, r.severity)
            target = contract.response_targets.get(r.severity)
            cal = calendar_for(contract, r.severity)
            if target is not None and r.opened * 1000 >= month_of(to_ms(now), contract.timezone).start_ms:
                for clock, stop, limit in (("first_response", r.first_response, target.acknowledge),
                                           ("resolution", r.resolved, target.resolve)):
                    _, ok = clock_verdict(cal, r.opened, stop, r.pauses, limit, min(now, read.get(r.source, now)))
                    breaches[(r.contract, r.severity, clock)] = breaches.get((r.contract, r.severity, clock), 0) + (
                        ok is False)
            if r.resolved is not None:
                continue
            count[key] = count.get(key, 0) + 1
            if target is None:
                continue
            spent = business_seconds(cal, r.opened, now, r.pauses)
            limits = ([target.acknowledge] if r.first_response is None else []) + [target.resolve]
            left = min(limit - spent for limit in limits)
            nearest[key] = min(nearest.get(key, left), left)
        live = self.rt.live
        live.requests_open, live.requests_next_breach, live.request_breaches = count, nearest, breaches
