"""ITU-T G.107 E-model (narrowband): R-factor and MOS for voice targets.

    R = R0 - Id - Ie,eff + A

* R0 = 93.2: G.107's result for all default parameters (Ro - Is with no
  delay or loss). Cole & Rosenbluth (2001) print 94.2 as their constant; we
  use G.107's 93.2 so that a clean line scores the standard's default R.
* Id: the Cole & Rosenbluth simplification for default parameters with echo
  cancellation, d = mouth-to-ear one-way delay in ms:
  ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)``.
* Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)  (G.107 §3.5), with
  codec Ie and Bpl from ITU-T G.113 Appendix I (random loss).
* MOS from R per G.107 Annex B.

From ICMP measurements, the mouth-to-ear delay is
``RTT/2 + codec_delay + jitter_buffer_factor * jitter`` (each term a
documented config value; see VoiceSettings), so a reader can redo it by hand.
Wideband codecs (G.107.1, 0..129 scale) are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODECS", "R0", "delay_impairment", "ie_eff", "r_factor", "mos_from_r", "VoiceQuality", "voice_quality"]

R0 = 93.2

#: codec -> (Ie, Bpl), ITU-T G.113 (02/2001) Appendix I, Table I.1, random loss
CODECS: dict[str, tuple[float, float]] = {
    "g711": (0.0, 4.3),
    "g711-plc": (0.0, 25.1),
    "g729a": (11.0, 19.0),
    "g723.1": (15.0, 16.1),
}


def delay_impairment(d_ms: float) -> float:
    """Id (Cole & Rosenbluth 2001) for a mouth-to-ear delay in milliseconds."""
    return 0.024 * d_ms + (0.11 * (d_ms - 177.3) if d_ms >= 177.3 else 0.0)


def ie_eff(ie: float, bpl: float, ppl: float, burst_r: float = 1.0) -> float:
    """Effective equipment impairment for packet loss ``ppl`` in percent (0..100)."""
    if ppl <= 0:
        return ie
    return ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(d_ms: float, loss_pct: float, codec: str = "g711-plc", *, burst_r: float = 1.0,
             advantage: float = 0.0) -> float:
    """ITU-T G.107 R-factor for a one-way delay (ms), a packet loss (%) and a codec (G.113 Ie and Bpl)."""
    ie, bpl = CODECS[codec]
    return R0 - delay_impairment(d_ms) - ie_eff(ie, bpl, loss_pct, burst_r) + advantage


def mos_from_r(r: float) -> float:
    """ITU-T G.107 Annex B: the MOS (1 .. 4.5) for an R-factor."""
    if r < 0:
        return 1.0
    if r > 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


@dataclass(frozen=True, slots=True)
class VoiceQuality:
    """The E-model's result: R-factor, MOS and the inputs it used."""

    one_way_delay_ms: float  # RTT/2
    mouth_to_ear_ms: float
    loss_pct: float
    r: float
    mos: float


def voice_quality(rtt_s: float, jitter_s: float, loss_ratio: float, *, codec: str = "g711-plc",
                  codec_delay_s: float = 0.025, jitter_buffer_factor: float = 2.0,
                  advantage: float = 0.0, burst_r: float = 1.0) -> VoiceQuality:
    """The E-model of a measured line: RTT, jitter and loss through the codec and jitter-buffer settings."""
    one_way = rtt_s / 2 * 1000
    d = one_way + codec_delay_s * 1000 + jitter_buffer_factor * jitter_s * 1000
    r = r_factor(d, loss_ratio * 100, codec, burst_r=burst_r, advantage=advantage)
    return VoiceQuality(one_way, d, loss_ratio * 100, r, mos_from_r(r))
