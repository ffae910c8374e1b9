"""The per-target renderer (monitor/metrics/targets.py): its lines are what prometheus_client writes for the same
series (label order, float format, counters' _total, histogram buckets), it parses with prometheus_client's
own parser, and it keeps to the series budget by default and adds exactly what each opt-in says."""

from __future__ import annotations

import time
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.models import PerTargetMetrics
from monitor.sla.evaluator import TargetSla
from monitor.measure.live import RTT_BUCKETS, LiveState, TargetLive
from monitor.metrics import DEFAULT_SERIES, TargetSeries, escape
from monitor.sla.availability import month_to_date
from monitor.measure.state import TargetTracker


def live_state() -> LiveState:
    live = LiveState()
    now_ms = int(time.time() * 1000)
    mtd = month_to_date((now_ms - 10 * 86_400_000, now_ms + 20 * 86_400_000), now_ms,
                        [(now_ms - 3_600_000, now_ms - 3_000_000)], [(now_ms - 7_200_000, now_ms - 7_100_000)], [],
                        Decimal("99.9"))
    targets, sla = {}, {}
    for tid, kind in (("edge-1", "internet"), ("sip-gw", "voice")):
        tracker = TargetTracker(tid)
        tracker.state, tracker.since = ("down" if kind == "internet" else "up"), 1_795_000_000.123456
        t = TargetLive(tid, "acme-2026", kind, tracker, packets_sent=120, packets_received=117)
        t.observe_rtts([0.0004, 0.0021, 0.031, 0.7])
        t.last_rtt, t.last_loss, t.last_jitter, t.last_cycle = 0.0021, 0.025, 0.00031, 1_795_000_100.5
        if kind == "voice":
            from monitor.config.models import VoiceSettings
            from monitor.sla.voice_window import VoiceWindow

            t.last_mos, t.last_r = 4.31, 92.25
            t.voice_window, t.voice_settings = VoiceWindow(), VoiceSettings()
            t.voice_window.add(time.time() - 10, 50, 49, 0.02, 0.002)
        targets[tid] = t
        sla[tid] = TargetSla(tid, "acme-2026", "2026-11", 0.999, mtd, {"1h": 0.98, "24h": 0.999},
                             {"1h": 3.5, "5m": 0.0})
    live.set_targets(targets)
    live.sla = sla
    return live


def per_target(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counts[sample.labels["target"]] = counts.get(sample.labels["target"], 0) + 1
    return counts


def test_default_budget_and_what_each_option_adds():
    live = live_state()
    default = TargetSeries(live, PerTargetMetrics()).render()
    assert per_target(default) == {"edge-1": DEFAULT_SERIES["internet"], "sip-gw": DEFAULT_SERIES["voice"]}
    full = TargetSeries(live, PerTargetMetrics(histograms=True, windows=["month", "1h", "24h"], burn_rates=True,
                                               detail=True)).render()
    counts = per_target(full)
    # +17 histogram, +2 windows, +2 burn rates (the two this fixture has); detail: budget seconds, excluded x2,
    # at-risk, breached, last cycle, RFC 3550 jitter (7 on both), an internet target's loss and jitter (+2), a
    # voice target's 1 h MOS window and two R-factor windows (+3)
    assert counts["edge-1"] == DEFAULT_SERIES["internet"] + 17 + 2 + 2 + 7 + 2
    assert counts["sip-gw"] == DEFAULT_SERIES["voice"] + 17 + 2 + 2 + 7 + 3


def test_lines_are_what_prometheus_client_writes():
    """The same series through prometheus_client's families: identical sample lines."""
    live = live_state()
    ours = TargetSeries(live, PerTargetMetrics(histograms=True, detail=True)).render()

    class Reference:
        def collect(self):
            labels = ["contract", "target", "kind"]
            up = GaugeMetricFamily("slawatch_target_up", "x", labels=labels)
            since = GaugeMetricFamily("slawatch_target_state_since_seconds", "x", labels=labels)
            sent = CounterMetricFamily("slawatch_icmp_packets_sent", "x", labels=labels)
            rtt = HistogramMetricFamily("slawatch_icmp_rtt_seconds", "x", labels=labels)
            jitter = GaugeMetricFamily("slawatch_jitter_seconds", "x", labels=labels)
            excluded = GaugeMetricFamily("slawatch_sla_excluded_seconds", "x", labels=labels + ["reason"])
            avail = GaugeMetricFamily("slawatch_sla_availability_ratio", "x", labels=labels + ["window"])
            for t in live.snapshot():
                lab = [t.contract, t.target, t.kind]
                up.add_metric(lab, 0 if t.tracker.state == "down" else 1)
                since.add_metric(lab, t.tracker.since)
                sent.add_metric(lab, t.packets_sent)
                cumulative, buckets = 0, []
                for bound, count in zip(list(RTT_BUCKETS) + [float("inf")], t.rtt_bucket_counts):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                rtt.add_metric(lab, buckets, t.rtt_sum)
                jitter.add_metric(lab, t.last_jitter)
                m = live.sla[t.target].mtd
                excluded.add_metric(lab + ["unknown"], m.so_far.unknown_ms / 1000)
                avail.add_metric(lab + ["month"], float(m.so_far.ratio))
            yield from (up, since, sent, rtt, jitter, excluded, avail)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference())
    reference = [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]
    lines = set(ours.splitlines())
    missing = [line for line in reference if line not in lines]
    assert not missing, missing
    assert len(reference) > 40


def test_the_state_is_one_series_that_moves_and_label_values_are_escaped():
    live = live_state()
    series = TargetSeries(live, PerTargetMetrics())
    text = series.render()
    assert 'slawatch_target_state{contract="acme-2026",kind="internet",slawatch_target_state="down",target="edge-1"} 1.0' \
        in text
    live.targets["edge-1"].tracker.state = "up"
    text = series.render()
    assert [line for line in text.splitlines() if line.startswith("slawatch_target_state{") and "edge-1" in line] == \
        ['slawatch_target_state{contract="acme-2026",kind="internet",slawatch_target_state="up",target="edge-1"} 1.0']
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    # a removed target leaves no lines and no cache behind
    live.set_targets({"sip-gw": live.targets["sip-gw"]})
    text = series.render()
    assert "edge-1" not in text and set(series._labels) == {"sip-gw"}


def test_service_probe_series_and_the_phase_opt_in():
    """A support target checked over HTTPS: 3 series by default (success, response time, certificate expiry); the
    ``phases`` opt-in adds one per phase, ``detail`` the TLS version; the lines are prometheus_client's."""
    from probes.service import ServiceResult, TlsInfo

    live = LiveState()
    tracker = TargetTracker("portal")
    tracker.state, tracker.since = "up", 1_795_000_000.0
    t = TargetLive("portal", "acme-2026", "support", tracker)
    phases = {"resolve": 0.00001, "connect": 0.0002, "tls": 0.0031, "first_byte": 0.0105, "transfer": 0.0004}
    tls = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=portal", "CN=ca", 1_800_000_000.0, True)
    result = ServiceResult("http", "portal", "127.0.0.1", 1_795_000_100.0, 0.0142, True, None, response=0.0142,
                           phases=phases, tls=tls, status="HTTP/1.1 200")
    t.observe_cycle(1_795_000_100.0, result.samples(), [result])
    live.set_targets({"portal": t})

    def series(opts: PerTargetMetrics) -> dict[str, list]:
        out: dict[str, list] = {}
        for family in text_string_to_metric_families(TargetSeries(live, opts).render()):
            for s in family.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
        return out

    default = series(PerTargetMetrics())
    # up, state, since; success, response, expiry (no ICMP counters: the target sends no echo)
    assert sum(map(len, default.values())) == 3 + 3
    assert default["slawatch_probe_response_seconds"][0][1] == 0.0142
    assert default["slawatch_tls_cert_not_after_seconds"][0][1] == 1_800_000_000.0
    assert "slawatch_probe_phase_seconds" not in default and "slawatch_probe_tls_version_info" not in default
    with_phases = series(PerTargetMetrics(phases=True))
    assert {lab["phase"]: v for lab, v in with_phases["slawatch_probe_phase_seconds"]} == phases
    assert sum(map(len, with_phases.values())) == 6 + 5
    detail = series(PerTargetMetrics(detail=True))
    assert [lab["version"] for lab, _ in detail["slawatch_probe_tls_version_info"]] == ["TLSv1.3"]

    class Reference:
        def collect(self):
            g = GaugeMetricFamily("slawatch_probe_phase_seconds", "x",
                                  labels=["contract", "target", "kind", "probe", "phase"])
            for name, value in phases.items():
                g.add_metric(["acme-2026", "portal", "support", "http", name], value)
            v = GaugeMetricFamily("slawatch_probe_tls_version_info", "x",
                                  labels=["contract", "target", "kind", "probe", "version"])
            v.add_metric(["acme-2026", "portal", "support", "http", "TLSv1.3"], 1.0)
            yield from (g, v)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference())
    reference = [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]
    ours = set(TargetSeries(live, PerTargetMetrics(phases=True, detail=True)).render().splitlines())
    assert reference and not [line for line in reference if line not in ours]


def test_a_target_no_icmp_probe_measures_exports_no_rtt_histogram():
    """#27: an HTTPS-only target exported 17 ICMP histogram series stuck at 0 when histograms were on."""
    live = live_state()
    tracker = TargetTracker("portal")
    tracker.state = "up"
    portal = TargetLive("portal", "acme-2026", "support", tracker)
    portal.service["http"] = {"up": 1.0, "response": 0.042}
    live.set_targets({**{t.target: t for t in live.snapshot()}, "portal": portal})
    text = TargetSeries(live, PerTargetMetrics(histograms=True)).render()
    portal_families = {f.name for f in text_string_to_metric_families(text)
                       if any(s.labels.get("target") == "portal" for s in f.samples)}
    edge_families = {f.name for f in text_string_to_metric_families(text)
                     if any(s.labels.get("target") == "edge-1" for s in f.samples)}
    assert "slawatch_icmp_rtt_seconds" in edge_families and "slawatch_icmp_rtt_seconds" not in portal_families
