"""Prometheus exporter: the per-target families rendered directly within their series budget
(monitor.metrics.targets), and a custom Collector over LiveState in a dedicated registry for the rest
(contracts' objectives, SNMP, tickets, self-monitoring, cluster). A scrape reads only memory, never the store,
and is gzip-compressed when the client asks (Prometheus does).

Served by :mod:`monitor.http_server` (threads, TLS handshakes off the accept path, read timeouts, a
bounded pool), bound to loopback unless the config says otherwise. Paths: ``/metrics``, ``/-/healthy``,
``/-/ready``, ``/-/reload``.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import logging
import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .counters import octet_counter
from .http_server import HttpServer
from .live import LiveState
from .metrics import TargetSeries
from .writer import RateLimited

__all__ = ["SlawatchCollector", "make_registry", "ExporterServer"]

log = logging.getLogger("slawatch.exporter")

_LABELS = ["contract", "target", "kind"]


class SlawatchCollector(Collector):
    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        targets = self.live.snapshot()
        stats = self.live.stats
        yield from self._contract_metrics(targets)
        yield from self._snmp_metrics(targets)
        yield CounterMetricFamily("slawatch_probe_cycles", "Probe cycles run.", value=stats.cycles_total)
        yield CounterMetricFamily(
            "slawatch_probe_cycle_duration_seconds", "Total time spent in probe cycles.", value=stats.cycle_duration_sum
        )
        yield CounterMetricFamily(
            "slawatch_probe_cycle_overruns", "Cycles skipped because the previous one was still running.", value=stats.overruns_total
        )
        yield GaugeMetricFamily("slawatch_scheduler_lag_seconds", "Delay of the last job start behind its schedule.", value=stats.scheduler_lag_seconds)
        yield CounterMetricFamily("slawatch_store_write_seconds", "Total time spent writing batches to the store.", value=stats.store_write_seconds_sum)
        yield CounterMetricFamily("slawatch_store_writes", "Batches written to the store.", value=stats.store_writes_total)
        yield CounterMetricFamily("slawatch_store_write_failures", "Batches that failed to write (kept for retry).", value=stats.store_write_failures_total)
        yield GaugeMetricFamily("slawatch_store_backlog_cycles", "Probe cycles held in memory until the store can be written.", value=stats.store_backlog_cycles)
        yield CounterMetricFamily("slawatch_store_backlog_dropped_cycles", "Raw cycles dropped from a full backlog; their time is recorded as unknown.", value=stats.store_backlog_dropped_total)
        yield GaugeMetricFamily(
            "slawatch_config_last_reload_successful", "1 if the last config load succeeded.", value=1 if stats.config_reload_ok else 0
        )
        yield GaugeMetricFamily(
            "slawatch_config_last_reload_success_timestamp_seconds", "Unix time of the last successful config load.", value=stats.config_reload_time
        )
        yield CounterMetricFamily("slawatch_config_reload_failures", "Config reloads rejected (the previous config "
                                  "kept running).", value=stats.config_reload_failures_total)
        yield InfoMetricFamily("slawatch_build", "slawatch build information.", value={"version": __version__})
        yield CounterMetricFamily("slawatch_clock_steps", "Steps of the wall clock seen (more than 1 s at once).",
                                  value=stats.clock_steps_total)
        if stats.scrape:
            yield GaugeMetricFamily("slawatch_exporter_scrape_duration_seconds", "Seconds the previous scrape took to "
                                    "render and compress.", value=stats.scrape.get("seconds", 0.0))
            yield GaugeMetricFamily("slawatch_exporter_scrape_bytes", "Bytes the previous scrape sent.",
                                    value=stats.scrape.get("bytes", 0))
        http = CounterMetricFamily("slawatch_exporter_http_responses", "The exporter's HTTP answers by status code "
                                   "(401/403: unauthorized, 400: malformed requests).", labels=["code"])
        for code, n in sorted(dict(stats.http_responses).items()):
            http.add_metric([code], n)
        yield http
        yield from self._cluster_metrics()
        yield from self._vantage_metrics(targets)
        tickets = GaugeMetricFamily("slawatch_tickets", "Tickets in the ledger by state and severity.", labels=["state", "severity"])
        for (state, severity), n in sorted(self.live.ticket_counts.items()):
            tickets.add_metric([state, severity], n)
        yield tickets
        failures = CounterMetricFamily("slawatch_ticket_delivery_failures", "Failed deliveries to a ticket sink.", labels=["sink"])
        pending = GaugeMetricFamily("slawatch_ticket_outbox_pending", "Deliveries waiting for a ticket sink.", labels=["sink"])
        for sink in sorted(set(self.live.delivery_failures) | set(self.live.outbox_pending)):
            failures.add_metric([sink], self.live.delivery_failures.get(sink, 0))
            pending.add_metric([sink], self.live.outbox_pending.get(sink, 0))
        yield failures
        yield pending
        met = GaugeMetricFamily("slawatch_ticket_response_target_met_ratio",
                                "Share of this month's tickets that met the contract's response target.",
                                labels=["severity", "response"])
        for (severity, kind), (ok, n) in sorted(self.live.response_met.items()):
            met.add_metric([severity, kind], ok / n)
        yield met


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
                    counter = octet_counter(cols, direction)
                    if counter is not None:
                        octets.add_metric(lab + [direction], cols[counter[0]])
                    ratio = cols.get(f"utilization_{direction}")
                    if ratio is not None:
                        util.add_metric(lab + [direction], ratio)
        yield from (up, uptime, reboots, oper, admin, octets, util)
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

    def _cluster_metrics(self):
        member = self.live.cluster
        if member is None:
            return
        cfg = member.cfg
        yield InfoMetricFamily("slawatch_cluster_node", "This node's name and site in the cluster.",
                               value={"node": cfg.node, "site": cfg.site})
        yield GaugeMetricFamily("slawatch_cluster_leader", "1 on the node that runs the cluster-wide work.",
                                value=1 if member.leader else 0)
        yield GaugeMetricFamily("slawatch_cluster_targets_owned", "Targets this node probes now.",
                                value=len(member.owned) if member.may_probe() else 0)
        yield GaugeMetricFamily("slawatch_cluster_epoch", "This node's fencing epoch.", value=member.epoch or 0)
        yield CounterMetricFamily("slawatch_cluster_rejoins", "Times the lease was lost and the node rejoined.",
                                  value=member.rejoins_total)
        nodes = GaugeMetricFamily("slawatch_cluster_nodes", "Cluster members this node sees, by liveness.",
                                  labels=["state"])
        view = member.view
        live = sum(1 for n in view if n.alive(cfg.failover_delay))
        nodes.add_metric(["live"], live)
        nodes.add_metric(["dead"], len(view) - live)
        yield nodes

    def _vantage_metrics(self, targets):
        """Multi-site targets (monitor.consensus): each owning node exports its sites' views of the units it
        probes; the leader the consensus state and each site's monitoring outage."""
        units = self.live.site_units
        if not units:
            return
        labels = ["contract", "target", "site"]
        site_up = GaugeMetricFamily("slawatch_vantage_site_up", "1 if the site sees the target up, 0 down; absent "
                                    "while it has no evidence (this node's units).", labels=labels)
        site_rtt = GaugeMetricFamily("slawatch_vantage_site_rtt_seconds", "Median RTT of the site's last answered "
                                     "cycle of the target (this node's units).", labels=labels)
        for t in targets:
            unit = units.get(t.target)
            if unit is None:
                continue
            lab = [t.contract, unit[0], unit[1]]
            if t.tracker.state in ("up", "degraded"):
                site_up.add_metric(lab, 1)
            elif t.tracker.state == "down":
                site_up.add_metric(lab, 0)
            rtt_ms = (t.last_good or {}).get("rtt_ms")
            if rtt_ms is not None:
                site_rtt.add_metric(lab, rtt_ms / 1000)
        yield from (site_up, site_rtt)
        keeper, member = self.live.vantage, self.live.cluster
        if keeper is None or member is None or not member.leader:
            return
        state = StateSetMetricFamily("slawatch_vantage_state", "A multi-site target's state by the sites' consensus "
                                     "(leader only).", labels=["contract", "target"])
        down = GaugeMetricFamily("slawatch_vantage_sites_down", "Sites that see the target down (leader only).",
                                 labels=["contract", "target"])
        for target, cur in sorted(keeper.states.items()):
            contract = keeper.contracts.get(target, "")
            state.add_metric([contract, target], {s: s == cur for s in ("up", "down", "unknown")})
            down.add_metric([contract, target], sum(1 for v in keeper.views.get(target, ()) if v.state == "down"))
        dark = GaugeMetricFamily("slawatch_cluster_site_outage", "1 while the site has its own monitoring outage "
                                 "(every target dark from there while other sites see them; leader only).",
                                 labels=["site"])
        for site in sorted(keeper.sites):
            dark.add_metric([site], 1 if site in keeper.dark else 0)
        yield from (state, down, dark)

    def _contract_metrics(self, targets):
        """The contracts' objectives: per contract, not per target (the series budget)."""
        thresholds = GaugeMetricFamily(
            "slawatch_objective_threshold", "The contract's objective, in base units (latency/jitter/one_way_delay s, "
            "loss and availability ratio, mos).", labels=["contract", "objective"])
        ratio = GaugeMetricFamily("slawatch_sla_objective_ratio", "The contract's availability objective.",
                                  labels=["contract", "objective"])
        sla = self.live.sla_snapshot()
        seen: set[str] = set()
        for t in targets:
            if t.contract in seen:
                continue
            seen.add(t.contract)
            for name, value in sorted(t.objectives.items()):
                thresholds.add_metric([t.contract, name], value)
            s = sla.get(t.target)
            if s is not None:
                ratio.add_metric([t.contract, "availability"], s.objective_ratio)
        yield thresholds
        yield ratio
        info = GaugeMetricFamily("slawatch_contract_info", "A contract's customer and provider (value 1), to join "
                                 "on contract.", labels=["contract", "customer", "provider"])
        for contract, (customer, provider) in sorted(self.live.contracts.items()):
            info.add_metric([contract, customer, provider], 1)
        yield info
        if self.live.sla_time is not None:
            yield GaugeMetricFamily("slawatch_sla_evaluation_timestamp_seconds",
                                    "The instant the slawatch_sla_* figures were computed for.", value=self.live.sla_time)


def make_registry(live: LiveState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlawatchCollector(live))
    return registry


class ExporterServer:
    """Serves the registry over HTTP on ``host:port`` in a background thread."""

    def __init__(self, registry: CollectorRegistry, listen: str, *, ready: threading.Event | None = None,
                 basic_auth: tuple[str, str] | None = None, reload=None, tls: tuple[str, str] | None = None,
                 responses: dict | None = None, targets: TargetSeries | None = None, scrapes: dict | None = None):
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.ready = ready or threading.Event()
        render_lock = threading.Lock()  # one render at a time: the target renderer's caches are not shared

        def metrics_app(environ, start_response):
            t0 = time.perf_counter()
            with render_lock:
                text = targets.render() if targets is not None else ""
                body = text.encode() + generate_latest(registry)
            headers = [("Content-Type", CONTENT_TYPE_LATEST)]
            if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            headers.append(("Content-Length", str(len(body))))
            if scrapes is not None:
                scrapes["seconds"], scrapes["bytes"] = time.perf_counter() - t0, len(body)
            start_response("200 OK", headers)
            return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []
        expected = None
        if basic_auth:
            expected = "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()

        counts = responses if responses is not None else {}
        said = RateLimited(60.0)

        def app(environ, start_response):
            """Every answer counted by code; a bad request is a 4xx, and nothing a client sends reaches stderr
            as a traceback (an error is logged, at most once a minute, through the redacting log)."""
            status_seen: list[str] = []

            def counted(status, headers, exc_info=None):
                status_seen.append(status.split(" ", 1)[0])
                return start_response(status, headers, exc_info)

            try:
                body = route(environ, counted)
            except Exception as exc:
                if said.due("request"):
                    log.error("exporter request failed (%s; said at most once a minute)", type(exc).__name__)
                if not status_seen:
                    counted("500 Internal Server Error", [("Content-Type", "text/plain")])
                body = [b"internal error\n"]
            code = status_seen[-1] if status_seen else "500"
            counts[code] = counts.get(code, 0) + 1
            return body

        def header(environ, name: str) -> bytes | None:
            """A header's bytes as sent (WSGI gives latin-1 text); None when absent."""
            value = environ.get(name)
            return None if value is None else value.encode("latin-1", "replace")

        def route(environ, start_response):
            auth = header(environ, "HTTP_AUTHORIZATION")
            if auth is not None and not auth.isascii():
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"malformed Authorization header\n"]
            if expected and not hmac.compare_digest(auth or b"", expected.encode()):
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="slawatch"')])
                return [b"unauthorized\n"]
            path = environ.get("PATH_INFO", "")
            if path == "/-/reload":
                return reload_endpoint(environ, start_response)
            if path == "/-/healthy":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"slawatch is healthy\n"]
            if path == "/-/ready":
                if self.ready.is_set():
                    start_response("200 OK", [("Content-Type", "text/plain")])
                    return [b"slawatch is ready\n"]
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"slawatch is starting\n"]
            if path in ("/metrics", "/"):
                return metrics_app(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        def reload_endpoint(environ, start_response):
            if reload is None:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"reload endpoint not enabled (set exporter.reload_token)\n"]
            if environ.get("REQUEST_METHOD") != "POST":
                start_response("405 Method Not Allowed", [("Allow", "POST")])
                return [b"use POST\n"]
            token, do_reload = reload
            # the token in its own header (beside basic auth, which takes the Authorization header), or as a
            # bearer token when the exporter has no basic auth
            own = header(environ, "HTTP_X_SLAWATCH_RELOAD_TOKEN")
            given = own if own is not None else (b"" if expected else header(environ, "HTTP_AUTHORIZATION") or b"")
            wanted = token.encode() if own is not None else f"Bearer {token}".encode()
            if not given.isascii() or not hmac.compare_digest(given, wanted):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"wrong or missing reload token\n"]
            ok, problems = do_reload()
            if ok:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"config reloaded\n"]
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [("config reload rejected; the previous config keeps running:\n" + "\n".join(problems) + "\n").encode()]

        def count(code: str) -> None:  # the server's own answers (refused requests, a full pool)
            counts[code] = counts.get(code, 0) + 1

        self.server = HttpServer(app, self.host, self.port, tls=tls, count=count)
        self.port = self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
