"""The HTTP(S) server under the exporter's endpoints (/metrics, /-/healthy, /-/ready, /-/reload).

The standard library's threading WSGI server, with what it lacks for a port anyone on the network may reach:

- **TLS handshakes off the accept path.** The listening socket stays plain; each accepted connection is
  wrapped (``do_handshake_on_connect=False``) and shaken hands with in its own worker thread, under the read
  timeout. One idle or slow client can no longer block every other scrape (it did when the listening socket
  itself was wrapped: the handshake then ran inside ``accept()``).
- **A read timeout** on every connection (the request line, headers, body and the handshake).
- **A bounded pool**: at most ``max_connections`` connections are served at once; one more is answered
  ``503`` (plain HTTP) or closed (TLS) at once, and counted, instead of starting a thread per connection
  without limit.
- **A real backlog** (128, not socketserver's 5).
- **No traceback from a client**: a malformed request line, too many headers, a TLS ClientHello on the plain
  port, a reset mid-answer: counted by status code and logged at most once a minute through the redacting
  log, never printed to stderr.

Why not an off-the-shelf server: cheroot still runs TLS handshakes in its accept loop (cherrypy/cheroot#748,
open), and aiohttp would render the scrape on the probes' event loop. The standard library server with these
four changes keeps scrapes on their own threads.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from monitor.measure.writer import RateLimited

__all__ = ["HttpServer", "READ_TIMEOUT", "MAX_CONNECTIONS", "BACKLOG"]

log = logging.getLogger("slawatch.exporter")

#: seconds a client may take for its handshake, request line, headers and body
READ_TIMEOUT = 10.0
#: connections served at once
MAX_CONNECTIONS = 32
#: the listen backlog
BACKLOG = 128


class _QuietStream:
    """wsgiref's ``wsgi.errors`` / handler stderr: said through the log, at most once a minute."""

    def __init__(self, said: RateLimited):
        self.said = said

    def write(self, text: str) -> int:
        if text.strip() and self.said.due("stream"):
            log.error("exporter: error answering a request (said at most once a minute)")
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        return None


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT
    #: an error answer to a request line without a version still gets a status line (not HTTP/0.9's bare body)
    default_request_version = "HTTP/1.0"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - scrape logs would flood the journal
        pass

    def send_error(self, code, message=None, explain=None):
        self.server.count(str(code))  # a request line or headers the parser refused (400, 414, 431, 505)
        super().send_error(code, message, explain)

    def get_stderr(self):
        """wsgiref's ServerHandler writes an answer's failure (a traceback) here: the quiet stream."""
        return self.server.quiet


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, address, handler, *, family: int, context: ssl.SSLContext | None, max_connections: int,
                 count: Callable[[str], None]):
        self.address_family = family
        self.context = context
        self.slots = threading.BoundedSemaphore(max_connections)
        self.count = count
        self.said = RateLimited(60.0)
        self.quiet = _QuietStream(self.said)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.count("503")
            if self.context is None:
                try:
                    request.settimeout(0.5)
                    request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                    b"Connection: close\r\n\r\ntoo many connections\n")
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread could be started: the slot is not held by anyone
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            request.settimeout(READ_TIMEOUT)
            if self.context is not None:
                request = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
                request.do_handshake()
            self.finish_request(request, client_address)
        except (OSError, ssl.SSLError, ValueError) as exc:
            # a handshake that failed or timed out, a reset, a client that went away
            self.count("tls_error" if isinstance(exc, ssl.SSLError) else "aborted")
        except Exception as exc:  # the parser's own limits (e.g. more than 100 headers)
            self.count("400")
            if self.said.due(type(exc).__name__):
                log.warning("exporter: refused a malformed request (%s; said at most once a minute)",
                            type(exc).__name__)
        finally:
            self.shutdown_request(request)
            self.slots.release()

    def handle_error(self, request, client_address):  # socketserver's default prints a traceback
        if self.said.due("handle_error"):
            log.error("exporter: error serving a connection (said at most once a minute)")


class HttpServer:
    """Serves the WSGI ``app`` on ``host:port`` (TLS when ``tls`` is (cert_file, key_file)) in a thread."""

    def __init__(self, app, host: str, port: int, *, tls: tuple[str, str] | None = None,
                 max_connections: int = MAX_CONNECTIONS, count: Callable[[str], None] = lambda code: None):
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(tls[0], tls[1])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.httpd = _Server((host, port), _Handler, family=family, context=context,
                             max_connections=max_connections, count=count)
        self.httpd.set_app(app)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="exporter", daemon=True)

    def start(self) -> None:
        """Start serving in a background thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop accepting, close idle connections and wait for the serving thread."""
        self.httpd.shutdown()
        self.httpd.server_close()
