"""The probing stage of the daemon (monitor.service): the probe units this node may probe, one scheduled job per
unit it owns (every unit without a cluster), each cycle run, judged and ingested into the writer's batch.

In a cluster the stage keeps a job for exactly the units this node owns now (the cluster sync), takes a unit
over from what its previous owner stored, and on a rejoin under a new epoch writes what it measured under the
old lease first (monitor.measure.writer) and continues every unit from the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.errors import StoreError
from monitor.exact import percent_ratio
from monitor.measure.canary import CanaryWatch
from monitor.measure.cycle import run_cycle
from monitor.measure.ingest import Ingestor
from monitor.measure.live import TargetLive
from monitor.measure.scheduler import ProbeScheduler
from monitor.measure.state import TargetTracker
from monitor.service import Runtime

__all__ = ["ProbingStage", "objective_thresholds", "tracker_for", "SHUTDOWN_GRACE"]

log = logging.getLogger("slawatch.daemon")

#: how long a stop waits for in-flight cycles before giving up on them
SHUTDOWN_GRACE = 10.0


def objective_thresholds(contract) -> dict[str, float]:
    """A contract's objectives as the live state's thresholds (ratios for percentages)."""
    o = contract.objectives
    out = {"availability": percent_ratio(o.availability)}
    if o.latency is not None:
        out["latency"] = o.latency.max
    if o.loss is not None:
        out["loss"] = percent_ratio(o.loss)
    if o.jitter is not None:
        out["jitter"] = o.jitter
    if o.mos is not None:
        out["mos"] = o.mos
    if o.one_way_delay is not None:
        out["one_way_delay"] = o.one_way_delay
    if o.response_time is not None:
        out["response_time"] = o.response_time.max
    if o.tls_expiry_min is not None:
        out["tls_expiry"] = o.tls_expiry_min
    return out


def tracker_for(target, saved: dict | None) -> TargetTracker:
    """The target's state tracker: continued from its stored snapshot, or new."""
    if saved:
        return TargetTracker.restore(saved, failure_threshold=target.failure_threshold,
                                     recovery_threshold=target.recovery_threshold,
                                     degraded_threshold=target.degraded_threshold)
    return TargetTracker(target.id, failure_threshold=target.failure_threshold,
                         recovery_threshold=target.recovery_threshold, degraded_threshold=target.degraded_threshold)


class ProbingStage:
    """Probing. ``writer`` takes each cycle's records; ``cluster`` (set once the node joined) says what this node
    owns; ``after_sync`` runs after each cluster sync round (the daemon adopts a config another node
    published)."""

    name = "probing"

    def __init__(self, config: Any, rt: Runtime, scheduler: ProbeScheduler, units: dict, ingestor: Ingestor,
                 canary: CanaryWatch, probe_context: Any, writer: Any):
        self.config, self.rt, self.writer = config, rt, writer
        #: the probe jobs' scheduler (the runtime's: one scheduler runs every job of the daemon)
        self.scheduler = scheduler
        self.ingestor, self.canary, self.probe_context = ingestor, canary, probe_context
        self.units: dict = {}
        self.use_units(units, config)
        self.cluster: Any = None
        self.after_sync: Callable[[], Awaitable[None]] | None = None
        self.inflight: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._epoch_seen: int | None = None
        self._rejoining = asyncio.Lock()
        self._cluster_jobs: set[str] = set()
        self._sync_task: asyncio.Task | None = None

    # -- what this node may probe -----------------------------------------------------------------
    def use_units(self, units: dict, config: Any) -> None:
        """What this node may probe (at start and at each reload): for the scheduler, the ingestor, the metrics."""
        live = self.rt.live
        self.units = units
        live.contracts = {c.id: (c.customer, c.provider) for c in config.contracts}
        live.target_kinds = {t.id: t.kind for t in config.targets}
        self.ingestor.set_units(units)
        live.site_units = {uid: (u.parent, u.site) for uid, u in units.items() if u.site is not None}

    def install(self) -> None:
        """Every unit's live state from its stored tracker; without a cluster, a job for each (in a cluster the
        sync adds a job for the units this node owns)."""
        saved = {k: v.tracker for k, v in self.rt.store.load_states().items()}
        entries = {}
        for target in (u.target for u in self.units.values()):
            entries[target.id] = TargetLive(
                target=target.id, contract=target.contract, kind=target.kind,
                tracker=tracker_for(target, saved.get(target.id)),
                objectives=objective_thresholds(self.config.contract(target.contract)),
            )
        self.rt.live.set_targets(entries)
        if self.cluster is None:
            for target in (u.target for u in self.units.values()):
                self.scheduler.add(target.id, target.interval, self.job(target))

    # -- the stage contract -----------------------------------------------------------------------------
    async def start(self) -> None:
        """In a cluster: the sync that keeps a job for exactly the units this node owns."""
        if self.cluster is not None:
            self._sync_task = asyncio.create_task(self._cluster_sync(), name="cluster-sync")

    async def reload(self, world: Any) -> None:
        """The new world's units, ingestion, canary and probe context; jobs removed, added and rescheduled (a
        job whose interval is unchanged keeps its slots, so no cycle is lost or doubled)."""
        new, old, fresh = world.config, world.old, world.fresh
        self.config = new
        self.ingestor.reconfigure(new, world.calendar)
        self.use_units(world.units, new)
        world.canary.carry_over(self.canary)  # at the swap: no verdict observed while the world was built is lost
        self.canary = world.canary
        self.probe_context = world.probe_context
        live_state = self.rt.live
        scheduler = self.scheduler
        entries = dict(live_state.targets)
        for tid in set(old) - set(fresh):
            scheduler.remove(tid)
            self._cluster_jobs.discard(tid)
            entries.pop(tid, None)
        for tid, target in fresh.items():
            if tid in world.added:
                entries[tid] = world.added[tid]
                if self.cluster is None:
                    scheduler.add(tid, target.interval, self.job(target))
            elif target != old[tid]:
                live = entries[tid]
                live.assign(target.contract, target.kind, world.objectives[target.contract])
                live.tracker.failure_threshold = target.failure_threshold
                live.tracker.recovery_threshold = target.recovery_threshold
                live.tracker.degraded_threshold = target.degraded_threshold
                self._schedule(tid, target, replace=target.interval != old[tid].interval)
            else:
                self._schedule(tid, target, replace=False)  # its contract may have changed
        live_state.set_targets(entries)

    async def drain(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Start no more cycles; let the running ones finish (up to ``grace`` seconds, the rest cancelled), so
        what they measured reaches the writer before it stops."""
        self._stopping.set()
        self.scheduler.pause()
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("%d probe cycles did not finish within %.0fs and were dropped", len(pending), grace)
        self.scheduler.shutdown()

    async def stop(self) -> None:
        """End the cluster sync and close the probe engines (after :meth:`drain`)."""
        self._stopping.set()
        if self._sync_task is not None:
            try:
                await asyncio.wait_for(self._sync_task, timeout=5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        if self.probe_context.icmp_engine is not None:
            self.probe_context.icmp_engine.close()
        if self.probe_context.snmp_engine is not None:
            self.probe_context.snmp_engine.close()

    # -- a cluster's ownership ----------------------------------------------------------------------
    def _acquire(self, target) -> TargetLive:
        """This node now owns ``target``: continue from what the previous owner stored (its tracker, this hour's
        and this month's rollups). The gap since its last stored cycle becomes unknown time at the next cycle."""
        live = self.rt.live
        saved = self.rt.store.state(target.id)
        old = live.targets[target.id]
        fresh = TargetLive(target=target.id, contract=target.contract, kind=target.kind,
                           tracker=tracker_for(target, saved.tracker if saved else None), objectives=old.objectives)
        fresh.owned = True
        self.ingestor.forget(target.id)
        self.ingestor.preload(self.rt.store, time.time(), only=target.id)
        with live.lock:
            live.targets[target.id] = fresh
        return fresh

    async def _new_epoch(self) -> None:
        """A (re)join: what this node measured under its expired lease is written first, under the new one, for
        the units no other node measured meanwhile (a database outage that outlasted the lease: the node was
        their only prober); the rest is dropped (BatchWriter._adopt). Then every target it owns again continues
        from the store, so a span another node or nobody measured becomes unknown time."""
        assert self.cluster is not None
        async with self._rejoining:
            epoch = self.cluster.epoch
            if epoch == self._epoch_seen:
                return
            if self._epoch_seen is not None:
                await self.writer.flush(force=True)
            for live in self.rt.live.targets.values():
                if live.owned:
                    live.set_owned(False)
                    self.ingestor.forget(live.target)
            self._epoch_seen = epoch

    async def _cluster_sync(self) -> None:
        """Keep a probe job for exactly the targets this node owns now (a job for every target of a large
        cluster costs a node CPU and memory for targets other nodes probe)."""
        assert self.cluster is not None
        period = min(self.cluster.cfg.heartbeat, 1.0)
        scheduler = self.scheduler
        while not self._stopping.is_set():
            try:
                owned = self.cluster.owned if self.cluster.may_probe() else frozenset()
                targets = {uid: u.target for uid, u in self.units.items()}
                wanted = {tid for tid in owned if tid in targets}
                for tid in self._cluster_jobs - wanted:
                    scheduler.remove(tid)
                    live = self.rt.live.targets.get(tid)
                    if live is not None and live.owned:
                        live.set_owned(False)
                        self.ingestor.forget(tid)
                for tid in wanted - self._cluster_jobs:
                    scheduler.add(tid, targets[tid].interval, self.job(targets[tid]))
                self._cluster_jobs = wanted
                self.rt.live.owned = owned
                if self.after_sync is not None:
                    await self.after_sync()
            except Exception:  # one bad round must not end the sync
                log.exception("cluster job sync failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=period)
            except asyncio.TimeoutError:
                pass

    # -- jobs -------------------------------------------------------------------------------------------
    def _schedule(self, tid: str, target, *, replace: bool) -> None:
        """(Re)schedule a target after a reload; in a cluster only a target this node has a job for."""
        if self.cluster is not None and tid not in self._cluster_jobs:
            return  # the sync adds it if this node owns it
        if replace:
            self.scheduler.add(tid, target.interval, self.job(target))
        else:
            self.scheduler.replace_func(tid, self.job(target))

    def job(self, target):
        """The scheduled job of one probe unit: one cycle, judged and ingested."""
        contract = self.config.contract(target.contract)
        stats = self.rt.live.stats

        async def job() -> None:
            if self._stopping.is_set():
                return
            task = asyncio.current_task()
            assert task is not None  # a job runs as a task of the scheduler
            self.inflight.add(task)
            t0 = time.perf_counter()
            try:
                live = self.rt.live.targets.get(target.id)
                if live is None:
                    return
                if self.cluster is not None:
                    if self.cluster.epoch != self._epoch_seen:
                        await self._new_epoch()
                    if not self.cluster.owns(target.id):
                        if live.owned:
                            live.set_owned(False)
                            self.ingestor.forget(target.id)
                        return  # another node probes it (or this one has no lease)
                    if not live.owned:
                        try:
                            live = await asyncio.to_thread(self._acquire, target)
                        except StoreError as exc:  # cannot read what the previous owner stored: not ours yet
                            self.rt.store_failed("taking over a target", exc)
                            return
                previous = live.tracker.last_cycle
                mono, previous_mono = time.monotonic(), live.last_mono
                live.cycle_started(mono)
                outcome = await run_cycle(target, contract, live, self.probe_context, self.canary)
                self.ingestor.ingest(self.writer.batch, target, outcome, live, previous,
                                     None if previous_mono is None else mono - previous_mono)
                self.writer.added()
            except Exception:  # a bug in one cycle must not stop the daemon
                log.exception("probe cycle of %s failed", target.id)
            finally:
                stats.cycles_total += 1
                stats.cycle_duration_sum += time.perf_counter() - t0
                self.inflight.discard(task)

        return job
