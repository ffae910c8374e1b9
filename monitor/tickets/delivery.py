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
import json
import logging
import random
import sqlite3
import time
from collections import Counter
from typing import Callable

from .ledger import Ledger, _ticket
from .sinks import Delivery, Sink, SinkError

__all__ = ["Deliverer", "backoff"]

log = logging.getLogger("slawatch.tickets")

BASE_BACKOFF = 5.0
MAX_BACKOFF = 900.0


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    delay = min(MAX_BACKOFF, BASE_BACKOFF * 2 ** max(attempts - 1, 0))
    return delay * (0.8 + 0.4 * (rng or random).random())


class Deliverer:
    def __init__(self, store, ledger: Ledger, sinks: dict[str, Sink], clock: Callable[[], float] = time.time,
                 concurrency: int = 8):
        self.store = store
        self.ledger = ledger
        self.sinks = sinks
        self.clock = clock
        self.failures: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.semaphore = asyncio.Semaphore(concurrency)
        self.sinks_config: list = []

    async def replace_sinks(self, sinks: dict[str, Sink], configs: list) -> None:
        old, self.sinks, self.sinks_config = self.sinks, sinks, configs
        for sink in old.values():
            await sink.aclose()

    def _due(self, now: float, limit: int = 200) -> list[sqlite3.Row]:
        with self.store._lock:
            db = self.store._db
            db.row_factory = sqlite3.Row
            return db.execute(
                "SELECT o.*, r.external_id FROM outbox o LEFT JOIN ticket_refs r"
                " ON r.ticket_id = o.ticket_id AND r.sink = o.sink"
                " WHERE o.delivered IS NULL AND o.next_attempt <= ? AND o.id = ("
                "   SELECT MIN(id) FROM outbox o2 WHERE o2.ticket_id = o.ticket_id AND o2.sink = o.sink"
                "   AND o2.delivered IS NULL) ORDER BY o.id LIMIT ?", (now, limit),
            ).fetchall()

    def pending(self) -> dict[str, int]:
        with self.store._lock:
            rows = self.store._db.execute(
                "SELECT sink, COUNT(*) FROM outbox WHERE delivered IS NULL GROUP BY sink").fetchall()
        return {r[0]: r[1] for r in rows}

    async def _one(self, row: sqlite3.Row, now: float) -> None:
        sink = self.sinks.get(row["sink"])
        if sink is None:
            return
        with self.store._lock:
            self.store._db.row_factory = sqlite3.Row
            ticket = _ticket(self.store._db.execute("SELECT * FROM tickets WHERE id = ?", (row["ticket_id"],)).fetchone())
        delivery = Delivery(ticket, row["action"], row["text"], json.loads(row["recipients"]), row["idempotency_key"],
                            row["external_id"], {"now": now})
        async with self.semaphore:
            try:
                external_id = await sink.deliver(delivery)
            except SinkError as exc:
                self.failures[row["sink"]] += 1
                attempts = row["attempts"] + 1
                retry = now + backoff(attempts)
                with self.store.transaction() as db:
                    db.execute("UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?",
                               (attempts, retry, str(exc)[:500], row["id"]))
                log.warning("ticket %s: delivery to %s failed (attempt %d, next in %.0fs): %s",
                            ticket.id, row["sink"], attempts, retry - now, exc)
                return
        with self.store.transaction() as db:
            db.execute("INSERT INTO ticket_refs (ticket_id, sink, external_id, last_action) VALUES (?,?,?,?)"
                       " ON CONFLICT (ticket_id, sink) DO UPDATE SET last_action = excluded.last_action",
                       (row["ticket_id"], row["sink"], external_id, row["action"]))
            db.execute("UPDATE outbox SET delivered = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                       (self.clock(), row["id"]))
        self.delivered[row["sink"]] += 1
        log.info("ticket %s: %s delivered to %s (%s)", ticket.id, row["action"], row["sink"], external_id)

    async def run_once(self, now: float | None = None) -> int:
        """Deliver everything due; returns how many rows were tried."""
        now = self.clock() if now is None else now
        rows = await asyncio.to_thread(self._due, now)
        await asyncio.gather(*(self._one(r, now) for r in rows))
        return len(rows)

    async def poll_acknowledgements(self, now: float | None = None) -> int:
        """Ask the sinks that can tell whether someone took an open ticket; acknowledge it here."""
        now = self.clock() if now is None else now
        with self.store._lock:
            rows = self.store._db.execute(
                "SELECT t.id, r.sink, r.external_id, r.last_action FROM tickets t JOIN ticket_refs r"
                " ON r.ticket_id = t.id WHERE t.state = 'open'").fetchall()
        acked = 0
        for ticket_id, sink_name, external_id, last_action in rows:
            sink = self.sinks.get(sink_name)
            if sink is None:
                continue
            try:
                who = await sink.poll(external_id, last_action)
            except SinkError as exc:
                log.debug("ticket %s: polling %s failed: %s", ticket_id, sink_name, exc)
                continue
            if who:
                await asyncio.to_thread(self.ledger.acknowledge, self.store, ticket_id, who, now)
                acked += 1
        return acked

    async def keep_alerts_firing(self) -> int:
        """Re-send the alerts of tickets still open to sinks that need it (Alertmanager)."""
        with self.store._lock:
            self.store._db.row_factory = sqlite3.Row
            rows = self.store._db.execute(
                "SELECT t.*, r.sink AS ref_sink FROM tickets t JOIN ticket_refs r ON r.ticket_id = t.id"
                " WHERE t.state != 'resolved'").fetchall()
        sent = 0
        for row in rows:
            sink = self.sinks.get(row["ref_sink"])
            refresh = getattr(sink, "refresh", None)
            if refresh is None:
                continue
            try:
                await refresh(_ticket(row))
                sent += 1
            except SinkError as exc:
                log.warning("ticket %s: refreshing its alert in %s failed: %s", row["id"], row["ref_sink"], exc)
        return sent

    async def aclose(self) -> None:
        for sink in self.sinks.values():
            await sink.aclose()
