"""Delivers the outbox to the sinks, with retries that survive restarts.

For each (ticket, sink) only the oldest undelivered row is due, so a sink
sees open before update before resolve. A failure keeps the row and retries
it with exponential backoff and jitter (5 s, 10 s, 20 s ... at most 15 min).
The outbox lives in the store, so retries survive restarts. A sink that stays
down shows in ``slawatch_ticket_delivery_failures_total{sink}``,
``slawatch_ticket_outbox_pending{sink}`` and ``slawatch tickets list``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from typing import Callable

from monitor.store.base import Delivered, Fence, OutboxItem, TicketStore
from monitor.tickets.ledger import REQUEST_KIND, Ledger
from monitor.tickets.sinks import Acknowledging, Delivery, Refreshing, Sink, SinkError

__all__ = ["Deliverer", "backoff", "scrub"]

from monitor.secrets import redact

log = logging.getLogger("slawatch.tickets")

BASE_BACKOFF = 5.0
MAX_BACKOFF = 900.0


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ***, in every form an upstream may echo it
    (:func:`monitor.secrets.redact`)."""
    return redact(text, secrets)


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next delivery attempt: exponential with jitter, capped."""
    delay = min(MAX_BACKOFF, BASE_BACKOFF * 2 ** max(attempts - 1, 0))
    return delay * (0.8 + 0.4 * (rng or random).random())


class Deliverer:
    """Delivers the outbox to the sinks, retries failures, polls acknowledgements and refreshes alerts."""

    def __init__(self, store: TicketStore, ledger: Ledger, sinks: dict[str, Sink], clock: Callable[[], float] = time.time,
                 concurrency: int = 8):
        self.store = store
        self.ledger = ledger
        self.sinks = sinks
        self.clock = clock
        self.failures: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.semaphore = asyncio.Semaphore(concurrency)
        self.sinks_config: list = []
        #: in a cluster, the leader's fence (lease and term): every outbox and ledger write presents it, so a
        #: leader that was paused or cut off never records a delivery under a term that is over
        self.fence: Callable[[], Fence | None] = lambda: None

    async def replace_sinks(self, sinks: dict[str, Sink], configs: list) -> None:
        """Swap in the sinks of a new config and close the old ones (a reload)."""
        old, self.sinks, self.sinks_config = self.sinks, sinks, configs
        for sink in old.values():
            await sink.aclose()

    def _due(self, now: float, limit: int = 200) -> list[OutboxItem]:
        return self.store.outbox_due(now, limit)

    def pending(self) -> dict[str, int]:
        """sink -> undelivered outbox rows."""
        return self.store.outbox_pending()

    def sink_secrets(self) -> list[str]:
        """The configured sinks' secrets, for masking in logs."""
        from monitor.logs import config_secrets

        return config_secrets(list(self.sinks_config))

    async def _one(self, item: OutboxItem, now: float) -> None:
        sink = self.sinks.get(item.sink)
        if sink is None:
            return
        ticket = await asyncio.to_thread(self.store.ticket, item.ticket_id)
        if ticket is None:
            return
        contract = self.ledger.contracts.get(ticket.contract)
        delivery = Delivery(ticket, item.action, item.text, item.recipients, item.idempotency_key,
                            item.external_id, {"now": now, "requestor": contract.customer_email if contract else None})
        async with self.semaphore:
            try:
                external_id = await sink.deliver(delivery)
            except SinkError as exc:
                self.failures[item.sink] += 1
                attempts = item.attempts + 1
                retry = now + backoff(attempts)
                # an upstream may echo a credential back (a 401 body with the token): never stored or shown
                error = scrub(str(exc), self.sink_secrets())
                await asyncio.to_thread(self.store.outbox_failed, item.id, attempts, retry, error, self.fence())
                log.warning("ticket %s: delivery to %s failed (attempt %d, next in %.0fs): %s",
                            ticket.id, item.sink, attempts, retry - now, error)
                return
        await asyncio.to_thread(self.store.outbox_delivered,
                                Delivered(item.id, item.ticket_id, item.sink, item.action, external_id, self.clock()),
                                self.fence())
        self.delivered[item.sink] += 1
        log.info("ticket %s: %s delivered to %s (%s)", ticket.id, item.action, item.sink, external_id)

    async def run_once(self, now: float | None = None) -> int:
        """Deliver everything due; returns how many rows were tried."""
        now = self.clock() if now is None else now
        rows = await asyncio.to_thread(self._due, now)
        await asyncio.gather(*(self._one(r, now) for r in rows))
        return len(rows)

    async def poll_acknowledgements(self, now: float | None = None) -> int:
        """Ask the sinks that can tell whether someone took an open ticket; acknowledge it here."""
        now = self.clock() if now is None else now
        refs = await asyncio.to_thread(self.store.refs_of_open, ("open",))
        acked = 0
        for ticket, sink_name, external_id, last_action in refs:
            sink = self.sinks.get(sink_name)
            if not isinstance(sink, Acknowledging) or ticket.kind == REQUEST_KIND:
                continue  # a customer request's escalation stops at its response, not at an owner in RT
            try:
                who = await sink.poll(external_id, last_action)
            except SinkError as exc:
                log.debug("ticket %s: polling %s failed: %s", ticket.id, sink_name, exc)
                continue
            if who:
                await asyncio.to_thread(self.ledger.acknowledge, self.store, ticket.id, who, now, self.fence())
                acked += 1
        return acked

    async def keep_alerts_firing(self) -> int:
        """Re-send the alerts of tickets still open to sinks that need it (Alertmanager)."""
        refs = await asyncio.to_thread(self.store.refs_of_open, ("open", "acknowledged"))
        sent = 0
        for ticket, sink_name, _external_id, _last in refs:
            sink = self.sinks.get(sink_name)
            if not isinstance(sink, Refreshing):
                continue
            # the description the alert was opened with (cause, customer, links), never just the title
            rows = await asyncio.to_thread(self.store.outbox, ticket.id)
            text = next((r.text for r in reversed(rows) if r.sink == sink_name and r.action == "open"), ticket.title)
            try:
                await sink.refresh(ticket, text)
                sent += 1
            except SinkError as exc:
                log.warning("ticket %s: refreshing its alert in %s failed: %s", ticket.id, sink_name, exc)
        return sent

    async def aclose(self) -> None:
        """Close every sink's connections."""
        for sink in self.sinks.values():
            await sink.aclose()
