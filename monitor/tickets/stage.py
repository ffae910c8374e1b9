"""The tickets stage of the daemon (monitor.service): the ledger that turns breach events into tickets inside the
store's transactions, the outbox delivery loop, escalation and acknowledgement polling (leader-only), and
the ticket figures it publishes (counts, open outage tickets, pending deliveries, response times met)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from monitor.errors import StoreError
from monitor.service import Runtime
from monitor.tickets.delivery import Deliverer
from monitor.tickets.ledger import REQUEST_KIND, Ledger, list_tickets, response_times
from monitor.tickets.sinks import make_sink

__all__ = ["TicketStage", "DELIVERY_INTERVAL", "ESCALATION_INTERVAL", "ACK_POLL_INTERVAL"]

log = logging.getLogger("slawatch")

DELIVERY_INTERVAL = 2.0
ESCALATION_INTERVAL = 30.0
ACK_POLL_INTERVAL = 60.0


class TicketStage:
    """Tickets: built from the config, started and stopped by the daemon's supervisor, reloaded with a new
    world (its ``config`` and its ``sinks``: None when the sinks' settings did not change)."""

    name = "tickets"

    def __init__(self, config: Any, rt: Runtime):
        self.rt = rt
        self.config = config
        self.ledger = Ledger(config)
        self.deliverer = Deliverer(rt.store, self.ledger,
                                   {s.name: make_sink(s) for s in config.ticket_sinks if s.enabled})
        self.deliverer.sinks_config = list(config.ticket_sinks)
        # leader-only writes present the leader's term (a cluster); refused ones are decided again from the store
        self.deliverer.fence = rt.leader_fence
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    def sinks_for(self, new: Any) -> dict | None:
        """The sinks a reload to ``new`` needs built (None: the running ones stay)."""
        if list(new.ticket_sinks) == list(self.deliverer.sinks_config):
            return None
        return {s.name: make_sink(s) for s in new.ticket_sinks if s.enabled}

    async def start(self) -> None:
        """The delivery loop, and escalation and acknowledgement polling on the leader."""
        self.rt.leader_job("escalation", ESCALATION_INTERVAL, "escalation", self._escalate)
        self.rt.leader_job("ack-poll", ACK_POLL_INTERVAL, "acknowledgement polling", self._poll_acks)
        self._task = asyncio.create_task(self._deliver_loop(), name="ticket-delivery")

    async def reload(self, world: Any) -> None:
        """The new config's escalation and sinks (built with the world)."""
        self.config = world.config
        self.ledger.reconfigure(world.config)
        if world.sinks is not None:
            await self.deliverer.replace_sinks(world.sinks, list(world.config.ticket_sinks))

    async def stop(self, grace: float = 10.0) -> None:
        """Let the delivery round in progress finish (up to ``grace`` seconds), then close the sinks."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=grace)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        await self.deliverer.aclose()

    # -- the work -----------------------------------------------------------------------------------
    async def _deliver_loop(self) -> None:
        live = self.rt.live
        while not self._stopping.is_set():
            try:
                if self.rt.leads():
                    await self.deliverer.run_once()
                    live.ticket_counts = await asyncio.to_thread(self.rt.store.ticket_counts)
                    live.open_outage_tickets = await asyncio.to_thread(self.rt.store.open_incidents, "outage:")
                    live.outbox_pending = await asyncio.to_thread(self.deliverer.pending)
                    live.delivery_failures = dict(self.deliverer.failures)
                else:
                    live.ticket_counts, live.outbox_pending, live.open_outage_tickets = {}, {}, {}
            except StoreError as exc:
                self.rt.store_failed("ticket delivery", exc)
            except Exception:
                log.exception("ticket delivery round failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=DELIVERY_INTERVAL)
            except asyncio.TimeoutError:
                pass

    async def _escalate(self) -> None:
        await asyncio.to_thread(self.ledger.escalate, self.rt.store, None, self.rt.leader_fence())

    async def _poll_acks(self) -> None:
        await self.deliverer.poll_acknowledgements()
        await self.deliverer.keep_alerts_firing()

    def response_met(self, now: float | None = None) -> dict:
        """(severity, acknowledge|resolve) -> (met, measured) over the tickets opened this UTC month (the rule:
        monitor.tickets.ledger.response_times)."""
        from monitor.sla.periods import month_of, to_ms

        start = month_of(to_ms(time.time() if now is None else now), "UTC").start_ms / 1000
        contracts = {c.id: c for c in self.config.contracts}
        out: dict[tuple[str, str], list[int]] = {}
        for t in list_tickets(self.rt.store, since=start):
            contract = contracts.get(t.contract)
            if contract is None or t.parent_id is not None or t.kind == REQUEST_KIND:
                continue
            rt = response_times(t, contract)
            for kind in ("acknowledge", "resolve"):
                met = rt[f"{kind}_met"]
                if met is not None:
                    cell = out.setdefault((t.severity, kind), [0, 0])
                    cell[0] += int(met)
                    cell[1] += 1
        return {k: tuple(v) for k, v in out.items()}
