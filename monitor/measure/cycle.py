"""One probe cycle of one target: run its probes, reach a verdict, update its state."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from probes import PROBES
from probes.base import QUALITY_OBJECTIVES, ProbeContext, ProbeResult, shortfalls

from monitor.config import Contract, Target
from monitor.errors import ProbeSetupError
from monitor.events import BreachEvent, outage_event
from monitor.measure.live import TargetLive
from monitor.measure.state import Transition, Verdict
from monitor.store import CycleRecord, OutageRecord, StateRecord
from monitor.sla.cycles import cycle_samples

__all__ = ["CycleOutcome", "run_cycle", "verdict_of", "quality_breach", "cycle_records", "cycle_samples",
           "transition_records"]

log = logging.getLogger("slawatch.cycle")


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """One probe cycle of one target: its results, verdict, quality flag and the transitions it caused."""

    target: str
    started: float
    results: tuple[ProbeResult, ...]
    verdict: Verdict
    quality_ok: bool
    transitions: tuple[Transition, ...]


def verdict_of(results: list[ProbeResult]) -> Verdict:
    """The evidence rule of :mod:`monitor.measure.state`, over each result's own :meth:`~ProbeResult.evidence`:

    * any probe's bad evidence is ``bad`` (no reply to what ICMP sent, a selected interface administratively up
      and operationally down, a SIP stack or portal that does not answer as it must);
    * otherwise the primary probes (ICMP, the service probes) decide: good evidence is ``good``, none is
      ``unknown`` (an SNMP timeout while ICMP answers is not an outage);
    * without a primary probe, an answering agent is ``good`` and a silent one ``unknown`` (never up).
    """
    evidence = [r.evidence() for r in results]
    if any(e.verdict == "bad" for e in evidence):
        return "bad"
    primary = [e for e in evidence if e.primary]
    deciding = primary or evidence
    if deciding and all(e.verdict == "good" for e in deciding):
        return "good"
    return "unknown"


def quality_breach(results: list[ProbeResult] | tuple[ProbeResult, ...], contract: Contract) -> str | None:
    """Which per-cycle quality objectives the reachable results of a cycle miss, in words (``http: TLS certificate
    expires in 3.0 days, under the 14-day minimum``), or None when they meet them all (:func:`probes.base.judge`)."""
    missed = [f"{r.probe}: {words}" for r in results if r.ok
              for words in shortfalls(r.samples(), contract.objectives, QUALITY_OBJECTIVES).values()]
    return "; ".join(missed) if missed else None


async def run_probes(target: Target, context: ProbeContext | None = None) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    for name in target.probes.enabled():
        settings = getattr(target.probes, name)
        try:
            results.append(await PROBES[name](target.id, target.address, settings, context=context))
        except ProbeSetupError as exc:
            results.append(ProbeResult(name, target.id, target.address, time.time(), 0.0, False, str(exc)))
    return results


def cycle_records(target: Target, outcome: CycleOutcome, node: str | None = None,
                  site: str | None = None) -> list[CycleRecord]:
    """One raw record per probe result of the cycle (with what the result keeps of its samples)."""
    cycles = []
    for r in outcome.results:
        s = r.samples()
        cycles.append(
            CycleRecord(
                target=target.id,
                probe=r.probe,
                started=outcome.started,
                duration=r.duration,
                ok=r.ok,
                verdict=outcome.verdict,
                reason=r.reason,
                sent=s.sent,
                received=s.received,
                rtt_median=s.rtt,
                jitter=s.jitter,
                samples=r.record_samples() or None,
                node=node,
                site=site,
            )
        )
    return cycles


def transition_records(target: Target, transitions: tuple[Transition, ...] | list[Transition], live: TargetLive,
                       at: float, evidence: dict | None = None,
                       tickets: bool = True) -> tuple[StateRecord, list[OutageRecord], list[BreachEvent]]:
    """The one conversion of a target's transitions into what is stored: its state, its outage and degradation
    records (with their evidence) and their breach events. Used by the probe cycle, the trap receiver and the
    canary alike. ``evidence``: more to keep on a started outage (a trap's varbinds); ``tickets=False``: a
    site's view of a multi-site target (monitor.cluster.consensus), whose transitions open no ticket."""
    tracker = live.tracker
    state = StateRecord(target.id, tracker.state, tracker.since, at, tracker.snapshot())
    outages: list[OutageRecord] = []
    events: list[BreachEvent] = []
    kinds = {"outage": "down", "degradation": "degraded"}
    for tr in transitions:
        what, _, edge = tr.event.partition("_")
        if tickets and tr.event != "state_changed":
            cause = (live.first_bad or {}).get("reason") if tr.event == "outage_started" else \
                (live.first_breach or {}).get("reason") if tr.event == "degradation_started" else None
            events.append(outage_event(tr.event, target.contract, target.id, tr.at, tr.interval_start, cause))
        if what not in kinds:
            continue
        if edge == "started":
            kept = {"last_good": live.last_good, "first_bad": live.first_bad, **(evidence or {})} \
                if what == "outage" else {"first_breach": live.first_breach} if live.first_breach else None
            outages.append(OutageRecord(target.id, target.contract, kinds[what], tr.at, None, kept))
        elif tr.interval_start is not None:
            kept = {"failed_cycles": live.failed_cycles} if what == "outage" else None
            outages.append(OutageRecord(target.id, target.contract, kinds[what], tr.interval_start, tr.at, kept))
    return state, outages, events


async def run_cycle(target: Target, contract: Contract, live: TargetLive,
                    context: ProbeContext | None = None, canary=None) -> CycleOutcome:
    """Run a target's probes once, reach the verdict and update its state; the canary may turn it unknown."""
    started = time.time()
    results = await run_probes(target, context)
    snmp_cfg = target.probes.snmp
    verdict = verdict_of(results)
    snmp = next((r for r in results if r.probe == "snmp"), None)
    if snmp is not None:
        live.observe_snmp(snmp, list(snmp_cfg.interfaces) if snmp_cfg else [])
    breach = quality_breach(results, contract)
    q_ok = breach is None
    if canary is not None and canary.enabled:
        canary_events = canary.observe(target.id, verdict, started)
        if canary_events:
            live.add_events(canary_events)
        if verdict != "good" and canary.is_down():
            from monitor.measure.canary import MONITORING_REASON

            # not evidence about the target: the monitoring host is cut off
            verdict = "unknown"
            live.tracker.forget_failures()
            results = [r if r.ok else r.as_failed(MONITORING_REASON) for r in results]
    transitions = live.tracker.observe(started, verdict, q_ok)
    samples = cycle_samples(results)
    live.observe_cycle(started, samples, results)
    bad = [e.reason for e in (r.evidence() for r in results) if e.verdict == "bad" and e.reason]
    bad_reason = next(iter(bad), None) or next((r.reason for r in results if r.reason), None)
    live.observe_evidence(started, verdict, samples.rtt, bad_reason, transitions, breach)
    for tr in transitions:
        level = logging.WARNING if tr.event.startswith(("outage", "degradation")) else logging.INFO
        log.log(level, "target %s: %s -> %s (%s, dated %s)", target.id, tr.old, tr.new, tr.event,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tr.at)))
    return CycleOutcome(target.id, started, tuple(results), verdict, q_ok, tuple(transitions))
