"""The target state machine against hand-worked sequences (interval T = 30 s)."""

from monitor.measure.state import TargetTracker

T = 30.0


def feed(tracker, verdicts, start=1000.0, quality=None):
    out = []
    for i, v in enumerate(verdicts):
        q = True if quality is None else quality[i]
        out += tracker.observe(start + i * T, v, q)
    return out


def test_down_after_threshold_is_backdated_to_first_failure():
    tr = TargetTracker("t", failure_threshold=3, recovery_threshold=2)
    events = feed(tr, ["good", "bad", "bad", "bad", "bad"])
    # cycles at 1000, 1030, 1060, 1090, 1120: first bad at 1030, threshold crossed at 1090
    outage = [e for e in events if e.event == "outage_started"]
    assert len(outage) == 1
    assert outage[0].at == 1030.0 and outage[0].decided_at == 1090.0
    assert tr.state == "down" and tr.since == 1030.0


def test_recovery_ends_outage_at_first_good_cycle():
    tr = TargetTracker("t", failure_threshold=2, recovery_threshold=3)
    events = feed(tr, ["good", "bad", "bad", "good", "good", "good", "good"])
    ended = [e for e in events if e.event == "outage_ended"]
    assert len(ended) == 1
    # bad at 1030, 1060; good at 1090, 1120, 1150 -> recovered when 3rd good seen, dated 1090
    assert ended[0].at == 1090.0 and ended[0].decided_at == 1150.0 and ended[0].interval_start == 1030.0
    assert tr.state == "up"


def test_below_threshold_failures_are_not_an_outage():
    tr = TargetTracker("t", failure_threshold=3)
    events = feed(tr, ["good", "bad", "bad", "good", "bad", "bad", "good"])
    assert not [e for e in events if e.event.startswith("outage")]
    assert tr.state == "up"


def test_flap_is_held_by_hysteresis():
    tr = TargetTracker("t", failure_threshold=2, recovery_threshold=3)
    # down, then good-good-bad (not enough to recover), then 3 good
    events = feed(tr, ["good", "bad", "bad", "good", "good", "bad", "good", "good", "good"])
    starts = [e for e in events if e.event == "outage_started"]
    ends = [e for e in events if e.event == "outage_ended"]
    assert len(starts) == 1 and len(ends) == 1  # one outage, not two
    assert starts[0].at == 1030.0
    assert ends[0].at == 1000.0 + 6 * T  # first good of the final good run


def test_unknown_does_not_end_an_outage_nor_count_as_up():
    tr = TargetTracker("t", failure_threshold=1, recovery_threshold=1)
    feed(tr, ["good", "bad", "unknown", "unknown"])
    assert tr.state == "down"
    tr2 = TargetTracker("t", failure_threshold=1)
    feed(tr2, ["good", "unknown"])
    assert tr2.state == "unknown"


def test_degraded_and_back():
    tr = TargetTracker("t", degraded_threshold=2, recovery_threshold=2)
    events = feed(tr, ["good"] * 6, quality=[True, False, False, True, True, True])
    kinds = [(e.event, e.at) for e in events]
    assert ("degradation_started", 1030.0) in kinds
    assert ("degradation_ended", 1090.0) in kinds
    assert tr.state == "up"


def test_snapshot_restore_round_trip():
    tr = TargetTracker("t", failure_threshold=3)
    feed(tr, ["good", "bad", "bad"])
    copy = TargetTracker.restore(tr.snapshot(), failure_threshold=3, recovery_threshold=2, degraded_threshold=3)
    events = copy.observe(1090.0, "bad")
    assert events and events[0].event == "outage_started" and events[0].at == 1030.0
