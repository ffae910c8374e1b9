"""The vantage-consensus stage of the daemon (monitor.service): on the cluster's leader, every heartbeat, the
sites' views of each multi-site target combined into its state, outages and unknown time
(monitor.cluster.vantage), written under the leader's term."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from monitor.cluster.consensus import multi_site
from monitor.cluster.vantage import ConsensusKeeper, open_site_outages
from monitor.errors import StoreError
from monitor.service import Runtime
from monitor.store import Batch

__all__ = ["ConsensusStage"]


class ConsensusStage:
    """The leader's consensus rounds; ``lead_records(batch, what)`` hands what a round decided to the writer
    under the leader's term."""

    name = "vantage-consensus"

    def __init__(self, config: Any, rt: Runtime, keeper: ConsensusKeeper,
                 lead_records: Callable[[Batch, str], None]):
        self.config, self.rt, self.keeper, self.lead_records = config, rt, keeper, lead_records
        self._was_leader = False

    async def start(self) -> None:
        """A round every heartbeat (a cluster only)."""
        if self.config.cluster is not None:
            self.rt.scheduler.every("vantage-consensus", self.config.cluster.heartbeat, self.round)

    async def reload(self, world: Any) -> None:
        """The new config's multi-site targets take part from the next round."""
        self.config = world.config

    async def stop(self) -> None:
        """Nothing of its own runs: its job ends with the scheduler."""

    async def round(self) -> None:
        """The leader combines the sites' views of each multi-site target (monitor.cluster.consensus)."""
        leads = self.rt.leads()
        if leads != self._was_leader:
            self.keeper.forget()  # a new leader starts from the store; a former one forgets
            self._was_leader = leads
        targets = multi_site(self.config.targets)
        if not leads or not targets:
            return
        store = self.rt.store
        try:
            states = await asyncio.to_thread(store.load_states, self.keeper.state_names(targets))
            stored_dark = None
            if not self.keeper.loaded:
                events = await asyncio.to_thread(store.events, time.time() - 31 * 86400, time.time() + 60)
                stored_dark = open_site_outages(events)
            out = Batch()  # decided off the event loop (about 0.2 s for 10,000 targets: bench/consensus_round.py)
            await asyncio.to_thread(self.keeper.round, targets, states, time.time(), out, stored_dark,
                                    self.site_history)
        except StoreError as exc:
            self.rt.store_failed("vantage consensus", exc)
            return
        self.lead_records(out, "vantage consensus")

    def site_history(self, since: float) -> dict[str, dict[str, list]]:
        """The sites' down outages and unknown intervals (of multi-site targets' units) overlapping [since, now],
        for a round that replays a span no leader decided (monitor.cluster.vantage)."""
        out: dict[str, dict[str, list]] = {}
        now = time.time()
        for o in self.rt.store.outages_between(since, now + 60):
            if o.kind == "down" and "@" in o.target:
                out.setdefault(o.target, {}).setdefault("down", []).append((o.start, o.end))
        for u in self.rt.store.unknown_intervals(None, since, now + 60):
            if "@" in u.target:
                out.setdefault(u.target, {}).setdefault("unknown", []).append((u.start, u.end))
        return out
