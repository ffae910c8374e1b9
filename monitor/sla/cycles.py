"""One cycle's figures as the SLA counts them: the rule that turns a cycle (its verdict, samples, start and
maintenance window) into what a rollup adds, used at ingestion (monitor.measure.ingest) and when a month is rebuilt
from raw cycles because its maintenance changed (monitor.sla.reconcile), so both judge a cycle alike."""

from __future__ import annotations

from dataclasses import dataclass

from probes.base import ProbeResult, Samples, at_least, judge

from monitor.config import Contract, Target
from monitor.sla.emodel import voice_quality
from monitor.sla.periods import to_ms
from monitor.sla.rollup import VoiceSample

__all__ = ["CycleFigures", "cycle_figures", "cycle_samples", "voice_sample"]


def cycle_samples(results: list[ProbeResult] | tuple[ProbeResult, ...]) -> Samples:
    """One cycle's samples from its results (each figure from the first result that has it)."""
    merged: dict[str, object] = {}
    for r in results:
        s = r.samples()
        for name in Samples.__slots__:
            value = getattr(s, name)
            if name not in merged and value not in (None, (), {}):
                merged[name] = value
    return Samples(**merged)  # type: ignore[arg-type]


def voice_sample(samples: Samples, contract: Contract, voice: bool = True) -> VoiceSample | None:
    """One reachable burst against the contract's quality objectives (judged by :func:`probes.base.judge`, the
    one judgement); with the E-model MOS for voice."""
    if samples.rtt is None or samples.loss is None:
        return None
    obj = contract.objectives
    met = judge(samples, obj)
    mos = r = None
    if voice:
        v = contract.voice
        q = voice_quality(samples.rtt, samples.jitter or 0.0, samples.loss, codec=v.codec,
                          codec_delay_s=v.codec_delay, jitter_buffer_factor=v.jitter_buffer_factor, advantage=v.advantage)
        mos, r = q.mos, q.r
    return VoiceSample(
        mos=mos,
        one_way_delay_ms=samples.rtt / 2 * 1000,
        below_mos=mos is not None and obj.mos is not None and not at_least(mos, obj.mos),
        delay_ok=met.get("one_way_delay", True),
        jitter_ok=met.get("jitter", True),
        loss_ok=met.get("loss", True),
        latency_ok=met.get("latency", True),
        r=r,
    )


@dataclass(frozen=True, slots=True)
class CycleFigures:
    """What :meth:`monitor.sla.rollup.Rollup.add` takes for one cycle."""

    verdict: str
    in_maintenance: bool
    sent: int | None
    received: int | None
    rtts: list[float]
    jitter: float | None
    voice: VoiceSample | None
    at_ms: int | None
    window: tuple[int, int] | None
    response: float | None


def cycle_figures(contract: Contract, target: Target, verdict: str, samples: Samples, started: float,
                  window: tuple[int, int] | None) -> CycleFigures:
    """One cycle's figures (``window``: the maintenance window it fell in, or None)."""
    voice = voice_sample(samples, contract, target.kind == "voice")
    return CycleFigures(verdict, window is not None, samples.sent, samples.received, list(samples.rtts),
                        samples.jitter, voice, to_ms(started), window, samples.response)
