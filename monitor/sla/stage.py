"""The SLA-evaluation stage of the daemon (monitor.service): on the leader, every minute, the month-to-date figures
of every target for the exporter, and the budget-burn and breach events into the store (under the leader's
term)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from monitor.errors import StoreError
from monitor.service import Runtime
from monitor.store import Batch

__all__ = ["SlaStage", "SLA_EVALUATION_INTERVAL"]

log = logging.getLogger("slawatch")

SLA_EVALUATION_INTERVAL = 60.0
#: how long the start waits for the first evaluation before the exporter serves anyway
START_EVALUATION_TIMEOUT = 10.0


class _Writer(Protocol):
    async def flush(self, *, force: bool = False) -> bool: ...

    @property
    def failing(self) -> bool: ...


class SlaStage:
    """Evaluation with the world's ``evaluator`` (swapped on reload). ``response_met()`` gives the tickets'
    response-time figures (the tickets stage's); ``lead_records(batch, what)`` writes under the leader's term."""

    name = "sla-evaluation"

    def __init__(self, config: Any, rt: Runtime, evaluator: Any, writer: _Writer,
                 response_met: Callable[[], dict], lead_records: Callable[[Batch, str], None]):
        self.config, self.rt, self.evaluator, self.writer = config, rt, evaluator, writer
        self.response_met, self.lead_records = response_met, lead_records

    async def start(self) -> None:
        """One evaluation now, from the state the node started with (the supervisor starts the exporter after
        this stage: a restart never scrapes without the SLA series, which would resolve and re-fire every alert
        on them), again 5 s on (the first cycles, and leadership a cluster node takes meanwhile), then every
        minute."""
        try:  # bounded: a store that does not answer must not keep the exporter from serving
            await asyncio.wait_for(self.evaluate(), START_EVALUATION_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("the first SLA evaluation took over %.0f s; the exporter serves without its figures until "
                        "the next one", START_EVALUATION_TIMEOUT)
        self.rt.scheduler.every("sla-evaluation", SLA_EVALUATION_INTERVAL, self.evaluate, first=5)

    async def reload(self, world: Any) -> None:
        """The new config's evaluator (its objectives, maintenance and targets)."""
        self.config, self.evaluator = world.config, world.evaluator

    async def stop(self) -> None:
        """Nothing of its own runs: its job ends with the scheduler."""

    async def evaluate(self) -> None:
        """Month-to-date figures for the exporter, and budget-burn / breach events into the store."""
        live = self.rt.live
        if not self.rt.leads():
            live.set_sla({})
            return
        await self.writer.flush()
        try:
            if self.config.cluster is not None:  # other nodes' targets: what they stored
                states = await asyncio.to_thread(self.rt.store.load_states)
                coverage = {name: (st.tracker.get("first_cycle"), st.tracker.get("last_cycle"))
                            for name, st in states.items()}
            else:
                coverage = {t.target: (t.tracker.first_cycle, t.tracker.last_cycle) for t in live.snapshot()}
            at = time.time()
            if self.writer.failing:
                return  # figures from a store that lacks the backlog would be stale; the last ones stay exported
            results, events = await asyncio.to_thread(self.evaluator.evaluate, at, coverage)
        except StoreError as exc:
            self.rt.store_failed("SLA evaluation", exc)
            return
        except Exception:
            log.exception("SLA evaluation failed")
            return
        live.set_sla(results)
        live.sla_time = at
        try:  # response times change slowly: once a minute, not in the 2 s delivery loop
            live.response_met = await asyncio.to_thread(self.response_met)
        except Exception:
            log.exception("response-time figures failed")
        if events:
            self.lead_records(Batch(events=events), "SLA events")
