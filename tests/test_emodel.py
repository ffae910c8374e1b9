"""E-model vectors from ITU-T G.107 / G.113 as given in ../shared/reference/voice-quality.md.

Expected numbers are computed by hand from the published formulas and constants."""

import pytest

from monitor.sla.emodel import delay_impairment, ie_eff, mos_from_r, r_factor, voice_quality


def test_default_parameters_give_r_93_2_and_mos_4_41():
    assert r_factor(0, 0, "g711") == pytest.approx(93.2)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.005)  # 1 + 3.262 + 0.1473


@pytest.mark.parametrize("r,mos", [(90, 4.34), (80, 4.03), (70, 3.60), (60, 3.10), (50, 2.58)])
def test_satisfaction_bands(r, mos):
    # the published table rounds to two places (R 80 gives 4.024 by the Annex B formula)
    assert mos_from_r(r) == pytest.approx(mos, abs=0.01)


def test_annex_b_formula_exact_points():
    assert mos_from_r(80) == pytest.approx(1 + 2.8 + 80 * 20 * 20 * 7e-6)  # 4.024
    assert mos_from_r(60) == pytest.approx(1 + 2.1)  # the cubic term vanishes at R = 60


def test_mos_clamps():
    assert mos_from_r(-5) == 1.0 and mos_from_r(120) == 4.5 and mos_from_r(0) == 1.0 and mos_from_r(100) == 4.5


def test_delay_impairment_cole_rosenbluth():
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(177.3) == pytest.approx(4.2552)
    assert delay_impairment(200) == pytest.approx(0.024 * 200 + 0.11 * 22.7)  # 7.297


@pytest.mark.parametrize(
    "codec_ie,bpl,ppl,expected",
    [
        (0, 4.3, 1.0, 95 * 1 / (1 + 4.3)),  # G.711 without PLC, 1 % loss: 17.92
        (0, 25.1, 1.0, 95 * 1 / (1 + 25.1)),  # G.711 with PLC: 3.64
        (11, 19.0, 2.0, 11 + 84 * 2 / (2 + 19.0)),  # G.729A: 19.0
        (15, 16.1, 0.0, 15),  # G.723.1 at no loss: Ie
    ],
)
def test_ie_eff(codec_ie, bpl, ppl, expected):
    assert ie_eff(codec_ie, bpl, ppl) == pytest.approx(expected)


def test_bursty_loss_hurts_more():
    assert ie_eff(0, 25.1, 2.0, burst_r=2.0) > ie_eff(0, 25.1, 2.0)


def test_codec_impairments_in_r():
    assert r_factor(0, 0, "g729a") == pytest.approx(93.2 - 11)
    assert r_factor(0, 1.0, "g711") == pytest.approx(93.2 - 95 / 5.3)


def test_voice_quality_from_icmp_figures():
    # RTT 60 ms -> 30 ms one way; + 25 ms codec; + 2 x 5 ms jitter buffer = 65 ms mouth to ear
    q = voice_quality(0.060, 0.005, 0.01, codec="g711-plc")
    assert q.one_way_delay_ms == pytest.approx(30) and q.mouth_to_ear_ms == pytest.approx(65)
    r = 93.2 - 0.024 * 65 - 95 * 1 / (1 + 25.1)
    assert q.r == pytest.approx(r) and q.mos == pytest.approx(mos_from_r(r))
