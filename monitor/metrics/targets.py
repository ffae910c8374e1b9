"""The per-target families, within a series budget: what a NOC needs per circuit by default, the rest opt-in.

Default series per target (README, "Series budget"):

===================================================  ========  =============================================
family                                               series    why per target
===================================================  ========  =============================================
``slawatch_target_up``                               1         down now; Prometheus derives error ratios
``slawatch_target_state{slawatch_target_state=…}``   1         the current state (its label), value 1
``slawatch_target_state_since_seconds``              1         "down since", for how long
``slawatch_icmp_packets_sent_total`` / ``_received``  2         loss over any window (recording rules)
``slawatch_icmp_rtt_median_seconds``                 1         the last burst's latency
``slawatch_sla_availability_ratio{window="month"}``  1         availability this month
``slawatch_sla_error_budget_remaining_ratio``        1         budget left
``slawatch_sla_projected_availability_ratio``        1         where the month is heading
``slawatch_sla_downtime_seconds{window="month"}``    1         downtime counted for billing
===================================================  ========  =============================================

10 for an internet target. A voice target adds the last burst's ``slawatch_icmp_loss_ratio`` and
``slawatch_jitter_seconds``, ``slawatch_voice_mos``, ``slawatch_voice_r_factor`` and
``slawatch_voice_mos_window{window="5m"}`` (15). Each service probe (SIP, HTTP, TCP, DNS, SMTP, WebSocket)
adds 2: ``slawatch_probe_success{probe}`` and ``slawatch_probe_response_seconds{probe}``, and one more over
TLS, ``slawatch_tls_cert_not_after_seconds{probe}`` (days left: ``(x - time()) / 86400``). An SNMP probe adds 3
(``slawatch_snmp_up``, uptime, reboots) and 6 per selected interface (monitor.metrics.exporter). Opt-in
(``exporter.per_target``):

- ``histograms: true``: ``slawatch_icmp_rtt_seconds`` (15 buckets, sum, count: +17); the p50/p95/p99
  recording rules need it.
- ``windows: [month, 1h, 24h, 7d, 30d]``: more availability windows (+1 each).
- ``burn_rates: true``: ``slawatch_sla_burn_rate`` for the six burn windows (+6); the shipped recording
  rules compute the same from ``slawatch_target_up``, as Sloth and Pyrra do.
- ``detail: true``: budget seconds, excluded time by reason, at-risk, breached, the last cycle's time,
  RFC 3550 jitter, an internet target's last-burst loss and IPDV jitter, the voice R-factor windows and
  1 h MOS window (+9 internet, +10 voice), a service probe's negotiated TLS version
  (``slawatch_probe_tls_version_info``, +1 over TLS).
- ``phases: true``: ``slawatch_probe_phase_seconds{probe,phase}``, each service probe's phases (HTTP: resolve,
  connect, tls, first_byte, transfer: +5), as blackbox_exporter's ``probe_http_duration_seconds``.

The contract-level objectives (``slawatch_sla_objective_ratio``, ``slawatch_objective_threshold``) are per
contract, not per target (monitor.metrics.exporter). Nothing here reads the store: everything comes from LiveState.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from monitor.measure.live import RTT_BUCKETS, LiveState, TargetLive
from monitor.sla.voice_window import WINDOWS
from monitor.metrics.text import Family, escape, label_text

__all__ = ["TargetSeries", "DEFAULT_SERIES"]

#: series per target with the default ``exporter.per_target`` (internet, voice)
DEFAULT_SERIES = {"internet": 10, "voice": 15, "support": 10}

_BUCKET_BOUNDS = [repr(b) for b in RTT_BUCKETS] + ["+Inf"]


@dataclass(frozen=True, slots=True)
class _Options:
    """``exporter.per_target``: what is rendered beyond the default series budget."""

    histograms: bool
    windows: set[str]
    burn_rates: bool
    detail: bool
    phases: bool


class _Families:
    """The families of one scrape, in a fixed order."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        f: dict[str, Family] = {}
        self.f = f

        def fam(key: str, name: str, kind: str, help_text: str) -> None:
            f[key] = Family(name, kind, help_text)

        fam("up", "slawatch_target_up", "gauge", "1 if the target is up or degraded, 0 if down; absent while unknown.")
        fam("state", "slawatch_target_state", "gauge", "The target's current state, as the label "
            "slawatch_target_state (up, degraded, down, maintenance, unknown); value 1. One series a target: it "
            "moves to the new state's label when the state changes.")
        fam("since", "slawatch_target_state_since_seconds", "gauge", "Unix time the current state is dated from.")
        fam("last", "slawatch_target_last_cycle_seconds", "gauge", "Unix time of the target's last probe cycle.")
        fam("rtt", "slawatch_icmp_rtt_seconds", "histogram", "ICMP echo round-trip times.")
        fam("rtt_median", "slawatch_icmp_rtt_median_seconds", "gauge", "Median ICMP round-trip time of the last burst.")
        fam("sent", "slawatch_icmp_packets_sent_total", "counter", "ICMP echo requests sent.")
        fam("received", "slawatch_icmp_packets_received_total", "counter", "ICMP echo replies received in time.")
        fam("jitter", "slawatch_jitter_seconds", "gauge", "IPDV jitter (RFC 5481) of the last burst.")
        fam("jitter3550", "slawatch_jitter_rfc3550_seconds", "gauge",
            "RFC 3550 smoothed interarrival jitter across cycles.")
        fam("loss", "slawatch_icmp_loss_ratio", "gauge", "Loss ratio of the last burst.")
        fam("mos", "slawatch_voice_mos", "gauge", "E-model MOS of the last cycle (voice targets).")
        fam("r", "slawatch_voice_r_factor", "gauge", "E-model R-factor of the last cycle (voice targets).")
        fam("wmos", "slawatch_voice_mos_window", "gauge",
            "E-model MOS of the window's pooled loss, delay and jitter (voice targets).")
        fam("wr", "slawatch_voice_r_factor_window", "gauge",
            "E-model R-factor of the window's pooled loss, delay and jitter (voice targets).")
        fam("psuccess", "slawatch_probe_success", "gauge",
            "1 if the service probe's last check proved the service (SIP, HTTP, TCP, DNS, SMTP, WebSocket).")
        fam("presponse", "slawatch_probe_response_seconds", "gauge",
            "The service probe's last response time (SIP final response, HTTP body, DNS answer, ...).")
        fam("tls_expiry", "slawatch_tls_cert_not_after_seconds", "gauge",
            "Unix time the service's TLS certificate expires (its notAfter), from the last check.")
        fam("pphase", "slawatch_probe_phase_seconds", "gauge",
            "Duration of each phase of the service probe's last check (resolve, connect, tls, first_byte, ...).")
        fam("ptls", "slawatch_probe_tls_version_info", "gauge",
            "The TLS version the service probe's last check negotiated, as the label version; value 1.")
        fam("avail", "slawatch_sla_availability_ratio", "gauge",
            "Availability over the window (month = calendar month to date).")
        fam("remaining", "slawatch_sla_error_budget_remaining_ratio", "gauge", "Share of this month's error budget left.")
        fam("remaining_s", "slawatch_sla_error_budget_remaining_seconds", "gauge", "Error budget left this month.")
        fam("downtime", "slawatch_sla_downtime_seconds", "gauge", "Downtime counted this month.")
        fam("excluded", "slawatch_sla_excluded_seconds", "gauge", "Time excluded this month (maintenance, unknown).")
        fam("burn", "slawatch_sla_burn_rate", "gauge", "Error-budget burn rate over the window.")
        fam("projected", "slawatch_sla_projected_availability_ratio", "gauge", "Availability projected to month end.")
        fam("at_risk", "slawatch_sla_at_risk", "gauge", "1 if the projection misses the objective.")
        fam("breached", "slawatch_sla_breached", "gauge", "1 if this month's error budget is spent.")

    def text(self) -> str:
        return "".join(family.text() for family in self.f.values())


class TargetSeries:
    """Renders the per-target families from LiveState, fast: each target's label set is escaped once (and again
    only when its contract or kind changes), each sample is one formatted line."""

    def __init__(self, live: LiveState, per_target: Any = None):
        self.live = live
        self.cfg = per_target
        self._labels: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {}
        #: (target, window) -> (the last cycle it was computed for, minute, the quality) for voice windows
        self._voice: dict[tuple[str, str], tuple[Any, int, Any]] = {}

    def _label(self, t: TargetLive) -> tuple[str, str, str]:
        """(``contract="..",kind=".."``, ``target=".."``, both joined): label names sorted, as prometheus_client
        writes them, so a label that sorts between kind and target (le, reason, slawatch_target_state) goes
        between the two parts and ``window`` after them."""
        key = (t.contract, t.target, t.kind)
        cached = self._labels.get(t.target)
        if cached is None or cached[0] != key:
            head = label_text(("contract", "kind"), (t.contract, t.kind))
            tail = label_text(("target",), (t.target,))
            cached = self._labels[t.target] = (key, (head, tail, f"{head},{tail}"))
        return cached[1]

    def _window_quality(self, t: TargetLive, window: str, now: float) -> Any:
        """The pooled voice quality of a window, recomputed when a cycle arrived or the minute turned."""
        key = (t.target, window)
        minute = int(now // 60)
        cached = self._voice.get(key)
        if cached is not None and cached[0] == t.last_cycle and cached[1] == minute:
            return cached[2]
        q = t.voice_window.quality(now, WINDOWS[window], t.voice_settings)
        self._voice[key] = (t.last_cycle, minute, q)
        return q

    def render(self, now: float | None = None) -> str:
        """The per-target exposition text at ``now``, from each target's lines rendered when its data changed."""
        now = time.time() if now is None else now
        cfg = self.cfg
        opts = _Options(histograms=bool(getattr(cfg, "histograms", False)),
                        windows=set(getattr(cfg, "windows", None) or ["month"]),
                        burn_rates=bool(getattr(cfg, "burn_rates", False)), detail=bool(getattr(cfg, "detail", False)),
                        phases=bool(getattr(cfg, "phases", False)))
        fams = _Families(cfg)
        f = fams.f
        targets = self.live.snapshot()
        sla = self.live.sla_snapshot()
        live_ids = set()
        for t in targets:
            live_ids.add(t.target)
            head, tail, lab = self._label(t)
            self._state_lines(f, t, head, tail, lab, opts)
            self._icmp_lines(f, t, head, tail, lab, opts)
            self._voice_lines(f, t, lab, opts, now)
            for probe, figures in t.service.items():
                self._service_lines(f, probe, figures, head, tail, opts)
            s = sla.get(t.target)
            if s is not None:
                self._sla_lines(f, s, head, tail, lab, opts)
        # the leader's figures for targets it does not probe itself (other nodes' targets, multi-site targets)
        for name, s in sla.items():
            if name not in live_ids and name in self.live.target_kinds:
                key = (s.contract, name, self.live.target_kinds[name])
                head = label_text(("contract", "kind"), (key[0], key[2]))
                tail = label_text(("target",), (name,))
                self._sla_lines(f, s, head, tail, f"{head},{tail}", opts)
        if len(self._labels) > len(live_ids):  # targets removed by a reload: forget their caches
            for gone in set(self._labels) - live_ids:
                del self._labels[gone]
            self._voice = {k: v for k, v in self._voice.items() if k[0] in live_ids}
        return fams.text()

    @staticmethod
    def _service_lines(f: dict[str, Family], probe: str, figures: dict[str, float], head: str, tail: str,
                       opts: "_Options") -> None:
        """A service probe's success, response time and certificate expiry; its phases and TLS version opt-in."""
        plab = f'{head},probe="{probe}",{tail}'
        f["psuccess"].add(plab, figures["up"])
        if "response_seconds" in figures:
            f["presponse"].add(plab, figures["response_seconds"])
        if "tls_cert_not_after_seconds" in figures:
            f["tls_expiry"].add(plab, figures["tls_cert_not_after_seconds"])
        if not (opts.phases or opts.detail):
            return
        for key, value in figures.items():
            name, _, label = key.partition(":")
            if name == "phase_seconds" and opts.phases:
                f["pphase"].add(f'{head},phase="{label}",probe="{probe}",{tail}', value)
            elif name == "tls_version" and opts.detail:
                f["ptls"].add(f'{plab},version="{escape(label)}"', value)

    @staticmethod
    def _state_lines(f: dict[str, Family], t: TargetLive, head: str, tail: str, lab: str, opts: "_Options") -> None:
        up, state, since, last = f["up"], f["state"], f["since"], f["last"]
        detail = opts.detail
        tracker_state = t.tracker.state
        cur = "maintenance" if t.in_maintenance and tracker_state != "unknown" else tracker_state
        if tracker_state == "down":
            up.lines.append(f"slawatch_target_up{{{lab}}} 0.0\n")
        elif cur in ("up", "degraded", "maintenance"):
            up.lines.append(f"slawatch_target_up{{{lab}}} 1.0\n")
        # the current state only (value 1): one series, where a state set would write all five
        state.lines.append(f'slawatch_target_state{{{head},slawatch_target_state="{cur}",{tail}}} 1.0\n')
        if t.tracker.since is not None:
            since.add(lab, t.tracker.since)
        if detail and t.last_cycle is not None:
            last.add(lab, t.last_cycle)

    @staticmethod
    def _icmp_lines(f: dict[str, Family], t: TargetLive, head: str, tail: str, lab: str, opts: "_Options") -> None:
        detail = opts.detail
        if opts.histograms and (t.packets_sent or not t.service):  # none for a target no ICMP probe measures
            rtt, cumulative = f["rtt"], 0
            for bound, count in zip(_BUCKET_BOUNDS, t.rtt_bucket_counts):
                cumulative += count
                rtt.lines.append(f'slawatch_icmp_rtt_seconds_bucket{{{head},le="{bound}",{tail}}} '
                                 f'{float(cumulative)!r}\n')
            rtt.lines.append(f"slawatch_icmp_rtt_seconds_count{{{lab}}} {float(cumulative)!r}\n")
            rtt.add(lab, t.rtt_sum, "_sum")
        if t.packets_sent or not t.service:  # a target checked only by service probes sends no echo
            f["sent"].add(lab, t.packets_sent)
            f["received"].add(lab, t.packets_received)
        if t.last_rtt is not None:
            f["rtt_median"].add(lab, t.last_rtt)
        if t.last_jitter is not None and (detail or t.kind == "voice"):
            f["jitter"].add(lab, t.last_jitter)
        if detail and t.rfc3550_jitter is not None:
            f["jitter3550"].add(lab, t.rfc3550_jitter)
        if t.last_loss is not None and (detail or t.kind == "voice"):
            f["loss"].add(lab, t.last_loss)  # internet targets: from the packet counters, over any window

    def _voice_lines(self, f: dict[str, Family], t: TargetLive, lab: str, opts: "_Options", now: float) -> None:
        detail = opts.detail
        if t.last_mos is not None:
            f["mos"].add(lab, t.last_mos)
        if t.last_r is not None:
            f["r"].add(lab, t.last_r)
        if t.voice_window is not None:
            for window in WINDOWS:
                if window != "5m" and not detail:
                    continue
                q = self._window_quality(t, window, now)
                if q is not None:
                    f["wmos"].add(f'{lab},window="{window}"', q.mos)
                    if detail:
                        f["wr"].add(f'{lab},window="{window}"', q.r)

    @staticmethod
    def _sla_lines(f: dict[str, Family], s: Any, head: str, tail: str, lab: str, opts: "_Options") -> None:
        windows, burn_rates, detail = opts.windows, opts.burn_rates, opts.detail
        base = lab
        m = s.mtd
        if "month" in windows and m.so_far.ratio is not None:
            f["avail"].add(f'{base},window="month"', float(m.so_far.ratio))
        for name, value in s.rolling.items():
            if name in windows and value is not None:
                f["avail"].add(f'{base},window="{name}"', value)
        if m.remaining_ratio is not None:
            f["remaining"].add(base, m.remaining_ratio)
        if m.projected_ratio is not None:
            f["projected"].add(base, m.projected_ratio)
        f["downtime"].add(f'{base},window="month"', m.used_ms / 1000)
        if burn_rates:
            for window, rate in s.burn_rates.items():
                if rate is not None:
                    f["burn"].add(f'{base},window="{window}"', rate)
        if detail:
            f["remaining_s"].add(base, m.remaining_ms / 1000)
            f["excluded"].add(f'{head},reason="maintenance",{tail}', m.so_far.maintenance_ms / 1000)
            f["excluded"].add(f'{head},reason="unknown",{tail}', m.so_far.unknown_ms / 1000)
            f["at_risk"].add(base, 1 if m.at_risk else 0)
            f["breached"].add(base, 1 if m.breached else 0)
