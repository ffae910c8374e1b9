"""Stage services under a thin supervisor (Twisted's Service/MultiService): one contract for every stage of the
daemon, and the leader-only work declared once.

A stage (tickets, reports, ...) is built from the config, then :meth:`Stage.start`\\ ed by the
:class:`Supervisor` in order, given each reload's new world with :meth:`Stage.reload` (a swap: the world was built
fully before), and :meth:`Stage.stop`\\ ped in reverse order. What the stages share is a :class:`Runtime`: the
store, the live state they publish their figures in, the scheduler, whether this node leads and the leader's
fence. Imports nothing of slawatch's layers above the bottom one (the runtime's parts are typed by protocols).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.errors import StoreError
from monitor.logs import RateLimited

__all__ = ["Stage", "Supervisor", "Runtime"]

log = logging.getLogger("slawatch")


class Stage(Protocol):
    """One stage of the daemon."""

    name: str

    async def start(self) -> None:
        """Begin the stage's work (tasks, scheduled jobs); the daemon's runtime is running."""
        ...

    async def reload(self, world: Any) -> None:
        """Swap in the new world's parts (built fully before any stage's reload; nothing may fail here)."""
        ...

    async def stop(self) -> None:
        """End the stage's work and release what it holds; called once, in reverse start order."""
        ...


class _Every(Protocol):
    def every(self, job_id: str, interval: float, func: Callable[[], Awaitable[None]], *, first: float | None = None
              ) -> None: ...

    def cron(self, job_id: str, func: Callable[[], Awaitable[None]], *, day: int, hour: int, minute: int,
             timezone: str) -> None: ...

    def uncron(self, job_id: str) -> None: ...


@dataclass
class Runtime:
    """What the stages share with the daemon."""

    store: Any  # monitor.store.Store
    live: Any  # monitor.measure.live.LiveState: where each stage publishes its figures
    scheduler: _Every
    #: whether this node runs the cluster-wide work now (always without a cluster)
    leads: Callable[[], bool]
    #: the leader's fence for its writes (None outside a cluster)
    leader_fence: Callable[[], Any]
    said: RateLimited = field(default_factory=lambda: RateLimited(60.0))

    def store_failed(self, what: str, exc: StoreError) -> None:
        """A periodic job found the store failing: said once a minute per job, not once per round."""
        if self.said.due(what):
            log.warning("%s skipped: %s (said at most once a minute)", what, exc)

    def leader_only(self, what: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Cluster-wide work declared once: it runs on the leader only, and a store failure is said once a minute,
        any other failure logged, never the end of the job."""
        async def job() -> None:
            if not self.leads():
                return
            try:
                await work()
            except StoreError as exc:
                self.store_failed(what, exc)
            except Exception:
                log.exception("%s failed", what)
        return job

    def leader_job(self, name: str, every: float, what: str, work: Callable[[], Awaitable[None]]) -> None:
        """``work`` every ``every`` seconds on the leader (:meth:`leader_only`)."""
        self.scheduler.every(name, every, self.leader_only(what, work))


class Supervisor:
    """Starts its stages in order, reloads them in that order, stops them in reverse (a stage that fails to stop
    is logged; the others still stop)."""

    def __init__(self) -> None:
        self.stages: list[Stage] = []
        self._started: list[Stage] = []

    def add(self, stage: Stage) -> Stage:
        """Add a stage after the others (it starts after them and stops before them)."""
        self.stages.append(stage)
        return stage

    async def start(self, until: Stage | None = None) -> None:
        """Start the stages not started yet, in order (up to and including ``until``: the listeners start
        before the rest of the daemon's start-up, the other stages after it)."""
        for stage in self.stages:
            if stage in self._started:
                continue
            await stage.start()
            self._started.append(stage)
            if stage is until:
                return

    async def reload(self, world: Any) -> None:
        """Give every stage the new world, in order (a stage not started yet holds it for its start)."""
        for stage in self.stages:
            await stage.reload(world)

    async def stop(self) -> None:
        """Stop the started stages in reverse order."""
        while self._started:
            stage = self._started.pop()
            try:
                await stage.stop()
            except Exception:
                log.exception("stopping the %s stage failed", stage.name)
