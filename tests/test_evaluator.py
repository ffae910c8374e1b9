"""Live evaluation: burn-rate and breach events with stable keys; voice figures; retention."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitor.config import parse_config
from monitor.sla.emodel import mos_from_r, r_factor
from monitor.sla.evaluator import evaluate_target
from monitor.measure.ingest import voice_sample
from monitor.store import CycleRecord
from probes.icmp import IcmpResult

CONFIG = parse_config({
    "contracts": [{"id": "c1", "customer": "A", "provider": "B", "timezone": "UTC",
                   "objectives": {"availability": "99.9%", "mos": 4.0, "jitter": "30ms", "loss": "1%",
                                  "one_way_delay": "150ms"},
                   "voice": {"codec": "g711-plc", "codec_delay": "25ms", "jitter_buffer_factor": 2}}],
    "targets": [{"id": "v1", "contract": "c1", "kind": "voice", "address": "127.0.0.1"}],
})


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def test_fast_burn_raises_page_events_once_with_stable_keys():
    target, contract = CONFIG.targets[0], CONFIG.contracts[0]
    now = ms(2026, 11, 20, 12)
    down = [(now - 3_600_000, now)]  # the whole last hour down: burn 1000x in the 1 h and 5 m windows
    sla, events = evaluate_target(target, contract, now, down, [], [])
    kinds = sorted((e.kind, e.data.get("severity"), e.data.get("window_s")) for e in events)
    # 1 h of downtime exceeds the month's budget (0.1 % of 30 days = 43.2 min): breached too
    assert kinds == [("budget_burn", "page", 3600), ("budget_burn", "page", 21600), ("budget_burn", "ticket", 259200),
                     ("monthly_breach", None, None)]
    assert sla.mtd.breached and sla.burn_rates["1h"] == pytest.approx(1000.0)
    again = evaluate_target(target, contract, now + 60_000, down, [], [])[1]
    assert {e.key for e in again} == {e.key for e in events}  # the next evaluation repeats the same keys
    assert "budget_burn:c1:v1:2026-11:page:3600" in {e.key for e in events}


def test_no_burn_alert_without_enough_known_time():
    target, contract = CONFIG.targets[0], CONFIG.contracts[0]
    now = ms(2026, 11, 20, 12)
    # the target has existed for 20 s, all of them down: the 1 h window is mostly unknown
    sla, events = evaluate_target(target, contract, now, [(now - 20_000, now)], [(now - 40 * 86_400_000, now - 20_000)], [])
    assert [e for e in events if e.kind == "budget_burn"] == []


def test_no_events_on_a_healthy_month():
    target, contract = CONFIG.targets[0], CONFIG.contracts[0]
    sla, events = evaluate_target(target, contract, ms(2026, 11, 20, 12), [], [], [])
    assert events == [] and sla.rolling["24h"] == 1.0 and not sla.mtd.at_risk


def test_voice_sample_against_objectives():
    contract = CONFIG.contracts[0]
    result = IcmpResult(probe="icmp", target="v1", address="x", started=0, duration=0, ok=True, sent=50, received=49,
                        rtts=tuple([0.060] * 49 + [None]))
    v = voice_sample(result.samples(), contract)
    # RTT 60 ms -> 30 ms one way + 25 ms codec + 2 x 0 jitter = 55 ms; loss 2 %
    r = r_factor(55, 2.0, "g711-plc")
    assert v.mos == pytest.approx(mos_from_r(r)) and v.one_way_delay_ms == pytest.approx(30)
    assert v.delay_ok and v.jitter_ok and not v.loss_ok and v.below_mos == (mos_from_r(r) < 4.0)


def test_retention_purge(every_store):
    store = every_store()
    store.write_batch([CycleRecord("t", "icmp", float(t), 0.1, True, "good", None) for t in (100, 200, 300)])
    assert store.purge(raw_before=250, rollups_before=0) == (2, 0)
    assert [c.started for c in store.cycles("t", 0, 1000)] == [300.0]


def test_objective_thresholds_are_the_exact_decimals_as_floats():
    """Defect (#15): slawatch_objective_threshold{objective="availability"} showed 0.9990000000000001 beside
    slawatch_sla_objective_ratio 0.999."""
    from monitor.config import parse_config
    from monitor.daemon import objective_thresholds

    cfg = parse_config({"contracts": [{"id": "c1", "customer": "A", "provider": "B",
                                       "objectives": {"availability": "99.9%", "loss": "0.5%"}}], "targets": []})
    t = objective_thresholds(cfg.contracts[0])
    assert repr(t["availability"]) == "0.999" and repr(t["loss"]) == "0.005"
