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
from .store import CycleRecord, OutageRecord, StateRecord, Store

__all__ = ["BatchWriter"]

log = logging.getLogger("slawatch.store")


class BatchWriter:
    def __init__(self, store: Store, *, batch_size: int, flush_interval: float, stats: SelfStats):
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = stats
        self._cycles: list[CycleRecord] = []
        self._states: dict[str, StateRecord] = {}
        self._outages: list[OutageRecord] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def add(self, cycles: list[CycleRecord] = (), state: StateRecord | None = None,
            outages: list[OutageRecord] = ()) -> None:
        self._cycles.extend(cycles)
        if state is not None:
            self._states[state.target] = state
        self._outages.extend(outages)
        if len(self._cycles) >= self.batch_size:
            self._wake.set()

    def pending(self) -> int:
        return len(self._cycles) + len(self._states) + len(self._outages)

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending():
                return
            cycles, states, outages = self._cycles, list(self._states.values()), self._outages
            self._cycles, self._states, self._outages = [], {}, []
            t0 = time.perf_counter()
            try:
                await asyncio.to_thread(self.store.write_batch, cycles, states, outages)
            except StoreError as exc:
                self.stats.store_write_failures_total += 1
                log.error("store write failed, will retry: %s", exc)
                self._cycles[:0] = cycles
                for s in states:
                    self._states.setdefault(s.target, s)
                self._outages[:0] = outages
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
