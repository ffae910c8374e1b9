"""ICMP probe against loopback: needs no root when ping_group_range allows this group."""

from __future__ import annotations

import asyncio
import socket

import pytest

from probes import PROBES
from probes.icmp import IcmpResult, IcmpSettings, ipdv_jitter, ping_burst, rfc3550_jitter_update


def burst(address, **kw):
    return asyncio.run(ping_burst(address, IcmpSettings(**kw), target_id="t"))


def test_ipv4_burst_keeps_every_rtt(icmp_mode):
    r = burst("127.0.0.1", count=10, spacing=0.005, timeout=0.5)
    assert r.ok and r.reason is None
    assert (r.sent, r.received, r.duplicates, r.late) == (10, 10, 0, 0)
    assert r.loss == 0.0 and len(r.rtts) == 10
    assert all(0 < x < 0.5 for x in r.rtts)  # each reply counted within the 500 ms timeout
    assert r.rtt_min <= r.rtt_median <= r.rtt_max
    assert r.family == socket.AF_INET


def test_ipv6_burst(icmp_mode):
    r = burst("::1", count=3, spacing=0.005, timeout=0.5)
    assert r.ok and r.received == 3 and r.family == socket.AF_INET6


def test_hostname_resolution_time_reported(icmp_mode):
    r = burst("localhost", count=1, timeout=0.5)
    assert r.ok and r.resolve_time is not None and r.resolve_time >= 0
    assert r.resolved_address in ("127.0.0.1", "::1")


def test_spacing_is_honoured(icmp_mode):
    r = burst("127.0.0.1", count=6, spacing=0.05, timeout=0.5)
    assert r.duration >= 0.25


def test_payload_and_ttl_options(icmp_mode):
    r = burst("127.0.0.2", count=2, spacing=0.001, timeout=0.5, payload_size=1400, ttl=3, dont_fragment=True)
    assert r.ok and r.received == 2


def test_probe_registry():
    from monitor.config.models import ProbesConfig
    from probes.base import Probe

    assert set(PROBES) == {"icmp", "snmp", "sip", "http", "tcp", "dns", "smtp", "websocket"}
    assert set(ProbesConfig.model_fields) == set(PROBES)  # every kind configurable, every configurable kind registered
    assert all(isinstance(p, Probe) for p in PROBES.values())


def test_loss_is_undefined_when_nothing_sent():
    r = IcmpResult(probe="icmp", target="t", address="x", started=0, duration=0, ok=False, reason="r", sent=0)
    assert r.loss is None and r.jitter is None and r.rtt_median is None


def test_ipdv_jitter_reference_values():
    # RFC 5481 IPDV: differences of consecutive delays; a lost packet breaks the pair
    assert ipdv_jitter([0.010, 0.012, 0.011, 0.015]) == pytest.approx((0.002 + 0.001 + 0.004) / 3)
    assert ipdv_jitter([0.010, None, 0.011, 0.013]) == pytest.approx(0.002)
    assert ipdv_jitter([0.010]) is None


def test_rfc3550_estimator():
    # RFC 3550 A.8: J += (|D| - J) / 16; a constant |D| converges to D
    j = 0.0
    for _ in range(400):
        j = rfc3550_jitter_update(j, 0.008)
    assert j == pytest.approx(0.008, rel=1e-6)
    assert rfc3550_jitter_update(0.0, -0.016) == pytest.approx(0.001)


def test_rfc3550_jitter_carries_across_cycles():
    from monitor.measure.live import TargetLive
    from monitor.measure.state import TargetTracker

    live = TargetLive("t", "c", "internet", TargetTracker("t"))
    live.observe_rtts([0.010, 0.026])  # D = 16 ms -> J = 1 ms
    assert live.rfc3550_jitter == pytest.approx(0.001)
    live.observe_rtts([0.010])  # next cycle: D = -16 ms against the previous cycle's last RTT
    assert live.rfc3550_jitter == pytest.approx(0.001 + (0.016 - 0.001) / 16)
    assert live.rtt_count == 3 and sum(live.rtt_bucket_counts) == 3
