"""Batched, asynchronous writes to the store: one transaction per batch, not per sample.

A failed write keeps its records and is retried at the next flush, so a
store hiccup loses nothing that was in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .errors import StoreError
from .live import SelfStats
from .store import Batch, Store

__all__ = ["BatchWriter"]

log = logging.getLogger("slawatch.store")


class BatchWriter:
    def __init__(self, store: Store, *, batch_size: int, flush_interval: float, stats: SelfStats,
                 on_new_event=None):
        self.store = store
        self.on_new_event = on_new_event
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = stats
        #: the batch being filled; producers add to it directly, then call :meth:`added`
        self.batch = Batch()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def added(self) -> None:
        if len(self.batch.cycles) >= self.batch_size:
            self._wake.set()

    def pending(self) -> int:
        return len(self.batch)

    async def flush(self) -> None:
        async with self._flushing:
            if not len(self.batch):
                return
            batch, self.batch = self.batch, Batch()
            t0 = time.perf_counter()
            try:
                await asyncio.to_thread(self.store.write, batch, self.on_new_event)
            except StoreError as exc:
                self.stats.store_write_failures_total += 1
                log.error("store write failed, will retry: %s", exc)
                batch.absorb(self.batch)  # keep the order: the failed batch first
                self.batch = batch
                return
            self.stats.store_write_seconds_sum += time.perf_counter() - t0
            self.stats.store_writes_total += 1

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="store-writer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
