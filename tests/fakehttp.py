"""A tiny HTTP server on loopback that records requests and answers from route handlers.

Used where no real peer can run here (Jira, ServiceNow) and as the receiving end of the generic webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeHttp:
    def __init__(self, routes: dict[tuple[str, str], Callable[[dict], tuple[int, object]]] | None = None,
                 host: str = "127.0.0.1"):
        """``host``: where to listen (loopback, or the host side of a test namespace's veth)."""
        self.routes = routes or {}
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                req = {"method": self.command, "path": path, "query": query, "headers": dict(self.headers), "raw": raw,
                       "json": json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith("application/json") else None}
                fake.requests.append(req)
                handler = fake.routes.get((self.command, path))
                if handler is None:
                    handler = next((h for (m, p), h in fake.routes.items() if m == self.command and p.endswith("*")
                                    and path.startswith(p[:-1])), None)
                status, body = handler(req) if handler else (404, {"error": "no route"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
