"""Windowed MOS: pooled over the window, against the E-model's own figures (ITU-T G.107 via monitor.sla.emodel)."""

from __future__ import annotations

import pytest

from monitor.config import parse_config
from monitor.sla.emodel import voice_quality
from monitor.sla.voice_window import VoiceWindow


def contract():
    return parse_config({"contracts": [{"id": "v", "customer": "A", "provider": "B",
                                        "objectives": {"availability": "99.9%", "mos": 4.0}}],
                         "targets": []}).contracts[0]


def test_a_line_with_one_percent_loss_has_a_steady_windowed_mos():
    """50-packet trains on a 1 % loss line show 0, 2 or 4 % per cycle; the last-cycle MOS swings, the window's does
    not: it is the E-model of the pooled 1 %."""
    voice = contract().voice
    window = VoiceWindow()
    losses = [0, 1, 0, 2, 0, 0, 1, 1, 0, 0] * 12  # 6 of 500 ... pooled: 60 of 6,000 = 1 %
    per_cycle = []
    for i, lost in enumerate(losses):
        window.add(1000.0 + 30 * i, 50, 50 - lost, 0.040, 0.002)
        per_cycle.append(voice_quality(0.040, 0.002, lost / 50, codec=voice.codec, codec_delay_s=voice.codec_delay,
                                       jitter_buffer_factor=voice.jitter_buffer_factor).mos)
    now = 1000.0 + 30 * (len(losses) - 1)
    hour = window.quality(now, 3600, voice)
    expected = voice_quality(0.040, 0.002, 0.01, codec=voice.codec, codec_delay_s=voice.codec_delay,
                             jitter_buffer_factor=voice.jitter_buffer_factor)
    assert hour.mos == pytest.approx(expected.mos) and hour.r == pytest.approx(expected.r)
    assert max(per_cycle) - min(per_cycle) > 0.3  # what the last-cycle figure does on this line (G.711 with PLC)
    assert min(per_cycle) < hour.mos < max(per_cycle)
    five = window.quality(now, 300, voice)  # the last 10 cycles: 5 of 500 lost
    assert five.mos == pytest.approx(voice_quality(0.040, 0.002, 0.01, codec=voice.codec,
                                                   codec_delay_s=voice.codec_delay,
                                                   jitter_buffer_factor=voice.jitter_buffer_factor).mos)


def test_the_window_forgets_and_ignores_unanswered_cycles():
    voice = contract().voice
    window = VoiceWindow()
    window.add(0.0, 50, 25, 0.200, 0.010)  # an old, bad hour
    window.add(4000.0, 50, 0, 0.0, None)  # an outage cycle: availability's business
    window.add(4000.0, 50, 50, 0.020, 0.001)
    q = window.quality(4000.0, 3600, voice)
    assert q.loss_pct == 0 and q.one_way_delay_ms == pytest.approx(10)
    assert window.quality(9000.0, 300, voice) is None


def test_the_ring_is_sized_once_wraps_in_order_and_grows_only_when_cycles_come_faster():
    """Sized for the hour at the interval on the first cycle (flat memory afterwards); after many wraps the
    window still pools exactly its last hour; a shorter interval than planned grows it without losing a cycle."""
    voice = contract().voice
    window = VoiceWindow(interval=30)
    capacity = window.capacity
    assert capacity == 3600 // 30 + 2
    for i in range(1000):  # about eight times round the ring; the last hour has 1 % loss, older cycles 20 %
        lost = (1 if i % 2 else 0) if i >= 1000 - 120 else 10
        window.add(30.0 * i, 50, 50 - lost, 0.040, 0.002)
    assert window.capacity == capacity and len(window) == 121  # 3600 s back from the newest, both ends in
    now = 30.0 * 999
    hour = window.quality(now, 3600, voice)  # (now - 3600, now]: the last 120 cycles, 60 of 6,000 lost
    assert hour.loss_pct == pytest.approx(1.0)
    five = window.quality(now, 300, voice)  # the last 10 cycles: 5 of 500
    assert five.loss_pct == pytest.approx(1.0)
    for i in range(1000, 1000 + 400):  # the interval is now 10 s: the hour holds 360 cycles
        window.add(30.0 * 999 + 10.0 * (i - 999), 50, 50, 0.040, 0.002)
    assert window.capacity > capacity and len(window) == 361
    assert window.quality(30.0 * 999 + 4000, 3600, voice).loss_pct == 0
