"""The exporter's port against what anyone on the network may send: a corpus of malformed requests, random
bytes, idle and half-open connections, a full connection pool and TLS junk. Each is answered with a 4xx/5xx
or closed, counted by code, never with a traceback on stderr, and scrapes keep being answered throughout."""

from __future__ import annotations

import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import REPO, SLAWATCH, free_port, wait_for
from procs import spawn

CONFIG = """
storage: {{path: {db}}}
exporter: {{listen: "127.0.0.1:{port}", reload_token: "fuzz-t0ken"{tls}}}
contracts: [{{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}}}}]
targets: [{{id: a, contract: c1, kind: internet, address: 127.0.0.1, interval: 1s, probes: {{icmp: {{timeout: 300ms}}}}}}]
"""

#: (request bytes, the status codes it may be answered with; None: closed without an answer)
CORPUS: list[tuple[bytes, set[int | None]]] = [
    (b"\x00\x01\x02garbage\r\n\r\n", {400}),
    (b"GET\r\n\r\n", {400}),
    (b"GET /metrics HTTP/9.9\r\n\r\n", {505}),
    (b"GET /metrics HTTP/1.1\r\n" + b"X-A: y\r\n" * 150 + b"\r\n", {431, 400}),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", {414}),
    (b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", {431, 400}),
    (b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n", {400}),
    (b"POST /-/reload HTTP/1.1\r\nContent-Length: -1\r\n\r\n", {403}),
    (b"POST /-/reload HTTP/1.1\r\nX-Slawatch-Reload-Token: \xe9t\xe9\r\n\r\n", {403}),
    (b"POST /-/reload HTTP/1.1\r\nAuthorization: Bearer \x00\r\n\r\n", {403, 400}),
    (b"GET /-/reload HTTP/1.1\r\n\r\n", {405}),
    (b"GET /%ff%00/../../etc/passwd HTTP/1.1\r\n\r\n", {404}),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) * 4, {400}),
    (b"GET /nothing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {404}),
    (b"BREW /pot HTTP/1.1\r\n\r\n", {404, 501}),
    (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {200}),
    (b"GET /-/healthy HTTP/1.1\n\n", {200}),
    (b"\r\n\r\n\r\n", {None, 400}),  # no request line at all: closed
    (b"GET /-/ready HTTP/1.1\r\nnocolon\r\n\r\n", {200, 400}),
    (b"GET /metrics HTTP/1.1\r\nX: \xc3\x28\xa0\xa1\r\n\r\n", {200}),
    (b"GET /met", {None, 400, 404}),  # half a request line, then the client goes away
]


def exchange(port: int, data: bytes, timeout: float = 15.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # the server closed first (e.g. after refusing the request line)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer:
        return None
    head = answer.split(b"\r\n", 1)[0].split()
    assert head[0].startswith(b"HTTP/1."), answer[:200]
    return int(head[1])


def scrape(url: str, context=None) -> str:
    with urllib.request.urlopen(url, timeout=5, context=context) as resp:
        return resp.read().decode()


@pytest.fixture
def exporter(tmp_path, write_config, icmp_mode):
    procs = []

    def start(tls: bool = False):
        port, extra = free_port(), ""
        if tls:
            key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                            str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            extra = f", tls: {{cert_file: {cert}, key_file: {key}}}"
        path = write_config(CONFIG.format(db=tmp_path / "s.db", port=port, tls=extra))
        err = open(tmp_path / "stderr.txt", "w+")
        proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        procs.append((proc, err))
        if tls:
            context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
            url = f"https://127.0.0.1:{port}"
        else:
            context, url = None, f"http://127.0.0.1:{port}"
        wait_for("exporter", lambda: "slawatch_build_info" in scrape(url + "/metrics", context))
        return port, url, context, err

    yield start
    for proc, err in procs:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        err.seek(0)
        text = err.read()
        assert "Traceback" not in text, text


def test_malformed_requests_are_answered_4xx_and_counted(exporter):
    port, url, _, _ = exporter()
    for data, allowed in CORPUS:
        code = status_of(exchange(port, data))
        assert code in allowed, (data[:60], code)
        assert "slawatch_build_info" in scrape(url + "/metrics")
    rng = random.Random(20261127)
    for _ in range(300):
        blob = rng.randbytes(rng.randint(1, 2048))
        if rng.random() < 0.5:
            blob = rng.choice([b"GET ", b"POST /-/reload ", b"GET /metrics HTTP/1.1\r\n"]) + blob
        code = status_of(exchange(port, blob))
        assert code != 500, (blob[:60], code)  # an answer (status_of checks it is HTTP) or a close
    text = scrape(url + "/metrics")
    counted = {line.split('code="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("slawatch_exporter_http_responses_total{")}
    assert counted.get("400", 0) >= 5 and counted.get("403", 0) >= 3 and counted.get("414", 0) >= 1, counted
    assert "500" not in counted, counted


def test_idle_connections_neither_block_scrapes_nor_exhaust_the_server(exporter):
    port, url, _, _ = exporter()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    started = time.monotonic()
    assert "slawatch_build_info" in scrape(url + "/metrics")
    assert time.monotonic() - started < 2
    # past the pool (32 connections at once): the extra ones are answered 503 at once, not queued forever
    idle += [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    time.sleep(0.5)
    answers = []
    for s in idle[32:]:
        s.settimeout(2)
        try:
            answers.append(s.recv(200))
        except socket.timeout:
            answers.append(b"")
    assert sum(a.startswith(b"HTTP/1.0 503") for a in answers) >= 10, answers
    # the read timeout (10 s) frees the pool of clients that never send a request
    wait_for("pool freed", lambda: "slawatch_build_info" in scrape(url + "/metrics"), timeout=20)
    text = scrape(url + "/metrics")
    assert 'slawatch_exporter_http_responses_total{code="503"}' in text
    for s in idle:
        s.close()


def test_tls_handshakes_do_not_block_the_accept_loop(exporter):
    port, url, context, _ = exporter(tls=True)
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # no ClientHello, ever
    started = time.monotonic()
    for _ in range(5):
        assert "slawatch_build_info" in scrape(url + "/metrics", context)
    assert time.monotonic() - started < 3
    for data in (b"GET /metrics HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x00" * 100,
                 random.Random(1).randbytes(5000)):
        exchange(port, data, timeout=12)  # a failed handshake: closed, counted
    text = scrape(url + "/metrics", context)
    assert 'slawatch_exporter_http_responses_total{code="tls_error"}' in text
    for s in stalled:
        s.close()
