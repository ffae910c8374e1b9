"""A month of synthetic cycles through the real tracker, ingestion and SQLite store, then the
month's figures, against hand-computed values. Includes a restart in the middle."""

from __future__ import annotations

from datetime import datetime, timezone
from fractions import Fraction

import pytest

from monitor.config import parse_config
from monitor.measure.cycle import CycleOutcome, verdict_of
from monitor.measure.ingest import Ingestor
from monitor.sla.sketch import RELATIVE_ACCURACY
from monitor.measure.live import TargetLive
from monitor.sla.monthly import compute_month, load_month
from monitor.measure.state import TargetTracker
from monitor.store import Batch
from probes.icmp import IcmpResult

from conftest import BACKENDS, StoreMaker

STEP = 300  # 5-minute cycles


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


CONFIG = {
    "contracts": [{
        "id": "c1", "customer": "A", "provider": "B", "timezone": "UTC",
        "objectives": {"availability": "99.9%", "latency": {"percentile": 95, "max": "50ms"}, "loss": "1%"},
        "maintenance": [{"name": "m", "start": "2026-11-25T03:00:00", "duration": "1h"}],
    }],
    "targets": [{"id": "t1", "contract": "c1", "kind": "internet", "address": "127.0.0.1", "interval": "5m",
                 "failure_threshold": 3, "recovery_threshold": 1}],
}

OUTAGE = (ts(2026, 11, 10, 10, 0), ts(2026, 11, 10, 10, 45))  # bad cycles 10:00 .. 10:40
GAP = (ts(2026, 11, 20, 0, 0), ts(2026, 11, 20, 2, 0))  # no cycles at all


def result(at: float, good: bool) -> IcmpResult:
    rtts = (0.010, 0.020, 0.030) if good else (None, None, None)
    return IcmpResult(probe="icmp", target="t1", address="127.0.0.1", started=at, duration=0.1, ok=good,
                      reason=None if good else "no reply", sent=3, received=3 if good else 0, rtts=rtts)


def feed(store, config, start: float, end: float, live: TargetLive) -> None:
    ingestor = Ingestor(config)
    ingestor.preload(store, start)  # a restart continues the stored rollups
    target, batch = config.targets[0], Batch()
    at = start
    while at < end:
        if not GAP[0] <= at < GAP[1]:
            good = not (OUTAGE[0] <= at < OUTAGE[1])
            results = [result(at, good)]
            previous = live.tracker.last_cycle
            transitions = live.tracker.observe(at, verdict_of(results))
            outcome = CycleOutcome("t1", at, tuple(results), verdict_of(results), True, tuple(transitions))
            ingestor.ingest(batch, target, outcome, live, previous)
            if len(batch.cycles) >= 500:
                store.write(batch)
                batch = Batch()
        at += STEP
    store.write(batch)


@pytest.fixture(scope="module", params=BACKENDS)
def month(tmp_path_factory, request):
    """Half a month fed, a restart, the rest fed: on every store backend."""
    config = parse_config(CONFIG)
    maker = StoreMaker(request.param, tmp_path_factory.mktemp("m"), request)
    store = maker()
    live = TargetLive("t1", "c1", "internet", TargetTracker("t1", failure_threshold=3, recovery_threshold=1))
    feed(store, config, ts(2026, 11, 1), ts(2026, 11, 15), live)
    # restart: a new tracker restored from the stored state, a new ingestor
    saved = store.load_states()["t1"].tracker
    live = TargetLive("t1", "c1", "internet", TargetTracker.restore(saved, failure_threshold=3, recovery_threshold=1, degraded_threshold=3))
    feed(store, config, ts(2026, 11, 15), ts(2026, 12, 1), live)
    inputs = load_month(store, config, "2026-11")
    yield store, compute_month(config, inputs, int(ts(2026, 12, 2) * 1000))
    maker.close()


def test_availability_by_hand(month):
    _, [c1] = month
    [t1] = c1.targets
    a = t1.availability
    # P = 30 days; M = 1 h maintenance; U = the 2 h gap (from one interval after 23:55 to 02:00)
    # D = 45 min: backdated to the first bad cycle, ended at the first good one
    assert (a.period_ms, a.maintenance_ms, a.unknown_ms, a.downtime_ms) == (2_592_000_000, 3_600_000, 7_200_000, 2_700_000)
    assert a.ratio == Fraction(2_592_000 - 3_600 - 7_200 - 2_700, 2_592_000 - 3_600 - 7_200)
    assert t1.outage_count == 1 and t1.mttr_s == 2700 and t1.longest_outage_s == 2700
    assert c1.ratio == a.ratio and c1.met is False  # 2700 s > 0.1 % of 2,581,200 s


def test_rollup_counts_across_the_restart(month):
    _, [c1] = month
    r = c1.targets[0].rollup
    assert r.cycles == 8640 - 24  # 24 cycles missing in the gap
    assert r.maintenance == 12 and r.bad == 9 and r.good == 8640 - 24 - 12 - 9
    assert r.sent == (8640 - 24 - 12) * 3 and r.received == r.sent - 27
    assert r.rtt.count == (8640 - 24 - 12 - 9) * 3


def test_quality_objectives(month):
    _, [c1] = month
    obj = c1.targets[0].objectives
    assert obj["latency"]["value_s"] == pytest.approx(0.030, rel=RELATIVE_ACCURACY) and obj["latency"]["met"] is True
    # the 27 packets of the 9 outage cycles are availability's business, not loss (one definition: rollup.py)
    assert obj["loss"]["value_pct"] == 0.0 and obj["loss"]["met"] is True
    assert c1.targets[0].rollup.answered_sent == (8640 - 24 - 12 - 9) * 3


def test_loss_has_one_definition_for_figure_met_credit_and_termination():
    """Defect: a 5 h outage in a 99 % month marked loss as missed (and reached the termination right) while the
    loss credit said 100 % compliance. Now the figure, met and the credit count the same cycles."""
    from monitor.sla.credits import compliance
    from monitor.sla.monthly import _objective_figures
    from monitor.sla.rollup import Rollup, VoiceSample
    from monitor.sla.availability import Availability

    config = parse_config({**CONFIG, "contracts": [{**CONFIG["contracts"][0],
                                                    "objectives": {"availability": "99%", "loss": "1%"}}]})
    contract, target = config.contracts[0], config.targets[0]
    r = Rollup()
    ok = VoiceSample(None, 5.0, False, True, True, True)
    for _ in range(8000):  # answered cycles: 10 packets, none lost
        r.add_cycle("good", False, 10, 10, [0.01] * 10, None, ok)
    for _ in range(600):  # a 5 h outage at 30 s: nothing came back
        r.add_cycle("bad", False, 10, 0, [], None, None)
    lossy = VoiceSample(None, 5.0, False, True, True, False)
    for _ in range(40):  # answered, but 2 of 10 lost: outside the 1 % objective
        r.add_cycle("good", False, 10, 8, [0.01] * 8, None, lossy)
    figures = _objective_figures(contract, target, r, Availability(0, 1, 0, 0, 0, 0, "exclude", ()))
    # lost 80 of the 80,400 packets of answered cycles: 0.0995 %, met; the 6,000 packets of the outage do not count
    assert figures["loss"]["value_pct"] == pytest.approx(100 * 80 / 80_400) and figures["loss"]["met"] is True
    assert compliance("loss", contract, None, r) == Fraction(8000 * 100, 8040)  # the same cycles, for the credit
    # a rollup from before the rule (no answered-packet counters) keeps its old reading, and says so
    old = Rollup.decode(bytes([0]) + r.counts_blob()[1:], r.rtt.to_bytes())  # flags 0: the old format
    assert old.loss_basis.startswith("every packet")


def test_unknown_and_events_are_stored_once(month):
    store, _ = month
    unknown = store.unknown_intervals("t1", 0, 2e9)
    assert [(u.start, u.end) for u in unknown] == [(ts(2026, 11, 20), ts(2026, 11, 20, 2))]
    events = store.events()
    assert [(e.kind, e.key) for e in events] == [
        ("outage_started", f"outage_started:t1:{int(OUTAGE[0] * 1000)}"),
        ("outage_ended", f"outage_ended:t1:{int(OUTAGE[0] * 1000)}"),
    ]
    assert store.outages("t1")[0].start == OUTAGE[0] and store.outages("t1")[0].end == OUTAGE[1]


def test_replaying_the_same_data_yields_the_same_events(month, stores):
    store, _ = month
    config = parse_config(CONFIG)
    again = stores()
    live = TargetLive("t1", "c1", "internet", TargetTracker("t1", failure_threshold=3, recovery_threshold=1))
    feed(again, config, ts(2026, 11, 1), ts(2026, 12, 1), live)
    assert [e.key for e in again.events()] == [e.key for e in store.events()]


def test_no_data_is_unknown_not_up(stores):
    config = parse_config(CONFIG)
    store = stores()
    [c1] = compute_month(config, load_month(store, config, "2026-11"), int(ts(2026, 12, 2) * 1000))
    a = c1.targets[0].availability
    assert a.ratio is None and a.unknown_ms == 2_592_000_000 - 3_600_000
    # under unknown_time: downtime, the same month is all downtime
    config2 = parse_config({**CONFIG, "contracts": [{**CONFIG["contracts"][0], "unknown_time": "downtime"}]})
    [c2] = compute_month(config2, load_month(store, config2, "2026-11"), int(ts(2026, 12, 2) * 1000))
    assert c2.targets[0].availability.ratio == 0


# -- maintenance changed after the fact (defect 8) --------------------------------------------------------------
LATE_WINDOWS = [{"name": "late-whole-hour", "start": "2026-11-02T03:00:00", "duration": "1h"},
                {"name": "late-part-hour", "start": "2026-11-02T05:10:00", "duration": "20m"}]


def _config(extra_windows=()):
    cfg = {**CONFIG, "contracts": [{**CONFIG["contracts"][0],
                                    "maintenance": [*CONFIG["contracts"][0]["maintenance"], *extra_windows]}]}
    return parse_config(cfg)


def _fed(maker, config):
    store = maker()
    live = TargetLive("t1", "c1", "internet", TargetTracker("t1", failure_threshold=3, recovery_threshold=1))
    feed(store, config, ts(2026, 11, 1), ts(2026, 11, 4), live)
    return store


def _figures(rollup):
    return (rollup.cycles, rollup.good, rollup.bad, rollup.maintenance, rollup.sent, rollup.received,
            rollup.answered_sent, rollup.rtt.count, rollup.rtt.quantile(0.95), rollup.quality_count)


@pytest.mark.parametrize("ingested,reported", [((), LATE_WINDOWS), (LATE_WINDOWS, ())],
                         ids=["window-added-later", "window-removed-later"])
def test_maintenance_changed_after_the_fact_rebuilds_the_month(every_store, ingested, reported):
    """Defect 8: cycle counts and quality figures used the windows in force at ingestion, availability those of
    report time. The report now rebuilds the month with today's windows: its rollup equals one ingested with
    them from the start (the whole hour from its hourly rollup, the part hour from its raw cycles)."""
    now = int(ts(2026, 12, 2) * 1000)
    report_cfg = _config(reported)
    store = _fed(every_store, _config(ingested))
    inputs = load_month(store, report_cfg, "2026-11")
    [c1] = compute_month(report_cfg, inputs, now)
    truth_inputs = load_month(_fed(every_store, report_cfg), report_cfg, "2026-11")
    [truth] = compute_month(report_cfg, truth_inputs, now)
    assert "t1" not in truth_inputs.reconciled  # ingested with today's windows: nothing to rebuild
    t1 = c1.targets[0]
    assert _figures(t1.rollup) == _figures(truth.targets[0].rollup)
    expected_maintenance = 12 + 4 if reported else 0  # 03:00-04:00 at 5 min, and 05:10, :15, :20, :25
    assert t1.rollup.maintenance == expected_maintenance
    assert t1.availability.maintenance_ms == (80 * 60_000 if reported else 0) + 3_600_000  # and the 25th's hour
    assert t1.reconciled is not None and t1.reconciled.unreconciled_hours == 0
    if reported:  # the whole hour from its count alone, the part hour from raw cycles
        assert (t1.reconciled.hours_maintenance, t1.reconciled.hours_rebuilt) == (1, 1)
    else:
        assert (t1.reconciled.hours_maintenance, t1.reconciled.hours_rebuilt) == (0, 2)


def test_maintenance_added_after_raw_cycles_were_purged_is_reported(every_store):
    """Past raw retention a changed hour keeps what ingestion judged, and the report says how many hours."""
    from monitor.reports.model import report_dict
    from monitor.reports.report import build_report

    store = _fed(every_store, _config())
    store.purge(ts(2026, 11, 5), 0)  # every raw cycle gone; rollups kept
    report_cfg = _config(LATE_WINDOWS)
    inputs = load_month(store, report_cfg, "2026-11")
    [c1] = compute_month(report_cfg, inputs, int(ts(2026, 12, 2) * 1000))
    t1 = c1.targets[0]
    # the whole hour needs no raw cycle; the part hour does, and keeps its ingested judgement
    assert (t1.reconciled.hours_maintenance, t1.reconciled.unreconciled_hours) == (1, 1)
    assert t1.rollup.maintenance == 12
    doc = report_dict(build_report(store, report_cfg, "2026-11", now=ts(2026, 12, 2)))["contracts"][0]["targets"][0]
    assert doc["cycles"]["maintenance_reconciled"]["unreconciled_hours"] == 1


def test_rollup_keeps_its_span_and_windows_through_encoding():
    from monitor.sla.rollup import Rollup

    r = Rollup()
    r.add_cycle("good", True, 3, 3, [0.01], 0.001, None, at_ms=1_000_000, window=(900_000, 1_200_000))
    r.add_cycle("good", False, 3, 3, [0.01], 0.001, None, at_ms=1_500_000)
    r.add_cycle("good", True, 3, 3, [0.01], 0.001, None, at_ms=1_700_000, window=(1_600_000, 1_800_000))
    back = Rollup.decode(r.counts_blob(), r.rtt.to_bytes())
    assert (back.first_ms, back.last_ms, back.maint_windows) == (1_000_000, 1_700_000,
                                                                [(900_000, 1_200_000), (1_600_000, 1_800_000)])
    legacy = Rollup.decode(bytes([0]) + bytes(15), r.rtt.to_bytes())  # no flags, 15 zero counts: before spans
    assert legacy.first_ms is None and legacy.maint_windows == []
