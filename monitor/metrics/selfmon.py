"""slawatch's own health as metrics: cycles, scheduler, store writes and backlog, config reloads, clock steps,
the exporter's own answers and scrape cost (the self-monitoring dashboard)."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.measure.live import LiveState

__all__ = ["SelfCollector"]


class SelfCollector(Collector):
    """Self-monitoring: scheduler lag, store writes and backlog, reloads, scrapes, build info."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        """The daemon's own health: scheduler lag, store writes and backlog, outbox, reloads, probe errors."""
        stats = self.live.stats
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
