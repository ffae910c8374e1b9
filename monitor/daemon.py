"""``slawatch run``: the supervisor of the daemon's stages, until SIGTERM/SIGINT.

The daemon builds the world (config, store, writer, live state, the stages), starts the stages in order under a
thin :class:`~monitor.service.Supervisor`, swaps a reload's new world in (built fully first), and stops the
stages in reverse. The stages, each with the same contract (``start``, ``reload(world)``, ``stop``):

- traps (monitor.measure.trapstage), started with the exporter's listener before the node joins a cluster;
- the exporter (monitor.metrics.stage): its socket bound with the listeners, served once the SLA stage has its
  first figures;
- probing (monitor.measure.probing): the units this node owns, their jobs, cycles and ingestion;
- tickets (monitor.tickets.stage): the ledger, the outbox delivery, escalation and acknowledgement polling;
- customer requests (monitor.tickets.requests.stage): read from the provider's ticket system, leader-only;
- reports (monitor.reports.stage): the monthly report run and retention;
- SLA evaluation (monitor.sla.stage) and the vantage consensus (monitor.cluster.stage), leader-only.

What stays here: the cluster join, the writer, leader-only writes under the leader's
term, the reload (read, validate, build, swap, publish to the cluster) and the shutdown order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probes.base import ProbeContext
from probes.icmp import IcmpEngine, check_icmp_permission

from monitor import __version__
from monitor.config import Config, Target, config_warnings, load_config
from monitor.errors import ConfigError, FencedError, SlawatchError, StoreError
from monitor.sdnotify import notify, watchdog_interval
from monitor.cluster.consensus import probe_units
from monitor.measure.canary import CanaryWatch
from monitor.metrics.stage import ExporterStage
from monitor.sla.evaluator import SlaEvaluator
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.measure.ingest import Ingestor
from monitor.measure.live import LiveState, TargetLive
from monitor.measure.scheduler import ProbeScheduler
from monitor.tickets.sinks import Sink
from monitor.store import Batch, Store, open_store
from monitor.store.base import ClusterStore, Fence
from monitor.cluster.vantage import ConsensusKeeper
from monitor.measure.writer import BatchWriter
from monitor.service import Runtime, Supervisor
from monitor.tickets.stage import TicketStage
from monitor.tickets.requests.stage import RequestStage
from monitor.reports.schedule import ReportSchedule
from monitor.reports.stage import ReportStage
from monitor.cluster.stage import ConsensusStage
from monitor.sla.stage import SlaStage
from monitor.measure.trapstage import TrapStage
from monitor.measure.probing import ProbingStage, objective_thresholds, tracker_for

if TYPE_CHECKING:
    from monitor.cluster.member import ClusterMember
    from monitor.measure.spool import Spool

__all__ = ["Daemon", "run_daemon", "check_runnable"]

log = logging.getLogger("slawatch.daemon")



def check_runnable(config: Config) -> None:
    """Refuse, with a clear message, what this version cannot run yet; check privileges."""
    if any(t.probes.icmp is not None for t in config.targets):
        check_icmp_permission()


class Daemon:
    """The running service: the stages under their supervisor, the writer, the exporter, the cluster and reload."""

    def __init__(self, config: Config, config_path: Path, store: Store):
        self.config = config
        self.config_path = config_path
        self.store = store
        self.live = LiveState()
        self.ready = threading.Event()
        self.stats = self.live.stats
        self.scheduler = ProbeScheduler(self.stats)
        #: what the stages share; the stages, started in order and stopped in reverse (monitor.service)
        self.runtime = Runtime(store, self.live, self.scheduler, self._leads, self._leader_fence)
        self.supervisor = Supervisor()
        self.tickets = TicketStage(config, self.runtime)
        self.ledger = self.tickets.ledger
        self.writer = BatchWriter(
            store,
            batch_size=config.storage.batch_size,
            flush_interval=config.storage.flush_interval,
            stats=self.stats,
            on_new_event=self.ledger.apply,
            backlog_max=config.storage.backlog_max_cycles,
        )
        self.report_stage = ReportStage(config, self.runtime, self.writer.flush)
        #: the config's maintenance, expanded once per month and shared by ingestion and the evaluator
        calendar = MaintenanceCalendar(config)
        #: what this node may probe: targets, and one unit per site of a multi-site target (monitor.cluster.consensus)
        self.probing = ProbingStage(config, self.runtime, self.scheduler, probe_units(config.targets),
                                    Ingestor(config, calendar),
                                    CanaryWatch.for_config(config),
                                    ProbeContext(snmp_profiles=config.snmp_profiles),  # its engines open in run()
                                    self.writer)
        self.probing.after_sync = self._adopt_published
        self.consensus = ConsensusKeeper(config.cluster.failover_delay if config.cluster else 10.0,
                                         config.storage.flush_interval,
                                         config.cluster.heartbeat if config.cluster else 1.0)
        self.live.vantage = self.consensus
        self.writer.on_lead_fenced = self.consensus.forget
        self._drift: float | None = None  # wall minus monotonic clock, for _clock_watch
        #: the cluster config version this node runs or has seen (monitor.cluster.shared_config)
        self._config_version = 0
        self.sla = SlaStage(config, self.runtime, SlaEvaluator(config, store, calendar), self.writer,
                            self.tickets.response_met, self._lead_records)
        self.stopping = asyncio.Event()
        self.run_id: int | None = None
        #: cluster membership (None: a single node, which owns every target and leads)
        self.cluster: ClusterMember | None = None
        # the stages in start order: the listeners first (before the cluster join), then the work
        self.trap_stage = TrapStage(config, self.live, self.writer)
        self.exporter = ExporterStage(config, self.live, self.ready, self._reload_from_thread)
        # the exporter serves once the SLA stage has its first figures (its socket is bound with the listeners)
        for stage in (self.trap_stage, self.probing, self.tickets, RequestStage(config, self.runtime), self.report_stage,
                      self.sla, self.exporter,
                      ConsensusStage(config, self.runtime, self.consensus, self._lead_records)):
            self.supervisor.add(stage)

    @property
    def units(self) -> dict:
        """The probe units of the config running now (the probing stage's)."""
        return self.probing.units

    @property
    def ingestor(self) -> Ingestor:
        """The ingestion of the config running now (the probing stage's)."""
        return self.probing.ingestor

    @property
    def canary(self) -> CanaryWatch:
        """The reference-target watch of the config running now (the probing stage's)."""
        return self.probing.canary

    @property
    def probe_context(self) -> ProbeContext:
        """The probes' engines and settings (the probing stage's)."""
        return self.probing.probe_context

    @property
    def evaluator(self) -> SlaEvaluator:
        """The SLA evaluator of the config running now (the SLA stage's)."""
        return self.sla.evaluator

    @property
    def reports(self) -> ReportSchedule:
        """The monthly report run of the config running now (the reports stage's)."""
        return self.report_stage.schedule

    def _join_cluster(self) -> None:
        from monitor.cluster.member import ClusterMember, config_hash

        cfg = self.config.cluster
        assert cfg is not None
        member = ClusterMember(cfg, self.store, lambda: list(self.units.values()), config_hash(self.config),
                               __version__)
        self.cluster = member
        member.start()
        published = member.published
        if published is not None:
            self._config_version = published[0]  # this node runs its file; a newer version is adopted
            if published[1] != member.config_hash:
                log.warning("this node's config differs from the cluster's latest published one (version %d from "
                            "node %s); it runs its own file: reload one node to publish one config for all",
                            published[0], published[3])
        self.writer.fence = lambda: self.cluster.fence if self.cluster is not None else None
        self.live.cluster = self.probing.cluster = self.cluster

    def _leads(self) -> bool:
        """Whether this node runs the cluster-wide work (always, without a cluster)."""
        return self.cluster is None or self.cluster.leader

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT: open the probe engines, join the cluster if configured, start the exporter,
        the stages and the scheduler; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        self.loop = loop
        # the listeners first: a taken or forbidden address is one line naming its key (exit 2), before this
        # node joins a cluster or begins a run in the store
        self.exporter.bind()
        await self.supervisor.start(until=self.trap_stage)
        self.probe_context.icmp_engine = IcmpEngine()
        from probes.snmp import SnmpEngineHolder

        # always: a reload may add the first SNMP target; its sockets open on first use
        self.probe_context.snmp_engine = SnmpEngineHolder()
        self.live.snmp_wire = self.probe_context.snmp_engine.wire
        if self.config.cluster is not None:
            await asyncio.to_thread(self._join_cluster)
        self.run_id = await asyncio.to_thread(self.store.begin_run, time.time(), __version__)
        await asyncio.to_thread(self.ingestor.preload, self.store, time.time())
        await asyncio.to_thread(self.probing.install)
        # the spool after the cluster join: a second instance of this node is refused by name there, not here
        self.writer.spool = await asyncio.to_thread(_spool, self.config)
        self.writer.start()
        await self.supervisor.start()
        interval = watchdog_interval()
        if interval:
            # pinged from the scheduler's own loop: if the scheduler hangs, systemd restarts us
            async def watchdog() -> None:
                notify("WATCHDOG=1")

            self.scheduler.every("watchdog", interval, watchdog)
        self.scheduler.every("clock-watch", 1.0, self._clock_watch)
        self.scheduler.start()
        self.ready.set()
        notify(f"READY=1\nSTATUS={self.config.summary()}")
        storage = self.config.storage
        log.info("slawatch %s started: %s; store %s %s", __version__, self.config.summary(), storage.backend,
                 self.store.location)
        await self.stopping.wait()
        return 1 if await self._shutdown() else 0

    async def _clock_watch(self) -> None:
        """Say when the wall clock steps (the difference between the wall and monotonic clocks jumps by more
        than a second; NTP's slewing never does)."""
        drift = time.time() - time.monotonic()
        previous, self._drift = self._drift, drift
        if previous is not None and abs(drift - previous) > 1.0:
            step = drift - previous
            self.stats.clock_steps_total += 1
            log.warning("the wall clock stepped %s by %.1f s: probing keeps its monotonic schedule, and cycles are "
                        "stamped with the new wall time", "forward" if step > 0 else "backward", abs(step))

    def _leader_fence(self) -> Fence | None:
        """The fence leader-only writes present: None without a cluster; FencedError when this node no longer
        leads (the write must not happen at all, not happen unfenced)."""
        if self.cluster is None:
            return None
        fence = self.cluster.leader_fence
        if fence is None:
            raise FencedError("this node no longer leads the cluster")
        return fence

    def _lead_records(self, records: Batch, what: str) -> None:
        """Hand records only the leader may write to the writer, under the leader's term."""
        try:
            fence = self._leader_fence()
        except FencedError:
            log.info("%s not written: this node no longer leads", what)
            return
        self.writer.add_lead(records, fence)

    def _request_stop(self, sig: signal.Signals) -> None:
        if not self.stopping.is_set():
            log.info("received %s, stopping", sig.name)
            notify("STOPPING=1")
            self.stopping.set()

    # -- hot reload ------------------------------------------------------------------------
    def _reload_from_thread(self) -> tuple[bool, list[str]]:
        """For the exporter's POST /-/reload: run the reload on the event loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(self.reload(), self.loop).result(timeout=60)

    async def reload(self, published: tuple[int, str, str, str] | None = None) -> tuple[bool, list[str]]:
        """Parse, validate and *build* the new world fully, then swap it in with plain assignments; any failure
        before the swap keeps the old config running intact (counted, logged, answered with its problems). In a
        cluster a reload of this node's file is published for the others; ``published`` (version, hash, body,
        node) is one another node published (monitor.cluster.shared_config)."""
        notify("RELOADING=1")
        try:
            text, new = await asyncio.to_thread(self._read_config, published)
            from monitor.logs import add_secrets, config_secrets

            add_secrets(config_secrets(new))  # the new config's secrets are masked before anything is logged
            check_runnable(new)
            world = await self._build_world(new)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config reload rejected: %s: %s", exc.source, problem)
            return self._reload_failed(exc.problems)
        except SlawatchError as exc:
            log.error("config reload rejected: %s", exc)
            return self._reload_failed([str(exc)])
        except Exception as exc:  # a bug must not take the running config down, nor answer /-/reload with 500
            log.error("config reload failed (%s); the previous config keeps running", type(exc).__name__,
                      exc_info=True)
            return self._reload_failed([f"internal error while loading the config: {type(exc).__name__}"])
        await self._apply_world(world)
        added, removed = len(set(world.fresh) - set(world.old)), len(set(world.old) - set(world.fresh))
        for warning in config_warnings(world.config):
            log.warning("config: %s", warning)
        origin = f" (cluster config version {published[0]} from {published[3]})" if published else ""
        log.info("config reloaded%s: %s (%d targets added, %d removed)", origin, world.config.summary(), added,
                 removed)
        if self.cluster is not None:
            await self._publish_config(text, published)
        notify(f"READY=1\nSTATUS={world.config.summary()}")
        return True, []

    def _reload_failed(self, problems: list[str]) -> tuple[bool, list[str]]:
        self.stats.config_reload_ok = False
        self.stats.config_reload_failures_total += 1
        notify("READY=1\nSTATUS=config reload failed; running the previous config")
        return False, problems

    async def _build_world(self, new: Config) -> _World:
        """Everything the new config needs, built beside the running one (nothing running is touched)."""
        for key, what in (("storage", "storage"), ("exporter", "exporter"), ("cluster", "cluster")):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: %s settings changed; they take effect at the next restart", what)
        new = new.model_copy(update={"storage": self.config.storage, "exporter": self.config.exporter,
                                     "cluster": self.config.cluster})
        old = {uid: u.target for uid, u in self.units.items()}
        units = probe_units(new.targets)
        fresh = {uid: u.target for uid, u in units.items()}
        calendar = MaintenanceCalendar(new)
        evaluator = SlaEvaluator(new, self.store, calendar)
        reports = ReportSchedule(new, self.store, time.time)
        canary = CanaryWatch.for_config(new)  # what the running one saw is carried over at the swap
        context = dataclasses.replace(self.probe_context, snmp_profiles=new.snmp_profiles)  # the same engines
        sinks = self.tickets.sinks_for(new)
        objectives = {c.id: objective_thresholds(c) for c in new.contracts}
        saved = {k: v.tracker for k, v in (await asyncio.to_thread(self.store.load_states)).items()}
        added = {tid: TargetLive(t.id, t.contract, t.kind, tracker_for(t, saved.get(tid)),
                                 objectives=objectives[t.contract])
                 for tid, t in fresh.items() if tid not in old}
        config_hash = None
        if self.cluster is not None:
            from monitor.cluster.member import config_hash as hash_of

            config_hash = hash_of(new)
        return _World(new, units, old, fresh, calendar, evaluator, reports, canary, context, sinks, objectives, added,
                      config_hash)

    async def _apply_world(self, world: _World) -> None:
        """The swap: assignments and (re)scheduling only."""
        self.config = world.config
        if world.config_hash is not None and self.cluster is not None:
            self.cluster.config_hash = world.config_hash  # told to the others at the next heartbeat
        await self.supervisor.reload(world)
        self.stats.config_reload_ok = True
        self.stats.config_reload_time = time.time()

    def _read_config(self, published: tuple[int, str, str, str] | None) -> tuple[str, Config]:
        from monitor.config.loader import load_config_text, read_config_text
        from monitor.cluster.shared_config import merged_text

        own = read_config_text(self.config_path)
        if published is None:
            return own, load_config_text(own, str(self.config_path), self.config_path.parent)
        version, _, body, node = published
        source = f"{self.config_path} with cluster config version {version} from node {node}"
        return own, load_config_text(merged_text(body, own), source, self.config_path.parent)

    async def _publish_config(self, text: str, published: tuple[int, str, str, str] | None) -> None:
        """After a reload: tell the other nodes (a reload of this node's file), or note the version adopted."""
        from monitor.cluster.member import config_hash
        from monitor.cluster.shared_config import publishable, shared_text

        assert self.cluster is not None
        if published is not None:
            self._config_version = published[0]
            return
        secrets = publishable(text)
        if secrets:
            log.warning("config not published to the other nodes: secrets written as values at %s (use ${ENV} or "
                        "<key>_file); reload each node yourself", ", ".join(secrets))
            return
        fence = self.cluster.fence
        if fence is None:
            log.warning("config not published to the other nodes: this node holds no lease now")
            return
        store = self.store
        assert isinstance(store, ClusterStore)  # a cluster runs on a store that holds one (the config's check)
        try:
            version = await asyncio.to_thread(store.cluster_publish_config, fence, config_hash(self.config),
                                              shared_text(text))
        except StoreError as exc:
            log.warning("config not published to the other nodes: %s", exc)
            return
        self._config_version = version
        log.info("config published to the cluster as version %d", version)

    async def _adopt_published(self) -> None:
        """A newer config another node published: reload with it (once per version)."""
        assert self.cluster is not None
        published = self.cluster.published
        if published is None or published[0] <= self._config_version:
            return
        self._config_version = published[0]
        if published[1] == self.cluster.config_hash:
            return  # this node runs it already
        ok, problems = await self.reload(published=published)
        if not ok:
            log.error("cluster config version %d from node %s not adopted; this node keeps its config",
                      published[0], published[3])

    async def _shutdown(self) -> int:
        # stop starting cycles, let the running ones finish (APScheduler's shutdown would cancel them), so their
        # records reach the writer; then the writer writes what it holds, and the stages stop in reverse order
        await self.probing.drain()
        lost = await self.writer.stop()
        await self.supervisor.stop()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)
        if self.run_id is not None and not lost:
            try:
                await asyncio.to_thread(self.store.end_run, self.run_id, time.time())
            except StoreError as exc:
                log.error("could not record the end of this run: %s", exc)
                lost = lost or 1
        self.store.close()
        if lost:
            log.error("stopped, but not cleanly: %d of the %d cycles this run measured were not written (see above)",
                      self.writer.lost_cycles, self.stats.cycles_total)
        else:
            log.info("stopped cleanly")
        return lost


def _spool(config: Config) -> "Spool | None":
    """The writer's local spool, when the storage has one (a SpoolError, exit 2, when its directory is unusable)."""
    path = config.storage.spool_path(config.cluster.node if config.cluster else None)
    if path is None:
        return None
    from monitor.measure.spool import Spool

    return Spool(path, config.storage.spool_max_bytes)


@dataclass
class _World:
    """A reload's new world, built before anything running is touched (blackbox_exporter's SafeConfig)."""

    config: Config
    units: dict
    old: dict[str, Target]
    fresh: dict[str, Target]
    calendar: MaintenanceCalendar
    evaluator: SlaEvaluator
    reports: Any  # monitor.reports.schedule.ReportSchedule
    canary: CanaryWatch
    probe_context: ProbeContext
    sinks: dict[str, Sink] | None
    objectives: dict[str, Any]
    added: dict[str, TargetLive]
    config_hash: str | None


def run_daemon(config_path: str | Path) -> int:
    """Load the config, check it can run (ICMP permission, store), and run the daemon until a signal stops it."""
    config_path = Path(config_path)
    config = load_config(config_path)
    check_runnable(config)
    for warning in config_warnings(config):
        log.warning("config: %s", warning)
    store = open_store(config.storage)
    return asyncio.run(Daemon(config, config_path, store).run())
