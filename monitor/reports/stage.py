"""The reports stage of the daemon (monitor.service): the monthly report run on the configured day (caught up
at start), and the retention purge; both leader-only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.reports.schedule import ReportSchedule
from monitor.service import Runtime

__all__ = ["ReportStage", "PURGE_INTERVAL"]

log = logging.getLogger("slawatch")

PURGE_INTERVAL = 3600.0
#: seconds after the start before a missed month's run is caught up
CATCH_UP_AFTER = 10.0


class ReportStage:
    """Monthly reports and retention; ``flush`` writes the backlog first (a run from a store that lacks it waits
    for the next start or run). Reloaded with a new world's ``config`` and ``reports`` (a ReportSchedule)."""

    name = "reports"

    def __init__(self, config: Any, rt: Runtime, flush: Callable[[], Awaitable[bool]]):
        self.config, self.rt, self.flush = config, rt, flush
        self.schedule = self.build(config)
        self._catch_up: asyncio.TimerHandle | None = None
        self._run = rt.leader_only("monthly report run (retried at the next start or run)", self._monthly_reports)

    def build(self, config: Any) -> ReportSchedule:
        """The report run for a config (built with a reload's world)."""
        return ReportSchedule(config, self.rt.store, time.time)

    async def start(self) -> None:
        """The retention purge every hour, and the monthly run on its day (caught up shortly after the start)."""
        self.rt.leader_job("retention-purge", PURGE_INTERVAL, "retention purge", self._purge)
        if self._arm(self.config):
            self._catch_up = asyncio.get_running_loop().call_later(
                CATCH_UP_AFTER, lambda: asyncio.ensure_future(self._run()))

    def _arm(self, config: Any) -> bool:
        r = config.reports
        if r is None or not r.enabled:
            self.rt.scheduler.uncron("monthly-reports")
            return False
        hour, minute = (int(x) for x in r.at.split(":"))
        self.rt.scheduler.cron("monthly-reports", self._run, day=r.day, hour=hour, minute=minute, timezone=r.timezone)
        return True

    async def reload(self, world: Any) -> None:
        """The new config's report run (and its day, when that changed)."""
        if world.config.reports != self.config.reports:
            self._arm(world.config)
        self.config, self.schedule = world.config, world.reports

    async def stop(self) -> None:
        """Nothing runs on its own: the jobs end with the scheduler; a pending catch-up is dropped."""
        if self._catch_up is not None:
            self._catch_up.cancel()

    async def _monthly_reports(self) -> None:
        if await self.flush():  # else the store lacks the backlog: the run waits for the next start or run
            await asyncio.to_thread(self.schedule.run_pending)

    async def _purge(self) -> None:
        now = time.time()
        storage = self.config.storage
        raw, hourly = await asyncio.to_thread(self.rt.store.purge, now - storage.raw_retention,
                                              now - storage.rollup_retention)
        if raw or hourly:
            log.info("retention: removed %d raw cycles and %d hourly rollups", raw, hourly)
