"""Live, in-memory view of every target, fed by the scheduler and read by the exporter.

Not a singleton: the daemon builds one and passes it to whoever needs it.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any
from dataclasses import dataclass, field

from probes.icmp import rfc3550_jitter_update

from monitor.measure.state import TargetTracker

__all__ = ["LiveState", "TargetLive", "RTT_BUCKETS", "SelfStats"]

#: RTT histogram bucket bounds in seconds, fit for 0.1 ms .. 2 s
RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass(slots=True)
class TargetLive:
    """A target's live figures for the exporter, written only through its own methods by the producers."""

    target: str
    contract: str
    kind: str
    tracker: TargetTracker
    packets_sent: int = 0
    packets_received: int = 0
    rtt_bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS) + 1))
    rtt_sum: float = 0.0
    rtt_count: int = 0
    last_rtt: float | None = None
    last_loss: float | None = None
    last_jitter: float | None = None
    last_cycle: float | None = None
    #: RFC 3550 §6.4.1 smoothed interarrival jitter, carried across cycles
    rfc3550_jitter: float | None = None
    _previous_rtt: float | None = None
    in_maintenance: bool = False
    #: outage evidence: the last good sample, the first bad one of the current failure run,
    #: and the failed cycles since the current outage started
    last_good: dict | None = None
    first_bad: dict | None = None
    failed_cycles: int = 0
    #: degradation evidence: the first answered cycle of the current run outside the quality objectives, and why
    first_breach: dict | None = None
    #: SNMP: agent answering, sysUpTime, reboots seen, the selected interfaces' last sample
    snmp_up: bool | None = None
    snmp_uptime: int | None = None
    snmp_reboots: int = 0
    snmp_at: float | None = None
    snmp_interfaces: dict = field(default_factory=dict)
    #: IP SLA entry -> figures in base units (cisco-ipsla profile)
    ipsla: dict = field(default_factory=dict)
    #: the contract's objective thresholds in base units (latency and jitter in s, loss as a ratio, mos)
    objectives: dict = field(default_factory=dict)
    #: events raised while running this target's cycle, for the ingestor to store (canary)
    pending_events: list = field(default_factory=list)
    last_mos: float | None = None
    last_r: float | None = None
    #: in a cluster: this node has taken the target over (loaded its stored state) and probes it
    owned: bool = False
    #: time.monotonic() when this process started the target's last cycle (gaps are judged on it)
    last_mono: float | None = None
    #: voice targets: the last hour of answered cycles, for the windowed MOS (monitor.sla.voice_window)
    voice_window: Any = None
    #: voice targets: the contract's voice settings (codec, delays), for the windowed MOS
    voice_settings: Any = None
    #: service probes (SIP, HTTP, TCP, DNS, SMTP, WebSocket): probe kind -> its last figures (base units),
    #: from the result's own ``metrics()``; ``up`` is 1 when the probe's evidence was good
    service: dict = field(default_factory=dict)

    # -- the writers: each producer publishes through one of these; everyone else reads -------------------
    def observe_cycle(self, started: float, samples: Any, results: Any) -> None:
        """The probe cycle (monitor.measure.cycle): packets, RTTs and last figures, each service probe's figures."""
        if samples.sent is not None:
            self.packets_sent += samples.sent
            self.packets_received += samples.received or 0
            self.observe_rtts(list(samples.rtts))
            self.last_rtt, self.last_loss, self.last_jitter = samples.rtt, samples.loss, samples.jitter
        for r in results:
            figures = r.metrics()
            if figures:
                self.service[r.probe] = {"up": 1.0 if r.evidence().verdict == "good" else 0.0, **figures}
        self.last_cycle = started

    def observe_evidence(self, started: float, verdict: str, rtt: float | None, bad_reason: str | None,
                         transitions: Any, quality_breach: str | None = None) -> None:
        """The outage evidence (monitor.measure.cycle): the last good sample, the first bad one of the current failure run,
        the failed cycles since the outage started; and the first cycle of a run outside the quality objectives."""
        if verdict == "good":
            self.last_good = {"at": started, "rtt_ms": None if rtt is None else round(rtt * 1000, 3)}
            self.first_bad = None
            if quality_breach is None:
                self.first_breach = None
            elif self.first_breach is None:
                self.first_breach = {"at": started, "reason": quality_breach}
        elif verdict == "bad":
            if self.first_bad is None:
                self.first_bad = {"at": started, "reason": bad_reason}
            if self.tracker.state == "down":
                self.failed_cycles += 1
        if any(tr.event == "outage_started" for tr in transitions):
            self.failed_cycles = self.tracker.failure_threshold

    def observe_trap(self, at: float, kind: str) -> None:
        """A trap moved the target down (monitor.daemon): the trap is the first bad evidence."""
        self.first_bad = {"at": at, "reason": f"SNMP {kind} trap"}

    def observe_snmp(self, snmp: Any, selectors: list[str]) -> None:
        """An SNMP poll (monitor.measure.cycle): the agent, its reboots, the selected interfaces with their chosen octet
        counters and utilization since the previous poll, the IP SLA entries."""
        from monitor.measure.counters import interface_speed_mbps, octet_counter, rebooted, utilization

        self.snmp_up = snmp.answered
        if not snmp.answered:
            return
        uptime = snmp.scalars.get("sysUpTime")
        reboot = rebooted(self.snmp_uptime, uptime)
        if reboot:
            self.snmp_reboots += 1
        previous, prev_at = self.snmp_interfaces, self.snmp_at
        now = snmp.started
        selected = snmp.selected(selectors)
        for index, cols in selected.items():
            old = previous.get(index, {})
            for direction in ("in", "out"):
                counter = octet_counter(cols, direction)
                if counter is None:
                    continue
                column, bits = counter
                cols[f"octets_{direction}"] = cols.get(column)  # the counter chosen (64 or 32 bit), for the exporter
                cols[f"utilization_{direction}"] = utilization(old.get(column), cols.get(column),
                                                               now - prev_at if prev_at else 0,
                                                               interface_speed_mbps(cols), bits, reboot)
        self.snmp_interfaces, self.snmp_at, self.snmp_uptime = selected, now, uptime
        if "cisco-ipsla" in snmp.tables:
            from probes.snmp import ipsla_figures

            self.ipsla = {entry: ipsla_figures(row) for entry, row in snmp.tables["cisco-ipsla"].items()}

    def observe_voice(self, voice: Any, in_maintenance: bool, started: float, samples: Any, settings: Any,
                      interval: float) -> None:
        """Ingestion's judgement of the cycle (monitor.measure.ingest): maintenance now, the E-model figures, the voice
        window of answered cycles outside maintenance (sized for the target's ``interval``)."""
        self.in_maintenance = in_maintenance
        if voice is None or voice.mos is None:
            return
        self.last_mos, self.last_r = voice.mos, voice.r
        if not in_maintenance and samples.rtt is not None and samples.sent is not None:
            if self.voice_window is None:
                from monitor.sla.voice_window import VoiceWindow

                self.voice_window = VoiceWindow(interval=interval)
            self.voice_settings = settings
            self.voice_window.add(started, samples.sent, samples.received or 0, samples.rtt, samples.jitter)

    def add_events(self, events: list) -> None:
        """Events raised while running the cycle (the canary), for ingestion to store."""
        self.pending_events.extend(events)

    def take_events(self) -> list:
        """The events raised by the canary since the last call, for ingestion to store (and forgets them)."""
        out, self.pending_events = self.pending_events, []
        return out

    def assign(self, contract: str, kind: str, objectives: dict) -> None:
        """A reload moved the target (monitor.daemon)."""
        self.contract, self.kind, self.objectives = contract, kind, objectives

    def set_owned(self, owned: bool) -> None:
        """In a cluster: this node took the target over (or gave it away)."""
        self.owned = owned

    def cycle_started(self, mono: float) -> None:
        """The probe cycle started at monotonic time ``mono`` (gaps are judged on it)."""
        self.last_mono = mono

    def observe_rtts(self, rtts: list[float]) -> None:
        """Received RTTs of one burst, in sequence order."""
        for rtt in rtts:
            self.rtt_bucket_counts[bisect.bisect_left(RTT_BUCKETS, rtt)] += 1
            self.rtt_sum += rtt
            self.rtt_count += 1
            # with ICMP, the transit-time difference D(i-1, i) of RFC 3550 is the RTT difference
            if self._previous_rtt is not None:
                self.rfc3550_jitter = rfc3550_jitter_update(self.rfc3550_jitter or 0.0, rtt - self._previous_rtt)
            self._previous_rtt = rtt


@dataclass(slots=True)
class SelfStats:
    """The daemon's own figures: cycles, scheduler lag, store writes and backlog, reloads, scrapes."""

    cycles_total: int = 0
    cycle_duration_sum: float = 0.0
    overruns_total: int = 0
    scheduler_lag_seconds: float = 0.0
    store_write_seconds_sum: float = 0.0
    store_writes_total: int = 0
    store_write_failures_total: int = 0
    #: cycles held in memory because the store could not be written
    store_backlog_cycles: int = 0
    #: raw cycles dropped from a full backlog (their time recorded as unknown)
    store_backlog_dropped_total: int = 0
    config_reload_ok: bool = True
    config_reload_failures_total: int = 0
    config_reload_time: float = field(default_factory=time.time)
    #: steps of the wall clock seen (monitor.daemon._clock_watch)
    clock_steps_total: int = 0
    #: the exporter's HTTP answers by status code (4xx: bad or unauthorized requests)
    http_responses: dict = field(default_factory=dict)
    #: the last scrape: seconds to render and compress it, bytes sent
    scrape: dict = field(default_factory=dict)


class LiveState:
    """Everything the exporter reads, in memory: targets, SLA figures, tickets, cluster; never the store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.targets: dict[str, TargetLive] = {}
        self.sla: dict = {}  # target -> monitor.sla.evaluator.TargetSla
        self.sla_time: float | None = None  # the instant the SLA figures are for
        #: contract -> (customer, provider), for slawatch_contract_info
        self.contracts: dict[str, tuple[str, str]] = {}
        #: every configured target's kind (multi-site targets included, whose units are in ``targets``)
        self.target_kinds: dict[str, str] = {}
        self.traps: Any = None  # monitor.measure.traps.TrapReceiver when configured
        self.snmp_wire = None  # probes.snmp_wire.WireClient: its count of dropped datagrams
        #: (state, severity) -> count, refreshed by the delivery loop
        self.ticket_counts: dict[tuple[str, str, str], int] = {}  # (contract, state, severity)
        #: incident key (outage:CONTRACT:TARGET) -> the open outage ticket's id (the leader's delivery loop)
        self.open_outage_tickets: dict[str, int] = {}
        self.outbox_pending: dict[str, int] = {}
        self.delivery_failures: dict[str, int] = {}
        #: customer requests (#28), by the request stage: (contract, severity) -> open requests, and -> business
        #: seconds left before the next of their clocks passes its target (negative: already past)
        self.requests_open: dict[tuple[str, str], int] = {}
        self.requests_next_breach: dict[tuple[str, str], float] = {}
        #: (contract, severity, first_response|resolution) -> this month's requests whose clock missed its target
        self.request_breaches: dict[tuple[str, str, str], int] = {}
        #: request source -> when it was last read successfully (unix seconds)
        self.request_sources_read: dict[str, float] = {}
        #: (severity, acknowledge|resolve) -> (met, measured) for tickets opened this month
        self.response_met: dict[tuple[str, str], tuple[int, int]] = {}
        #: in a cluster: the targets this node probes now (None: every target); only those are exported
        self.owned: frozenset[str] | None = None
        #: monitor.cluster.member.ClusterMember, for its metrics
        self.cluster: Any = None
        #: probe units of multi-site targets: unit id -> (target, site) (monitor.cluster.consensus)
        self.site_units: dict[str, tuple[str, str]] = {}
        #: monitor.cluster.vantage.ConsensusKeeper: the leader's consensus states and dark sites, for their metrics
        self.vantage: Any = None
        self.stats = SelfStats()

    def set_sla(self, results: dict) -> None:
        """Publish the evaluator's latest figures (target -> TargetSla); the evaluator is their one writer."""
        with self.lock:
            self.sla = dict(results)

    def set_targets(self, entries: dict[str, TargetLive]) -> None:
        """Replace the target set (on start or reload); removed targets' series disappear."""
        with self.lock:
            self.targets = dict(entries)

    def snapshot(self) -> list[TargetLive]:
        """The targets this node exports: every one, or in a cluster the ones it owns."""
        with self.lock:
            if self.owned is None:
                return list(self.targets.values())
            return [t for name, t in self.targets.items() if name in self.owned]

    def sla_snapshot(self) -> dict:
        """The latest SLA figures of the targets still configured: every target's on the cluster's leader (its
        own, the other nodes' and the multi-site ones), none on the other nodes, so each series exists once
        across the cluster; a node that stopped leading stops exporting them at once."""
        if self.cluster is not None and not self.cluster.leader:
            return {}
        with self.lock:
            known = self.target_kinds or self.targets
            return {k: v for k, v in self.sla.items() if k in known}
