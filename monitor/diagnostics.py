"""``kill -USR1 <pid>``: every thread's stack in the log, without ever ending the process.

``faulthandler.register`` walked the other threads' frames from inside the signal, while they ran: with a client
scraping the exporter and SIGUSR1 every 0.1 s the daemon died of SIGSEGV after 8 to 29 signals. Here the
signal only schedules the dump: on the event loop when one runs in the main thread, else at once (Python runs
signal handlers in the main thread between bytecodes, holding the GIL, so ``sys._current_frames`` is safe). Dumps
are rate-limited (one a second by default); signals in between are counted and said with the next dump.

May import: nothing of slawatch.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
import traceback

__all__ = ["StackDump", "install"]

log = logging.getLogger("slawatch.diagnostics")


class StackDump:
    """A rate-limited dump of every thread's stack (and the number of asyncio tasks) to the log."""

    def __init__(self, min_interval: float = 1.0):
        self.min_interval = min_interval
        self._last: float | None = None
        self.dumps = 0
        self.skipped = 0

    def __call__(self) -> None:
        """Dump now, unless a dump was made less than ``min_interval`` seconds ago (then count the signal)."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self.min_interval:
            self.skipped += 1
            return
        self._last = now
        self.dumps += 1
        names = {t.ident: t.name for t in threading.enumerate()}
        parts = []
        for ident, frame in sys._current_frames().items():
            stack = "".join(traceback.format_stack(frame))
            parts.append(f"thread {names.get(ident, ident)}:\n{stack}")
        try:
            tasks = f"; {len(asyncio.all_tasks())} asyncio tasks"
        except RuntimeError:
            tasks = ""
        skipped, self.skipped = self.skipped, 0
        also = f"; {skipped} more SIGUSR1 since the last dump were not dumped (at most one a {self.min_interval:g} s)" \
            if skipped else ""
        log.warning("stack dump on SIGUSR1: %d threads%s%s\n%s", len(parts), tasks, also, "\n".join(parts))


DUMP = StackDump()


def _on_signal(signum: int, frame: object) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(DUMP)
    else:
        DUMP()


def install() -> None:
    """SIGUSR1 dumps the stacks (from now until the process ends; never the default action, which ends it)."""
    signal.signal(signal.SIGUSR1, _on_signal)
