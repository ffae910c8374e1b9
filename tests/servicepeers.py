"""Real peers for the service probes, started by the tests on loopback: a test PKI made with openssl (valid,
expiring in 3 days, expired, wrong host name, self-signed), HTTP(S) servers, unbound (a zone, NXDOMAIN, and
SERVFAIL from a stub zone whose server refuses) and a WebSocket echo server."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

from conftest import free_port
from peers import terminate
from procs import spawn

__all__ = ["Pki", "HttpServer", "Unbound", "WebSocketServer", "unbound_available"]

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


class Pki:
    """A CA and leaf certificates for 127.0.0.1/localhost, made with openssl (faketime for the expired one)."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = directory / "ca.pem", directory / "ca.key"
        _run(["openssl", "req", "-x509", *_EC, "-keyout", str(self.ca_key), "-out", str(self.ca), "-days", "3650",
              "-subj", "/CN=slawatch test CA"])

    def leaf(self, name: str, days: int, san: str = "DNS:localhost,IP:127.0.0.1,IP:::1",
             ago: str | None = None) -> tuple[Path, Path]:
        key, csr, cert = self.dir / f"{name}.key", self.dir / f"{name}.csr", self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        _run(["openssl", "req", "-new", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"])
        sign = ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                "-CAcreateserial", "-days", str(days), "-out", str(cert), "-extfile", str(ext)]
        _run((["faketime", ago] if ago else []) + sign)
        return cert, key

    def self_signed(self, name: str) -> tuple[Path, Path]:
        key, cert = self.dir / f"{name}.key", self.dir / f"{name}.pem"
        _run(["openssl", "req", "-x509", *_EC, "-keyout", str(key), "-out", str(cert), "-days", "30",
              "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        return cert, key

    @staticmethod
    def context(cert: Path, key: Path) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slawatch-test-http"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "text/plain", extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/ok":
            self._send(200, b"portal healthy\n")
        elif path == "/json":
            self._send(200, json.dumps({"status": "ok", "checks": [{"name": "db", "ok": True}]}).encode(),
                       "application/json")
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, b"late\n")
        elif path == "/error":
            self._send(500, b"internal error\n")
        elif path == "/redirect":
            self._send(302, b"", extra={"Location": "/ok"})
        elif path == "/loop":
            self._send(302, b"", extra={"Location": "/loop"})
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"portal ", b"healthy", b"\n"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/unsized":  # no length, no chunks: the body ends when the server closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"portal ")
            self.wfile.flush()
            time.sleep(0.1)
            self.wfile.write(b"healthy\n")
            self.close_connection = True
        else:
            self._send(404, b"not found\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    import socket as _socket

    address_family = _socket.AF_INET6


class HttpServer:
    """A threaded HTTP(S) server on loopback (``::1`` with ``ipv6``)."""

    def __init__(self, tls: ssl.SSLContext | None = None, ipv6: bool = False):
        self.port = free_port()
        cls = _Server6 if ipv6 else _Server
        self.server = cls(("::1" if ipv6 else "127.0.0.1", self.port), _Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def unbound_available() -> tuple[bool, str]:
    if not shutil.which("unbound"):
        return False, "unbound not installed (./scripts/dev-setup installs it)"
    return True, ""


class Unbound:
    """Two unbound servers: the one asked serves ``sla.test`` (static: other names NXDOMAIN) and a stub zone
    ``broken.lab`` whose only server, the second, refuses it (so the first answers SERVFAIL)."""

    ZONE = ['portal.sla.test. 300 IN A 192.0.2.10', 'portal.sla.test. 300 IN AAAA 2001:db8::10',
            'sla.test. 300 IN MX 10 mail.sla.test.', 'sla.test. 300 IN TXT "v=slawatch"']

    def __init__(self, directory: Path, address: str = "127.0.0.1", netns: str | None = None):
        self.dir, self.address, self.netns = directory, address, netns
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.refuser_port = (53, 5353) if netns else (free_port(), free_port())
        self.procs: list[subprocess.Popen] = []

    def _conf(self, name: str, port: int, body: str) -> Path:
        path = self.dir / f"{name}.conf"
        path.write_text(f"""server:
    interface: {self.address}
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{self.dir}"
    pidfile: "{self.dir / name}.pid"
    access-control: 0.0.0.0/0 allow
    do-ip6: no
    module-config: "iterator"
    num-threads: 1
    do-not-query-localhost: no
{body}
remote-control:
    control-enable: no
""")
        return path

    def start(self) -> "Unbound":
        zone = "    local-zone: \"sla.test.\" static\n" + "".join(f"    local-data: '{rr}'\n" for rr in self.ZONE)
        main = self._conf("main", self.port, zone + f"stub-zone:\n    name: \"broken.lab.\"\n"
                                                    f"    stub-addr: {self.address}@{self.refuser_port}\n")
        refuser = self._conf("refuser", self.refuser_port, "    local-zone: \"broken.lab.\" refuse\n")
        for conf in (refuser, main):
            log = open(self.dir / f"{conf.stem}.log", "wb")
            prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.procs.append(spawn([*prefix, "unbound", "-d", "-c", str(conf)], stdout=log,
                                               stderr=subprocess.STDOUT))
        self._wait()
        return self

    def _wait(self) -> None:
        import dns.message
        import dns.query

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"unbound exited: {(self.dir / 'main.log').read_text()[-1500:]}")
            try:
                dns.query.udp(dns.message.make_query("portal.sla.test", "A"), self.address, port=self.port,
                              timeout=0.5)
                return
            except Exception:  # noqa: BLE001 -- not up yet
                time.sleep(0.1)
        raise RuntimeError("unbound did not answer")

    def stop(self) -> None:
        for proc in self.procs:
            terminate(proc)
        self.procs = []


class WebSocketServer:
    """A ``websockets`` server on its own loop in a thread: echoes each message as ``echo: <text>``."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.port = free_port()
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("websocket server did not start")

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def handler(ws) -> None:
            if ws.request.path != "/chat":
                return
            async for message in ws:
                await ws.send(f"echo: {message}")

        def process_request(connection, request):
            if request.path != "/chat":
                return connection.respond(404, "no chat here\n")
            return None

        async def main() -> None:
            self.stop_event = asyncio.Event()
            async with serve(handler, "127.0.0.1", self.port, ssl=self.tls, process_request=process_request):
                self.ready.set()
                await self.stop_event.wait()

        self.loop.run_until_complete(main())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
