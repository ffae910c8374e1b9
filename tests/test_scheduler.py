"""The scheduler against real APScheduler: phases are spread, overruns are counted not stacked."""

from __future__ import annotations

import asyncio

from monitor.measure.live import SelfStats
from monitor.measure.scheduler import ProbeScheduler, phase_offset


def test_phase_offsets_spread_over_the_interval():
    offsets = [phase_offset(f"target-{i}", 10.0) for i in range(10_000)]
    assert all(0 <= o < 10.0 for o in offsets)
    # 10,000 targets over 100 buckets of 100 ms: none may hold more than 2x its fair share
    buckets = [0] * 100
    for o in offsets:
        buckets[int(o * 10)] += 1
    assert max(buckets) < 200 and min(buckets) > 50
    assert phase_offset("x", 10.0) == phase_offset("x", 10.0)  # stable across restarts


def test_overrun_is_counted_not_stacked():
    stats = SelfStats()
    running = 0
    peak = 0
    runs = 0

    async def slow_job():
        nonlocal running, peak, runs
        running += 1
        runs += 1
        peak = max(peak, running)
        await asyncio.sleep(2.2)  # longer than the 1 s interval
        running -= 1

    async def main():
        sched = ProbeScheduler(stats)
        sched.add("slow", 1.0, slow_job)
        sched.start()
        await asyncio.sleep(5.5)
        sched.shutdown()

    asyncio.run(main())
    assert peak == 1
    assert runs >= 2
    assert stats.overruns_total >= 2
    assert stats.scheduler_lag_seconds < 1.0  # under one interval: an overrun is counted above, not as lag


def test_a_late_cycle_is_followed_at_once_never_by_a_skipped_slot():
    """A cycle that runs past its next slot is followed the moment it ends (#31): the starts are never further
    apart than the longer of the interval and the late cycle, so the timeline sees no gap to call unknown."""
    import time

    stats = SelfStats()
    starts: list[float] = []
    interval, late = 0.3, 0.33  # every cycle 10 % over its interval, as in an outage at a too-short interval

    async def late_job():
        starts.append(time.monotonic())
        await asyncio.sleep(late)

    async def main():
        sched = ProbeScheduler(stats)
        sched.add("late", interval, late_job)
        sched.start()
        await asyncio.sleep(3.0)
        sched.shutdown()

    asyncio.run(main())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 6 and stats.overruns_total >= 4
    # back to back: each start within the late cycle's length (plus what a busy machine adds) of the one
    # before; a skipped slot would put the next start two intervals (0.6 s) after it
    assert max(gaps) < 2 * interval - 0.05, gaps
