"""Runs each target's probe cycle on its interval with APScheduler.

Start times are spread across the interval by a stable hash of the target
id, so 10,000 targets don't fire in the same millisecond and a restart
keeps each target's phase. A cycle that is still running when the next is
due is counted as an overrun and skipped, never stacked.
"""

from __future__ import annotations

import logging
import time
import zlib
from datetime import datetime, timezone
from typing import Awaitable, Callable

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .live import SelfStats

__all__ = ["ProbeScheduler", "phase_offset"]

log = logging.getLogger("slawatch.scheduler")


def phase_offset(target_id: str, interval: float) -> float:
    """A stable offset in [0, interval) for this target."""
    return (zlib.crc32(target_id.encode()) % 10_000) / 10_000 * interval


class ProbeScheduler:
    def __init__(self, stats: SelfStats):
        self.stats = stats
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_SUBMITTED)

    def _on_event(self, event) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.stats.overruns_total += 1
            log.debug("cycle overrun: %s", event.job_id)
        elif isinstance(event, JobSubmissionEvent) and event.scheduled_run_times:
            lag = (datetime.now(timezone.utc) - event.scheduled_run_times[-1]).total_seconds()
            self.stats.scheduler_lag_seconds = max(lag, 0.0)

    def add(self, job_id: str, interval: float, func: Callable[[], Awaitable[None]], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        # the first run is at the next point of this target's phase grid
        offset = phase_offset(job_id, interval)
        first = now - (now % interval) + offset
        while first < now:
            first += interval
        trigger = IntervalTrigger(
            seconds=interval,
            start_date=datetime.fromtimestamp(first, timezone.utc),
            timezone=timezone.utc,
        )
        self.scheduler.add_job(
            func, trigger, id=job_id, name=job_id, replace_existing=True,
            misfire_grace_time=max(int(interval), 1),
        )

    def remove(self, job_id: str) -> None:
        if self.scheduler.get_job(job_id):
            self.scheduler.remove_job(job_id)

    def job_ids(self) -> set[str]:
        return {job.id for job in self.scheduler.get_jobs()}

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
