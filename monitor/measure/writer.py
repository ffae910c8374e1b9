"""Batched, asynchronous writes to the store: one transaction per batch, not per sample.

A failed write keeps its records and is retried, so a store that goes away
(PostgreSQL stopped, a full disk) costs nothing while it comes back within the
backlog's bound:

* retries back off exponentially (1 s doubling to 30 s) instead of hammering the store;
* the log says once that the store is unreachable, then at most once a minute how large
  the backlog is, and once when it is written;
* ``slawatch_store_backlog_cycles`` shows the cycles held in memory;
* past ``storage.backlog_max_cycles`` the oldest raw cycles are dropped. Outages, states,
  rollups and events are kept (they are bounded by the number of targets). The span of
  every dropped cycle that was not bad becomes unknown time for its target, so lost
  evidence never counts as up, and downtime already recorded is never hidden.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.errors import FencedError, StoreError
from monitor.logs import RateLimited  # noqa: F401 (re-exported: its users import it from here)
from monitor.measure.live import SelfStats
from monitor.store import Batch, CycleRecord, UnknownRecord
from monitor.store.base import EvidenceWriter, Fence

if TYPE_CHECKING:
    from monitor.measure.spool import Spool

__all__ = ["BatchWriter", "RateLimited", "LOST_REASON"]

log = logging.getLogger("slawatch.store")

#: the reason of unknown time recorded for raw cycles dropped from a full backlog
LOST_REASON = "store unreachable: cycles dropped from the full backlog"
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0


def drop_oldest(batch: Batch, keep: int) -> int:
    """Drop the oldest raw cycles so that ``keep`` remain; their non-bad spans become unknown time."""
    excess = len(batch.cycles) - keep
    if excess <= 0:
        return 0
    ordered = sorted(range(len(batch.cycles)), key=lambda i: batch.cycles[i].started)
    dropped_idx = set(ordered[:excess])
    dropped: dict[str, list[CycleRecord]] = defaultdict(list)
    kept: list[CycleRecord] = []
    for i, c in enumerate(batch.cycles):
        (dropped[c.target].append(c) if i in dropped_idx else kept.append(c))
    next_kept: dict[str, float] = {}
    for c in kept:
        if c.target not in next_kept or c.started < next_kept[c.target]:
            next_kept[c.target] = c.started
    for target, cycles in dropped.items():
        cycles.sort(key=lambda c: c.started)
        for j, c in enumerate(cycles):
            if c.verdict == "bad":
                continue  # its outage is recorded; unknown time over it would hide downtime
            end = cycles[j + 1].started if j + 1 < len(cycles) else next_kept.get(target, c.started + c.duration)
            batch.unknown.append(UnknownRecord(target, c.started, max(end, c.started + c.duration), LOST_REASON))
    batch.cycles = kept
    return excess


class _NotYet(Exception):
    """A batch under an expired lease waits for the node's next lease (BatchWriter._adopt)."""


class BatchWriter:
    """Collects a flush interval's records and writes them in one transaction; backs off and keeps them when the store
    fails."""

    def __init__(self, store: EvidenceWriter, *, batch_size: int, flush_interval: float, stats: SelfStats,
                 on_new_event=None, backlog_max: int = 200_000, spool: "Spool | None" = None):
        self.store = store
        #: batches the store could not take, on local disk (monitor.measure.spool); None: memory only
        self.spool = spool
        self.on_new_event = on_new_event
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.backlog_max = backlog_max
        self.stats = stats
        #: the batch being filled; producers add to it directly, then call :meth:`added`
        self.batch = Batch()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._failing_since: float | None = None  # monotonic
        self._retry_at = 0.0  # monotonic
        self._backoff = BACKOFF_FIRST
        self._said = RateLimited(60.0)
        self._inflight = 0  # cycles of the batch being written right now
        self._inflight_records = 0  # and all its records
        self._stopping = False
        self._spooling = asyncio.Lock()
        self._spool_task: asyncio.Task | None = None
        #: what :meth:`stop` could not write: cycles, and the other records (states, outages, events, rollups)
        self.lost_cycles = self.lost_records = 0
        #: the leader's records (:meth:`add_lead`) and the fence they were decided under
        self.lead = Batch()
        self._lead_fence: Fence | None = None
        #: called when the leader's records were refused because their term is over
        self.on_lead_fenced: Callable[[], None] = lambda: None
        #: in a cluster: the node's current lease, checked inside every write transaction
        #: the lease the node holds now (monitor.cluster.member), stamped on each batch; None outside a cluster
        self.fence: Callable[[], Fence | None] = lambda: None
        self.fenced_dropped = 0
        #: the lease the pending records were measured under: a backlog is never written under a newer epoch
        self._batch_fence: Fence | None = None

    def added(self) -> None:
        """Records were added to the batch: flush early when it is full, shed the oldest cycles past the backlog
        limit while the store is failing."""
        if self._batch_fence is None:
            self._batch_fence = self.fence()  # the lease these records were measured under
        if self._failing_since is not None:
            self._backlog_gauge()
        elif len(self.batch.cycles) >= self.batch_size:
            self._wake.set()
        if len(self.batch.cycles) > self.backlog_max:
            self._shed()

    def pending(self) -> int:
        """Records waiting for the next write."""
        return len(self.batch)

    def backlog_cycles(self) -> int:
        """Cycles waiting for the next write."""
        return len(self.batch.cycles)

    @property
    def failing(self) -> bool:
        """Whether the store is failing (writes are retried; the batch grows up to the backlog limit)."""
        return self._failing_since is not None

    def _shed(self) -> None:
        # drop a tenth more than the excess at once, so the sort runs rarely
        n = drop_oldest(self.batch, int(self.backlog_max * 0.9))
        self.stats.store_backlog_dropped_total += n
        self.stats.store_backlog_cycles = len(self.batch.cycles)
        if self._said.due("dropped"):
            log.error("store backlog full (%d cycles): dropped the %d oldest raw cycles; their time is recorded as "
                      "unknown (%d dropped so far)", self.backlog_max, n, self.stats.store_backlog_dropped_total)

    def add_lead(self, records: Batch, fence: Fence | None) -> None:
        """Records only the cluster's leader may write (the vantage consensus, SLA events), under its ``fence``
        (lease and term): written in a transaction of their own after the node's batch, refused (and dropped)
        once that term is over. Without a cluster (no fence) they join the node's batch."""
        if fence is None:
            self.batch.absorb(records)
            self.added()
            return
        if self._lead_fence is not None and self._lead_fence.term != fence.term and len(self.lead):
            log.warning("dropping %d leader records of term %d: this node leads under term %d now",
                        len(self.lead), self._lead_fence.term, fence.term)
            self.lead = Batch()
        self.lead.absorb(records)
        self._lead_fence = fence
        self._wake.set()

    async def _flush_lead(self) -> bool:
        """Write the leader's records under their term; True when written (or refused and dropped)."""
        if not len(self.lead):
            return True
        lead, self.lead = self.lead, Batch()
        fence = self._lead_fence
        try:
            await asyncio.to_thread(self.store.write, lead, self.on_new_event, fence)
        except FencedError as exc:
            log.error("%s: %d leader records dropped (the next leader decides them again)", exc, len(lead))
            self.on_lead_fenced()
            return True
        except StoreError:
            lead.absorb(self.lead)
            self.lead = lead  # the next flush tries again
            return False
        return True

    async def flush(self, *, force: bool = False) -> bool:
        """Write what is pending; True when the store has it all. While the store fails, attempts wait for the
        backoff unless ``force``; with a spool, what is pending goes to local disk meanwhile."""
        async with self._flushing:
            if self.spool is not None and (len(self.spool) or self._failing_since is not None):
                if not await self._flush_spooled(force):
                    return False
            return await self._flush_memory(force)

    def _backlog_gauge(self) -> None:
        self.stats.store_backlog_cycles = (self._inflight + len(self.batch.cycles)
                                           + (self.spool.cycles if self.spool is not None else 0))

    async def _flush_spooled(self, force: bool) -> bool:
        """The store failed, or the spool holds batches: what is new goes to the spool first (so the order holds
        and a crash loses at most one flush interval), then the spool is replayed oldest first. True when the
        spool is empty (the store has it all)."""
        assert self.spool is not None
        await self._spool_memory()
        if self._failing_since is not None and not force and time.monotonic() < self._retry_at:
            return False
        written = 0
        while True:
            try:
                item = await asyncio.to_thread(self.spool.oldest)
            except StoreError as exc:  # a file that cannot be read: said, and replay waits for a person
                if self._said.due("spool-file"):
                    log.error("%s", exc)
                return False
            if item is None:
                break
            path, fence, batch = item
            t0 = time.perf_counter()
            try:
                await asyncio.to_thread(self.store.write, batch, self.on_new_event, fence)
            except FencedError as exc:
                try:
                    await self._adopt(batch, fence, exc, "spooled")
                except _NotYet:
                    self._retry_at = time.monotonic() + self.flush_interval
                    return False
                except StoreError as again:
                    self._failed(again)
                    return False
            except StoreError as exc:
                self._failed(exc)
                return False
            else:
                written += len(batch.cycles)
                self.stats.store_write_seconds_sum += time.perf_counter() - t0
                self.stats.store_writes_total += 1
            await asyncio.to_thread(self.spool.remove, path)
            self._backlog_gauge()
        self._recovered(written)
        return True

    async def _adopt(self, batch: Batch, fence: Fence | None, exc: FencedError, what: str) -> None:
        """A batch refused because the lease it was measured under is over: written under the node's current
        lease for the units no other node has measured since (Store.adopt), the rest dropped and said."""
        current = self.fence()
        if current is None or fence is None or current.node != fence.node or current.epoch == fence.epoch:
            raise _NotYet  # no newer lease of this node's to write it under yet: kept until the node rejoins
        taken = await asyncio.to_thread(self.store.adopt, batch, self.on_new_event, current)  # type: ignore[attr-defined]
        lost = [c for c in batch.cycles if c.target in taken]
        kept = len(batch.cycles) - len(lost)
        self.fenced_dropped += len(lost)
        if kept:
            self.stats.store_writes_total += 1
            log.warning("%d %s cycles measured under the expired lease of epoch %s written under epoch %s: no other "
                        "node measured their units since", kept, what, fence.epoch if fence else "?",
                        current.epoch if current else "?")
        if lost or (taken and not batch.cycles):
            log.error("%s: %d %s cycles of %d units dropped (another node measures them now; their time is unknown "
                      "unless it measured it)", exc, len(lost), what, len(taken))

    async def _spool_memory(self) -> None:
        """Move the batch held in memory to the spool's tail (while the store fails or the spool is not empty:
        everything then goes through the spool, so the order holds)."""
        assert self.spool is not None
        async with self._spooling:
            if len(self.batch):
                batch, fence = self.batch, self._batch_fence
                self.batch, self._batch_fence = Batch(), None
                if not await asyncio.to_thread(self.spool.put, batch, fence):
                    batch.absorb(self.batch)  # the spool is full: keep it in memory, in order
                    self.batch, self._batch_fence = batch, fence
                    if self._said.due("spool-full"):
                        log.error("the spool in %s is full (%d bytes) or its disk fails: new cycles are held in "
                                  "memory (bound %d)", self.spool.dir, self.spool.bytes, self.backlog_max)
            self._backlog_gauge()

    async def _spool_loop(self) -> None:
        """Every flush interval, while the store fails: what came in goes to disk at once, not after a retry
        that may hang for the connect timeout (a crash then loses at most one flush interval)."""
        while not self._stopping:
            await asyncio.sleep(self.flush_interval)
            if self.spool is not None and (self._failing_since is not None or len(self.spool)):
                await self._spool_memory()

    def _failed(self, exc: StoreError) -> None:
        """A write failed: say so (once, then once a minute) and back off."""
        self.stats.store_write_failures_total += 1
        self._backlog_gauge()
        held = self.stats.store_backlog_cycles
        where = f"in memory and the spool {self.spool.dir}" if self.spool is not None else "in memory"
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self._backoff = BACKOFF_FIRST
            log.error("store write failed; keeping %d cycles %s and retrying with backoff: %s", held, where, exc)
            self._said.due("failing")
        else:
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
            if self._said.due("failing"):
                log.warning("store still unreachable after %.0f s; %d cycles held %s (bound %d): %s",
                            now - self._failing_since, held, where, self.backlog_max, exc)
        self._retry_at = now + self._backoff

    def _recovered(self, cycles: int) -> None:
        if self._failing_since is not None:
            log.warning("store reachable again after %.0f s: wrote the backlog of %d cycles",
                        time.monotonic() - self._failing_since, cycles)
            self._failing_since = None
            self._said.clear("failing")
            self._said.clear("dropped")
            self._said.clear("spool-full")

    async def _flush_memory(self, force: bool) -> bool:
        """Write the batch held in memory (and then the leader's records)."""
        if not len(self.batch):
            return await self._flush_lead()
        if self._failing_since is not None and not force and time.monotonic() < self._retry_at:
            return False
        batch, self.batch = self.batch, Batch()
        cycles = self._inflight = len(batch.cycles)
        self._inflight_records = len(batch)
        t0 = time.perf_counter()
        fence = self._batch_fence
        try:
            if fence is None:
                await asyncio.to_thread(self.store.write, batch, self.on_new_event)
            else:
                await asyncio.to_thread(self.store.write, batch, self.on_new_event, fence)
        except FencedError as exc:
            # measured under a lease that is over: what no other node measured since is still this node's
            # evidence (a database outage outlasted the lease); the rest is not evidence this node may write
            self._inflight = 0
            batch.absorb(self.batch)  # what came in meanwhile was measured under the same lost lease
            self.batch, self._batch_fence = Batch(), None
            try:
                await self._adopt(batch, fence, exc, "unwritten")
            except _NotYet:
                self.batch, self._batch_fence = batch, fence
            except StoreError as again:
                self._failed(again)
                self.fenced_dropped += len(batch.cycles)
                log.error("%d cycles measured under an expired lease dropped: %s", len(batch.cycles), again)
            self._backlog_gauge()
            return False
        except StoreError as exc:
            self._inflight = 0
            batch.absorb(self.batch)  # keep the order: the failed batch first
            self.batch = batch
            self._failed(exc)
            if self.spool is not None:
                await self._spool_memory()  # durable now: a crash loses none of it
            return False
        self._inflight = 0
        self._batch_fence = self.fence() if len(self.batch) else None
        self.stats.store_write_seconds_sum += time.perf_counter() - t0
        self.stats.store_writes_total += 1
        self._backlog_gauge()
        self._recovered(cycles)
        return await self._flush_lead()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self._stopping:
                return
            await self.flush()

    def start(self) -> None:
        """Start the writer thread."""
        self._task = asyncio.create_task(self._loop(), name="store-writer")
        self._spool_task = asyncio.create_task(self._spool_loop(), name="store-spool")

    async def stop(self, grace: float = 10.0) -> int:
        """Stop the loop and write what is pending, retrying for up to ``grace`` seconds.
        Returns the number of cycles that could not be written (0 when everything is stored)."""
        deadline = time.monotonic() + grace
        if self._task:
            # never cancel a write in flight: its batch would be neither stored, nor put back, nor counted (its
            # thread goes on regardless). The loop ends after it; a failed write puts its batch back first.
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if self._spool_task is not None:  # it ends after its sleep; a put in flight finishes
                await asyncio.wait({self._spool_task}, timeout=self.flush_interval + grace)
            if not done:  # a write hangs past the grace: its batch is not known to be stored
                lost = self.lost_cycles = self._inflight + len(self.batch.cycles)
                self.lost_records = self._inflight_records + len(self.batch) - lost
                log.error("stopping with a store write still hanging after %.0f s: %d cycles and %d other records "
                          "are not known to be written", grace, lost, self.lost_records)
                return max(lost, 1)
        while not await self.flush(force=True):
            if time.monotonic() >= deadline and self.spool is not None:
                await self._spool_memory()
            if time.monotonic() >= deadline and self.spool is not None and not len(self.batch):
                log.warning("stopping with the store unreachable: %d cycles are kept in the spool %s and written "
                            "when the store is back (at the next start)", self.spool.cycles, self.spool.dir)
                return 0
            if time.monotonic() >= deadline:
                lost = self.lost_cycles = len(self.batch.cycles)
                self.lost_records = len(self.batch) - lost + len(self.lead)
                log.error("stopping with the store unreachable: %d cycles and %d other records were not written "
                          "and are lost", lost, self.lost_records)
                return max(lost, 1)
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        return 0
