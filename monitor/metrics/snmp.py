"""SNMP metrics: each polled agent and its selected interfaces, IP SLA entries, and the wire client's drops
and SNMPv3 reports."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.measure.live import LiveState

__all__ = ["SnmpCollector"]

_LABELS = ["contract", "target", "kind"]


class SnmpCollector(Collector):
    """SNMP series: agents, interfaces, IP SLA entries and the wire's dropped datagrams and reports."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        """The SNMP families: agent up, uptime, reboots, interface status, octets and utilization, IP SLA figures."""
        targets = self.live.snapshot()
        yield from self._snmp_metrics(targets)
        yield from self._ipsla_metrics(targets)
        yield from self._wire_metrics()

    def _snmp_metrics(self, targets):
        up = GaugeMetricFamily("slawatch_snmp_up", "1 if the SNMP agent answered the last poll, 0 if not.", labels=_LABELS)
        uptime = GaugeMetricFamily("slawatch_snmp_uptime_seconds", "The agent's sysUpTime.", labels=_LABELS)
        reboots = CounterMetricFamily("slawatch_snmp_reboots", "Agent reboots seen (sysUpTime went backwards).", labels=_LABELS)
        iflabels = _LABELS + ["ifindex", "ifname"]
        oper = GaugeMetricFamily("slawatch_interface_oper_status", "ifOperStatus (1 up, 2 down, ...).", labels=iflabels)
        admin = GaugeMetricFamily("slawatch_interface_admin_status", "ifAdminStatus (1 up, 2 down, 3 testing).", labels=iflabels)
        octets = CounterMetricFamily("slawatch_interface_octets", "ifHCIn/OutOctets as the agent reports them (ifIn/OutOctets, which wrap at 2**32, where it has no 64-bit counters).",
                                     labels=iflabels + ["direction"])
        util = GaugeMetricFamily("slawatch_interface_utilization_ratio", "Share of the interface speed (ifHighSpeed, else ifSpeed) used since the previous poll.",
                                 labels=iflabels + ["direction"])
        for t in targets:
            if t.snmp_up is None:
                continue
            base = [t.contract, t.target, t.kind]
            up.add_metric(base, 1 if t.snmp_up else 0)
            reboots.add_metric(base, t.snmp_reboots)
            if t.snmp_uptime is not None:
                uptime.add_metric(base, t.snmp_uptime / 100)
            for index, cols in sorted(t.snmp_interfaces.items()):
                lab = base + [str(index), str(cols.get("ifName") or cols.get("ifDescr") or index)]
                if cols.get("ifOperStatus") is not None:
                    oper.add_metric(lab, cols["ifOperStatus"])
                if cols.get("ifAdminStatus") is not None:
                    admin.add_metric(lab, cols["ifAdminStatus"])
                for direction in ("in", "out"):
                    value = cols.get(f"octets_{direction}")  # the cycle chose the counter (monitor.measure.cycle)
                    if value is not None:
                        octets.add_metric(lab + [direction], value)
                    ratio = cols.get(f"utilization_{direction}")
                    if ratio is not None:
                        util.add_metric(lab + [direction], ratio)
        yield from (up, uptime, reboots, oper, admin, octets, util)

    @staticmethod
    def _ipsla_metrics(targets):
        sla_labels = _LABELS + ["entry"]
        ip_mos = GaugeMetricFamily("slawatch_ipsla_mos", "IP SLA jitter operation MOS (CISCO-RTTMON-MIB, /100).", labels=sla_labels)
        ip_icpif = GaugeMetricFamily("slawatch_ipsla_icpif", "IP SLA jitter operation ICPIF.", labels=sla_labels)
        ip_rtt = GaugeMetricFamily("slawatch_ipsla_rtt_seconds", "IP SLA average RTT of the latest operation.", labels=sla_labels)
        ip_jit = GaugeMetricFamily("slawatch_ipsla_jitter_seconds", "IP SLA average jitter by direction.", labels=sla_labels + ["direction"])
        ip_loss = GaugeMetricFamily("slawatch_ipsla_packet_loss", "IP SLA packets lost in the latest operation by direction.",
                                    labels=sla_labels + ["direction"])
        for t in targets:
            for entry, f in sorted(t.ipsla.items()):
                lab = [t.contract, t.target, t.kind, entry]
                for family, value in ((ip_mos, f["mos"]), (ip_icpif, f["icpif"]), (ip_rtt, f["rtt_avg_s"])):
                    if value is not None:
                        family.add_metric(lab, value)
                for direction in ("sd", "ds"):
                    if f[f"jitter_{direction}_s"] is not None:
                        ip_jit.add_metric(lab + [direction], f[f"jitter_{direction}_s"])
                    if f[f"loss_{direction}"] is not None:
                        ip_loss.add_metric(lab + [direction], f[f"loss_{direction}"])
        yield from (ip_mos, ip_icpif, ip_rtt, ip_jit, ip_loss)

    def _wire_metrics(self):
        wire = self.live.snmp_wire
        if wire is not None:
            dropped = CounterMetricFamily(
                "slawatch_snmp_datagrams_dropped", "SNMP answers dropped, by reason: malformed, unmatched (late "
                "after a timeout, duplicates, strangers), and for v3 wrong_digest, decryption_error, "
                "not_in_time_window (replays, stale answers), unauthenticated.", labels=["reason"])
            for reason in ("malformed", "unmatched", "wrong_digest", "decryption_error", "not_in_time_window",
                           "unauthenticated"):
                dropped.add_metric([reason], wire.dropped_by.get(reason, 0))
            yield dropped
            reports = CounterMetricFamily("slawatch_snmp_v3_reports", "SNMPv3 reports agents sent back, by kind "
                                          "(unknown_user, wrong_digest, decryption_error, not_in_time_window, "
                                          "unknown_engine_id, unsupported_security_level).", labels=["report"])
            for kind, count in sorted(wire.reports.items()):
                reports.add_metric([kind], count)
            yield reports
        traps = self.live.traps
        if traps is not None:
            yield CounterMetricFamily("slawatch_snmp_traps_received", "Traps received, authenticated and from a "
                                      "target's address.", value=traps.received)
            dropped = CounterMetricFamily("slawatch_snmp_traps_dropped", "Datagrams and traps dropped on the trap "
                                          "port, by reason.", labels=["reason"])
            for reason, n in sorted(traps.dropped().items()):
                dropped.add_metric([reason], n)
            yield dropped
            yield CounterMetricFamily("slawatch_snmp_traps_unknown_source", "Traps from addresses of no target, dropped.",
                                      value=traps.unknown_source)
            yield CounterMetricFamily("slawatch_snmp_traps_bad_credentials",
                                      "Traps dropped for a wrong community or wrong v3 credentials.", value=traps.bad_credentials())

