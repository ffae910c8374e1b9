"""Prometheus exporter: the per-target families rendered directly within their series budget
(monitor.metrics.targets), and one collector per subsystem in a dedicated registry for the rest (contracts'
objectives, SNMP, tickets, self-monitoring, cluster). A scrape reads only memory, never the store,
and is gzip-compressed when the client asks (Prometheus does).

Served by :mod:`monitor.metrics.http_server` (threads, TLS handshakes off the accept path, read timeouts, a
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

from monitor.metrics.http_server import HttpServer
from monitor.measure.live import LiveState
from monitor.metrics import TargetSeries
from monitor.measure.writer import RateLimited

__all__ = ["make_registry", "ExporterServer"]

log = logging.getLogger("slawatch.exporter")



def make_registry(live: LiveState) -> CollectorRegistry:
    """The registry for everything but the per-target families (monitor.metrics.targets): one collector per
    subsystem, each reading the data its subsystem publishes in LiveState."""
    from monitor.metrics.cluster import ClusterCollector
    from monitor.metrics.contracts import ContractCollector
    from monitor.metrics.selfmon import SelfCollector
    from monitor.metrics.snmp import SnmpCollector
    from monitor.tickets.metrics import TicketCollector

    registry = CollectorRegistry(auto_describe=False)
    for collector in (ContractCollector, SnmpCollector, SelfCollector, ClusterCollector, TicketCollector):
        registry.register(collector(live))
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
        self.registry, self.targets, self.scrapes, self.reload = registry, targets, scrapes, reload
        self.render_lock = threading.Lock()  # one render at a time: the target renderer's caches are not shared
        self.expected = None
        if basic_auth:
            self.expected = "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        self.counts = responses if responses is not None else {}
        self.said = RateLimited(60.0)
        self.server = HttpServer(self._app, self.host, self.port, tls=tls, count=self._count)
        self.port = self.server.port

    def _count(self, code: str) -> None:
        """The server's own answers (refused requests, a full pool), and every answer of the app."""
        self.counts[code] = self.counts.get(code, 0) + 1

    def _app(self, environ, start_response):
        """Every answer counted by code; a bad request is a 4xx, and nothing a client sends reaches stderr
        as a traceback (an error is logged, at most once a minute, through the redacting log)."""
        status_seen: list[str] = []

        def counted(status, headers, exc_info=None):
            status_seen.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            body = self._route(environ, counted)
        except Exception as exc:
            if self.said.due("request"):
                log.error("exporter request failed (%s; said at most once a minute)", type(exc).__name__)
            if not status_seen:
                counted("500 Internal Server Error", [("Content-Type", "text/plain")])
            body = [b"internal error\n"]
        self._count(status_seen[-1] if status_seen else "500")
        return body

    @staticmethod
    def _header(environ, name: str) -> bytes | None:
        """A header's bytes as sent (WSGI gives latin-1 text); None when absent."""
        value = environ.get(name)
        return None if value is None else value.encode("latin-1", "replace")

    def _route(self, environ, start_response):
        auth = self._header(environ, "HTTP_AUTHORIZATION")
        if auth is not None and not auth.isascii():
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"malformed Authorization header\n"]
        if self.expected and not hmac.compare_digest(auth or b"", self.expected.encode()):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="slawatch"')])
            return [b"unauthorized\n"]
        path = environ.get("PATH_INFO", "")
        if path == "/-/reload":
            return self._reload_endpoint(environ, start_response)
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
            return self._metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def _metrics(self, environ, start_response):
        t0 = time.perf_counter()
        with self.render_lock:
            text = self.targets.render() if self.targets is not None else ""
            body = text.encode() + generate_latest(self.registry)
        headers = [("Content-Type", CONTENT_TYPE_LATEST)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        if self.scrapes is not None:
            self.scrapes["seconds"], self.scrapes["bytes"] = time.perf_counter() - t0, len(body)
        start_response("200 OK", headers)
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []

    def _reload_endpoint(self, environ, start_response):
        if self.reload is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"reload endpoint not enabled (set exporter.reload_token)\n"]
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Allow", "POST")])
            return [b"use POST\n"]
        token, do_reload = self.reload
        # the token in its own header (beside basic auth, which takes the Authorization header), or as a
        # bearer token when the exporter has no basic auth
        own = self._header(environ, "HTTP_X_SLAWATCH_RELOAD_TOKEN")
        given = own if own is not None else \
            (b"" if self.expected else self._header(environ, "HTTP_AUTHORIZATION") or b"")
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

    def start(self) -> None:
        """Start serving in a background thread."""
        self.server.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.stop()
