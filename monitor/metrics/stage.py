"""The exporter stage of the daemon (monitor.service): ``/metrics`` and the ``/-/`` endpoints over HTTP(S).

Its socket is bound by :meth:`ExporterStage.bind` with the other listeners, before the node joins a cluster or
begins a run in the store (a taken or forbidden address is one line naming its key, exit 2); the supervisor's
:meth:`~ExporterStage.start` then serves it, and :meth:`~ExporterStage.stop` closes it. The exporter's own
settings (address, TLS, auth) take effect at the next restart, as the reload says; the collectors read the live
state, which every other stage keeps current.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from monitor.errors import ListenError
from monitor.metrics.exporter import ExporterServer, make_registry
from monitor.metrics.targets import TargetSeries

__all__ = ["ExporterStage"]

log = logging.getLogger("slawatch.daemon")


class ExporterStage:
    """The Prometheus exporter of ``config.exporter``; ``reload`` is the daemon's reload (for POST /-/reload)."""

    name = "exporter"

    def __init__(self, config: Any, live: Any, ready: threading.Event,
                 reload: Callable[[], tuple[bool, list[str]]]):
        self.settings = config.exporter
        self.live, self.ready, self._reload = live, ready, reload
        self.server: ExporterServer | None = None

    def bind(self) -> None:
        """Bind the socket (served once started); a taken or forbidden address is a ListenError."""
        cfg = self.settings
        if not cfg.enabled:
            return
        auth, token, stats = cfg.basic_auth, cfg.reload_token, self.live.stats
        try:
            self.server = ExporterServer(
                make_registry(self.live),
                cfg.listen,
                ready=self.ready,
                basic_auth=(auth.username, auth.password.get_secret_value()) if auth else None,
                reload=(token.get_secret_value(), self._reload) if token else None,
                tls=(cfg.tls.cert_file, cfg.tls.key_file) if cfg.tls else None,
                responses=stats.http_responses,
                targets=TargetSeries(self.live, cfg.per_target),
                scrapes=stats.scrape,
            )
        except OSError as exc:
            raise ListenError("exporter.listen", cfg.listen, exc) from None

    async def start(self) -> None:
        """Serve the bound socket."""
        if self.server is None:
            return
        self.server.start()
        log.info("exporter listening on http://%s:%d/metrics", self.server.host, self.server.port)

    async def reload(self, world: Any) -> None:
        """Nothing to swap: the exporter's settings take effect at the next restart (the daemon keeps them), and
        its collectors read the live state the other stages update."""

    async def stop(self) -> None:
        """Close the listener."""
        if self.server is not None:
            self.server.stop()
