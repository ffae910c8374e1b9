"""Runs each target's probe cycle on its interval, on the event loop's monotonic clock.

Start times are spread across the interval by a stable hash of the target id, so 10,000 targets don't fire in
the same millisecond and a restart keeps each target's phase (the first slot is placed on the wall clock's
grid; every later one is the previous plus the interval on the monotonic clock). A step of the wall clock
therefore neither pauses probing (a backward step used to stop every job for as long as the step, APScheduler
waiting for its wall-clock slot) nor bunches it; the cycles' evidence stamps stay wall-clock UTC.

A cycle that is still running when the next is due is counted as an overrun and never stacked: the next cycle
starts the moment the late one ends (a probe job; house-keeping skips the run), so a late slot never becomes a
gap in the evidence, which the timeline would count as unknown time. Slots missed while the loop was blocked
are coalesced into one.

House-keeping jobs (SLA evaluation, escalation, acknowledgement polls, retention, the systemd watchdog, the
cluster's consensus round) run on the monotonic clock too (:meth:`every`), so a clock step neither starves nor
bunches them. Only the monthly reports' cron stays on APScheduler (``scheduler``): "the 1st at 06:00 in the
contract's zone" is a wall-clock matter by nature.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from datetime import timezone
from typing import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.measure.live import SelfStats

__all__ = ["ProbeScheduler", "phase_offset", "first_slot"]

log = logging.getLogger("slawatch.scheduler")


def phase_offset(target_id: str, interval: float) -> float:
    """A stable offset in [0, interval) for this target."""
    return (zlib.crc32(target_id.encode()) % 10_000) / 10_000 * interval


def first_slot(job_id: str, interval: float, now: float) -> float:
    """The next point of this job's phase grid at or after ``now`` (wall clock)."""
    first = now - (now % interval) + phase_offset(job_id, interval)
    while first < now:
        first += interval
    return first


class _Job:
    __slots__ = ("id", "interval", "func", "due", "handle", "task", "probe", "first", "late")

    def __init__(self, job_id: str, interval: float, func: Callable[[], Awaitable[None]], probe: bool = True):
        self.id, self.interval, self.func, self.probe = job_id, interval, func, probe
        self.due = 0.0  # the slot, on the loop's clock
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Future | None = None
        self.first = interval
        self.late = False  # a slot came while the cycle ran: the next cycle starts when this one ends


class ProbeScheduler:
    """Runs each target's cycle on its interval (monotonic clock), spread, bounded, overruns counted."""

    def __init__(self, stats: SelfStats):
        self.stats = stats
        #: house-keeping jobs
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
        self._jobs: dict[str, _Job] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False

    # -- probe jobs ---------------------------------------------------------------------
    def add(self, job_id: str, interval: float, func: Callable[[], Awaitable[None]], *, now: float | None = None) -> None:
        """(Re)schedule ``job_id`` every ``interval`` seconds from the next point of its phase grid."""
        self.remove(job_id)
        job = self._jobs[job_id] = _Job(job_id, interval, func)
        if self._loop is not None:
            self._arm(job, now)

    def every(self, job_id: str, interval: float, func: Callable[[], Awaitable[None]], *,
              first: float | None = None) -> None:
        """A job every ``interval`` seconds (no phase grid), the first run ``first`` seconds after the start
        (default: one interval). A run still going when the next is due is skipped, never stacked."""
        self.remove(job_id)
        job = self._jobs[job_id] = _Job(job_id, interval, func, probe=False)
        job.first = interval if first is None else first
        if self._loop is not None:
            self._arm(job)

    def replace_func(self, job_id: str, func: Callable[[], Awaitable[None]]) -> None:
        """The job's code changes; its slots do not (a reload that keeps the interval loses no cycle)."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.func = func

    def _arm(self, job: _Job, now: float | None = None) -> None:
        """The job's first slot: a probe job's on its phase grid (wall clock), another one interval from now."""
        assert self._loop is not None
        if job.probe:
            wall = time.time() if now is None else now
            job.due = self._loop.time() + (first_slot(job.id, job.interval, wall) - wall)
        else:
            job.due = self._loop.time() + job.first
        job.handle = self._loop.call_at(job.due, self._fire, job)

    def _fire(self, job: _Job) -> None:
        if self._paused or self._jobs.get(job.id) is not job or self._loop is None:
            return
        now = self._loop.time()
        if job.probe:
            self.stats.scheduler_lag_seconds = max(now - job.due, 0.0)
        job.due += job.interval
        if job.due <= now:  # the loop was blocked past whole slots: coalesce them into this run
            job.due += (now - job.due) // job.interval * job.interval + job.interval
        job.handle = self._loop.call_at(job.due, self._fire, job)
        if job.task is not None and not job.task.done():
            if job.probe:
                self.stats.overruns_total += 1
                job.late = True
                log.debug("cycle overrun: %s (the next starts when it ends)", job.id)
            return
        self._start(job)

    def _start(self, job: _Job) -> None:
        job.task = asyncio.ensure_future(job.func())
        job.task.add_done_callback(_report)
        if job.probe:
            job.task.add_done_callback(functools.partial(self._late_start, job))

    def _late_start(self, job: _Job, _task: asyncio.Future | None = None) -> None:
        """A probe cycle ended after its next slot: run that slot's cycle now, so the evidence has no gap."""
        if not job.late:
            return
        job.late = False
        if self._paused or self._jobs.get(job.id) is not job or self._loop is None:
            return
        self._start(job)

    def remove(self, job_id: str) -> None:
        """Stop scheduling ``job_id`` (a removed target); a cycle in flight finishes."""
        job = self._jobs.pop(job_id, None)
        if job is not None and job.handle is not None:
            job.handle.cancel()

    def cron(self, job_id: str, func: Callable[[], Awaitable[None]], *, day: int, hour: int, minute: int,
             timezone: str) -> None:
        """A house-keeping job on a calendar (day of month, local time in ``timezone``), replacing one of the same
        id (a reload that changed the schedule)."""
        from apscheduler.triggers.cron import CronTrigger

        self.scheduler.add_job(func, CronTrigger(day=day, hour=hour, minute=minute, timezone=timezone), id=job_id,
                               replace_existing=True)

    def uncron(self, job_id: str) -> None:
        """Remove a calendar job (no error when there is none)."""
        if self.scheduler.get_job(job_id) is not None:
            self.scheduler.remove_job(job_id)

    def job_ids(self) -> set[str]:
        """The probe jobs."""
        return {j.id for j in self._jobs.values() if j.probe}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start running the jobs on the event loop."""
        self._loop = asyncio.get_running_loop()
        for job in self._jobs.values():
            if job.handle is None:
                self._arm(job)
        self.scheduler.start()

    def pause(self) -> None:
        """No new runs of any job (the running ones finish)."""
        self._paused = True
        for job in self._jobs.values():
            if job.handle is not None:
                job.handle.cancel()
        if self.scheduler.running:
            self.scheduler.pause()

    def shutdown(self) -> None:
        """Stop scheduling; cycles in flight are left to finish or be cancelled by the daemon."""
        self.pause()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def _report(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("scheduled job failed", exc_info=task.exception())
