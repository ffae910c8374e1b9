"""Service probes against real peers: Kamailio (SIP OPTIONS over UDP, TCP and TLS), HTTP(S) servers with
certificates made by openssl, unbound (NOERROR, NXDOMAIN, SERVFAIL), aiosmtpd (plain and STARTTLS) and a
websockets server. Each asserts the verdict, the reason a NOC reads and the evidence kept."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from decimal import Decimal

import pytest

from conftest import free_port
from monitor.config.models import LatencyObjective, Objectives
from monitor.measure.cycle import cycle_samples, quality_breach, verdict_of
from monitor.sla.rollup import Rollup
from peers import Kamailio
from probes.base import judge
from probes.dns import DnsProbeConfig, dns_probe
from probes.http import HttpProbeConfig, http_probe
from probes.icmp import IcmpResult
from probes.sip import SipProbeConfig, sip_probe
from probes.smtp import SmtpProbeConfig, smtp_probe
from probes.tcp import TcpProbeConfig, tcp_probe
from probes.websocket import WebSocketProbeConfig, websocket_probe
from servicepeers import HttpServer, Pki, Unbound, WebSocketServer, unbound_available
from procs import spawn


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.certs = {
        "valid": p.leaf("valid", 365),
        "expiring": p.leaf("expiring", 3),
        "expired": p.leaf("expired", 3, ago="10 days ago"),
        "wronghost": p.leaf("wronghost", 365, san="DNS:portal.example.net"),
        "selfsigned": p.self_signed("selfsigned"),
    }
    return p


@pytest.fixture(scope="module")
def https(pki):
    servers = {name: HttpServer(Pki.context(*pair)) for name, pair in pki.certs.items()}
    servers["plain"] = HttpServer()
    yield {name: s.port for name, s in servers.items()}
    for s in servers.values():
        s.stop()


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory, pki):
    ok, why = Kamailio.available()
    if not ok:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("kamailio")
    cert, key = pki.certs["valid"]
    up = Kamailio(base / "up", free_port(), cert, key).start()
    refusing = Kamailio(base / "503", free_port(), cert, key, status="503 Service Unavailable").start()
    yield up, refusing
    up.stop()
    refusing.stop()


# --------------------------------------------------------------------------- SIP


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_sip_options_over_each_transport(kamailio, pki, transport):
    up, _ = kamailio
    port = up.port + 1 if transport == "tls" else up.port
    r = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(transport=transport, port=port, ca_file=str(pki.ca),
                                                        timeout="3s")))
    assert r.ok and r.evidence().verdict == "good", r.reason
    assert r.status == "SIP/2.0 200 Keepalive" and r.details["server"] == "slawatch-test-kamailio"
    assert 0 < r.response < 3 and r.samples().response == r.response
    if transport == "tls":
        assert r.tls is not None and r.tls.verified and r.tls.version.startswith("TLSv1.")
        assert 364 < r.tls_days_left < 366
        assert set(r.phases) >= {"resolve", "connect", "tls", "final_response"}
    if transport == "udp":
        assert r.details["requests_sent"] == 1
    text = "\n".join(r.lines())
    assert "SIP/2.0 200 Keepalive" in text and "slawatch-test-kamailio" in text


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sip_options_over_ipv6(tmp_path, pki, transport):
    """A gateway on an IPv6 address: the Via, From and Contact carry the bracketed address and Kamailio answers."""
    ok, why = Kamailio.available()
    if not ok:
        pytest.skip(why)
    cert, key = pki.certs["valid"]
    k = Kamailio(tmp_path / "k6", free_port(), cert, key, address="::1").start()
    try:
        r = run(sip_probe("gw6", "::1", SipProbeConfig(transport=transport, port=k.port, timeout="3s")))
        assert r.ok and r.status == "SIP/2.0 200 Keepalive", r.reason
    finally:
        k.stop()


def test_sip_503_is_an_answering_stack_unless_configured_bad(kamailio):
    _, refusing = kamailio
    alive = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(port=refusing.port, timeout="3s")))
    assert alive.ok and alive.status == "SIP/2.0 503 Service Unavailable"
    strict = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(port=refusing.port, timeout="3s",
                                                             valid_status=["2xx", "4xx"])))
    assert not strict.ok and strict.evidence().verdict == "bad"
    assert strict.reason == "SIP/2.0 503 Service Unavailable is not one of 2xx, 4xx"


def test_dead_sip_stack_on_a_pinging_host_is_an_outage(tmp_path, pki):
    """The gateway answers ping, its SIP stack is stopped: the target is down, with the SIP reason."""
    ok, why = Kamailio.available()
    if not ok:
        pytest.skip(why)
    cert, key = pki.certs["valid"]
    k = Kamailio(tmp_path / "k", free_port(), cert, key).start()
    k.stop()
    sip = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(port=k.port, timeout="2s")))
    ping = IcmpResult("icmp", "gw1", "127.0.0.1", 0, 0, True, sent=3, received=3, rtts=(0.001, 0.001, 0.001))
    assert not sip.ok and "Connection refused" in sip.reason
    assert verdict_of([ping, sip]) == "bad"
    tcp = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(port=k.port, transport="tcp", timeout="2s")))
    assert not tcp.ok and tcp.evidence().verdict == "bad" and "refused" in tcp.reason.lower()


def test_sip_udp_retransmits_on_timer_e():
    """A silent peer: the request is sent at 0, T1, 3 T1, 7 T1 (doubling, capped at T2) until the timeout."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            try:
                got.append(sink.recv(65536))
            except socket.timeout:
                continue

    t = threading.Thread(target=drain)
    t.start()
    try:
        r = run(sip_probe("gw1", "127.0.0.1", SipProbeConfig(port=sink.getsockname()[1], timeout="2s", t1="250ms",
                                                            t2="4s")))
    finally:
        stop.set()
        t.join()
        sink.close()
    assert not r.ok and r.reason == "no final response to OPTIONS within 2 s (4 sent)"
    assert len(got) == 4 and len(set(got)) == 1  # the same request (same branch) each time
    request = got[0].decode()
    for header in ("OPTIONS sip:127.0.0.1:", "Via: SIP/2.0/UDP 127.0.0.1:", ";branch=z9hG4bK", "Max-Forwards: 70",
                   "From: <sip:slawatch@127.0.0.1>;tag=", "To: <sip:127.0.0.1:", "Call-ID: ", "CSeq: 1 OPTIONS",
                   "Contact: <sip:slawatch@127.0.0.1:", "User-Agent: slawatch-probe/1", "Content-Length: 0"):
        assert header in request


# --------------------------------------------------------------------------- HTTP(S)


def http(port, path="/ok", scheme="https", **kw):
    host = kw.pop("host", "127.0.0.1")
    return HttpProbeConfig(url=f"{scheme}://{host}:{port}{path}", **kw)


def test_https_valid_with_phases_and_expiry(https, pki):
    r = run(http_probe("portal", "127.0.0.1", http(https["valid"], ca_file=str(pki.ca), body_regex="healthy")))
    assert r.ok, r.reason
    assert list(r.phases) == ["resolve", "connect", "tls", "first_byte", "transfer"]
    assert r.status == "HTTP/1.0 200" or r.status == "HTTP/1.1 200"
    assert r.tls.verified and 364 < r.tls_days_left < 366 and r.tls.subject == "CN=valid"
    assert r.details["server"].startswith("slawatch-test-http")
    assert r.response == pytest.approx(sum(r.phases.values()), rel=0.05)


def test_certificate_expiring_in_three_days_degrades_against_tls_expiry_min(https, pki):
    r = run(http_probe("portal", "127.0.0.1", http(https["expiring"], ca_file=str(pki.ca))))
    assert r.ok and 2.9 < r.tls_days_left < 3.01
    objectives = Objectives(availability=Decimal("99.9"), tls_expiry_min="14d")
    assert judge(r.samples(), objectives) == {"tls_expiry": False}
    assert judge(r.samples(), Objectives(availability=Decimal("99.9"), tls_expiry_min="2d")) == {"tls_expiry": True}

    class Contract:
        pass

    c = Contract()
    c.objectives = objectives
    breach = quality_breach([r], c)  # degraded: the ticket opens before the certificate expires
    assert breach is not None and breach.startswith("http: TLS certificate expires in ") and \
        breach.endswith(" days, under the 14-day minimum"), breach


def test_resolve_takes_ip_literals_as_they_are_and_looks_names_up():
    """No lookup thread for a literal (it cost about 3 ms of every check's response time); names and a literal of
    the wrong family still go through getaddrinfo, whose failure is no evidence."""
    from probes.service import ServiceFailure, resolve

    assert run(resolve("127.0.0.1", 80)) == (socket.AF_INET, ("127.0.0.1", 80))
    assert run(resolve("::1", 443)) == (socket.AF_INET6, ("::1", 443, 0, 0))
    fam, sockaddr = run(resolve("localhost", 80, socket.AF_INET))
    assert fam == socket.AF_INET and sockaddr == ("127.0.0.1", 80)
    with pytest.raises(ServiceFailure) as err:
        run(resolve("127.0.0.1", 80, socket.AF_INET6))
    assert not err.value.attempted and err.value.reason.startswith("cannot resolve 127.0.0.1")


def test_stored_cycles_come_back_as_their_kinds_results():
    """A rollup rebuilt from raw cycles (maintenance changed after the fact) sees the samples the live cycle had:
    each kind rebuilds its own result from what it stored; SNMP stores none for the rollups."""
    from probes import result_from_record
    from probes.service import ServiceResult, TlsInfo

    http_result = ServiceResult("http", "portal", "127.0.0.1", 1_795_000_000.0, 0.02, True, None, response=0.0123,
                                tls=TlsInfo("TLSv1.3", None, None, None, 1_795_000_000.0 + 3 * 86400, True))
    icmp_result = IcmpResult("icmp", "edge", "127.0.0.1", 1_795_000_000.0, 0.2, True, None, sent=5, received=4,
                             rtts=(0.001, None, 0.003, 0.002, 0.006))
    for live in (http_result, icmp_result):
        s = live.samples()
        back = result_from_record(live.probe, live.target, live.started, live.duration, live.ok, live.reason,
                                  s.sent, s.received, live.record_samples())
        assert back is not None and type(back) is type(live)
        b = back.samples()
        assert (b.sent, b.received, b.rtt, b.loss, b.jitter, b.response) == \
            (s.sent, s.received, s.rtt, s.loss, s.jitter, s.response)
        assert b.tls_days_left == pytest.approx(s.tls_days_left) if s.tls_days_left else b.tls_days_left is None
    failed = ServiceResult("sip", "gw", "127.0.0.1", 1_795_000_000.0, 0.5, False, "no final response")
    assert result_from_record("sip", "gw", 1.0, 0.5, False, "x", None, None, failed.record_samples()) is None
    assert result_from_record("snmp", "r1", 1.0, 0.1, True, None, None, None, {}) is None
    assert result_from_record("icmp", "e", 1.0, 0.1, False, "cannot resolve", None, None, None) is None


def test_shortfalls_name_each_missed_objective_with_its_figure():
    """What a degradation ticket says: each missed objective with the cycle's figure and the contract's limit;
    met objectives and objectives without a figure say nothing."""
    from probes.base import Samples, shortfalls

    o = Objectives(availability=Decimal("99.9"), loss=Decimal("1"), latency=LatencyObjective(max="50ms"),
                   jitter="10ms", response_time=LatencyObjective(max="500ms"), tls_expiry_min="14d")
    s = Samples(loss=0.125, rtt=0.0612, jitter=0.004, response=0.612, tls_days_left=-2.5)
    assert shortfalls(s, o) == {"loss": "loss 12.50 % above 1 %", "latency": "RTT 61.200 ms above 50.000 ms",
                                "response_time": "response time 612.000 ms above 500.000 ms",
                                "tls_expiry": "TLS certificate expired 2.5 days ago, under the 14-day minimum"}
    assert shortfalls(Samples(tls_days_left=3.04), o) == {
        "tls_expiry": "TLS certificate expires in 3.0 days, under the 14-day minimum"}
    assert shortfalls(Samples(loss=0.01, rtt=0.05, response=0.5, tls_days_left=14.0), o) == {}
    assert shortfalls(Samples(), o) == {}


@pytest.mark.parametrize("name, words", [
    ("expired", "certificate has expired"),
    ("wronghost", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ("selfsigned", "self-signed certificate"),
])
def test_bad_certificates_are_bad_with_the_reason(https, pki, name, words):
    r = run(http_probe("portal", "127.0.0.1", http(https[name], ca_file=str(pki.ca))))
    assert not r.ok and r.evidence().verdict == "bad"
    assert words in r.reason, r.reason
    assert r.tls is not None and not r.tls.verified  # fetched again unverified: the expiry is still evidence
    if name == "expired":
        assert -7.01 < r.tls_days_left < -6.9
    unverified = run(http_probe("portal", "127.0.0.1", http(https[name], verify=False)))
    assert unverified.ok


def test_http_checks(https):
    port = https["plain"]
    ok = run(http_probe("p", "127.0.0.1", http(port, "/json", "http", expect_json={"path": "checks[0].ok",
                                                                                  "equals": True})))
    assert ok.ok and ok.tls is None, ok.reason
    wrong = run(http_probe("p", "127.0.0.1", http(port, "/json", "http", expect_json={"path": "status",
                                                                                     "equals": "degraded"})))
    assert wrong.reason == "HTTP/1.1 200: JSON status is 'ok', not 'degraded'"
    body = run(http_probe("p", "127.0.0.1", http(port, "/ok", "http", body_regex="^maintenance")))
    assert body.reason == "HTTP/1.1 200: body does not match /^maintenance/"
    error = run(http_probe("p", "127.0.0.1", http(port, "/error", "http")))
    assert error.reason == "HTTP/1.1 500 is not one of 2xx" and error.evidence().verdict == "bad"
    accepted = run(http_probe("p", "127.0.0.1", http(port, "/error", "http", valid_status=["2xx", 500])))
    assert accepted.ok
    redirect = run(http_probe("p", "127.0.0.1", http(port, "/redirect", "http")))
    assert redirect.ok and redirect.details["redirects"].endswith("/ok")
    no_follow = run(http_probe("p", "127.0.0.1", http(port, "/redirect", "http", follow_redirects=False)))
    assert no_follow.reason == "HTTP/1.1 302 is not one of 2xx"
    loop = run(http_probe("p", "127.0.0.1", http(port, "/loop", "http", max_redirects=3)))
    assert loop.reason.startswith("more than 3 redirects")
    chunked = run(http_probe("p", "127.0.0.1", http(port, "/chunked", "http", body_regex="portal healthy")))
    assert chunked.ok, chunked.reason
    unsized = run(http_probe("p", "127.0.0.1", http(port, "/unsized", "http", body_regex="portal healthy")))
    assert unsized.ok and unsized.details["body_bytes"] == 15, unsized.reason  # read to the close, not one read
    slow = run(http_probe("p", "127.0.0.1", http(port, "/slow", "http", timeout="700ms")))
    assert not slow.ok and slow.reason == f"no response from 127.0.0.1 port {port} within 0.7 s"
    assert "first_byte" not in slow.phases and "connect" in slow.phases
    head = run(http_probe("p", "127.0.0.1", http(port, "/ok", "http", method="HEAD")))
    assert head.ok and head.details["body_bytes"] == 0


def test_http_ipv6_and_refused():
    server = HttpServer(ipv6=True)
    try:
        r = run(http_probe("p", "::1", HttpProbeConfig(url=f"http://[::1]:{server.port}/ok", ip_version=6)))
        assert r.ok, r.reason
    finally:
        server.stop()
    port = free_port()
    refused = run(http_probe("p", "127.0.0.1", HttpProbeConfig(url=f"http://127.0.0.1:{port}/")))
    assert refused.reason == f"connect to 127.0.0.1 port {port}: Connection refused"
    unresolvable = run(http_probe("p", "x", HttpProbeConfig(url="http://no-such-host.invalid/")))
    assert unresolvable.evidence().verdict == "none" and "cannot resolve no-such-host.invalid" in unresolvable.reason


# --------------------------------------------------------------------------- TCP


def test_tcp_connect_banner_and_tls(https, pki, smtp_server):
    port, _, _ = smtp_server
    banner = run(tcp_probe("mx", "127.0.0.1", TcpProbeConfig(port=port, dialogue=[{"expect": "^220 "},
                                                                                 {"send": "QUIT\\r\\n",
                                                                                  "expect": "^221"}])))
    assert banner.ok and banner.details["matched"].startswith("220 "), banner.reason
    wrong = run(tcp_probe("mx", "127.0.0.1", TcpProbeConfig(port=port, timeout="1s",
                                                            dialogue=[{"expect": "^SSH-2.0"}])))
    assert not wrong.ok and wrong.reason == "dialogue step 1: nothing matching /^SSH-2.0/ in time"
    tls = run(tcp_probe("portal", "127.0.0.1", TcpProbeConfig(port=https["valid"],
                                                              tls={"ca_file": str(pki.ca)})))
    assert tls.ok and tls.tls.verified and "tls" in tls.phases
    refused = run(tcp_probe("x", "127.0.0.1", TcpProbeConfig(port=free_port(), timeout="1s")))
    assert not refused.ok and refused.evidence().verdict == "bad"


# --------------------------------------------------------------------------- DNS


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    ok, why = unbound_available()
    if not ok:
        pytest.skip(why)
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_dns_answers(unbound, transport):
    cfg = DnsProbeConfig(query_name="portal.sla.test", query_type="aaaa", port=unbound.port, transport=transport,
                         expect_answers=["^2001:db8::10$"])
    r = run(dns_probe("ns", "127.0.0.1", cfg))
    assert r.ok and r.status == "NOERROR, 1 answer", r.reason
    assert r.details["answers"] == "portal.sla.test. AAAA 2001:db8::10" and r.response > 0
    mx = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="sla.test", query_type="MX", port=unbound.port,
                                                         transport=transport, expect_answers=["mail.sla.test"])))
    assert mx.ok, mx.reason


def test_dns_nxdomain_servfail_and_mismatch(unbound):
    nx = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="gone.sla.test", port=unbound.port)))
    assert not nx.ok and nx.reason == "gone.sla.test A: NXDOMAIN, expected NOERROR"
    expected_nx = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="gone.sla.test", port=unbound.port,
                                                                  valid_rcodes=["nxdomain"])))
    assert expected_nx.ok
    sf = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="a.broken.lab", port=unbound.port)))
    assert not sf.ok and sf.reason == "a.broken.lab A: SERVFAIL, expected NOERROR"
    mismatch = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="portal.sla.test", port=unbound.port,
                                                               expect_answers=["^198\\.51\\.100\\."])))
    assert mismatch.reason == "portal.sla.test A: no answer matches /^198\\.51\\.100\\./"
    silent = run(dns_probe("ns", "127.0.0.1", DnsProbeConfig(query_name="portal.sla.test", port=free_port(),
                                                             timeout="500ms")))
    assert not silent.ok and silent.evidence().verdict == "bad"


# --------------------------------------------------------------------------- SMTP


def test_smtp_starttls_and_plain(smtp_server, pki):
    port, cert, _ = smtp_server
    r = run(smtp_probe("mx", "127.0.0.1", SmtpProbeConfig(port=port, tls="starttls", ca_file=str(cert))))
    assert r.ok, r.reason
    assert r.tls is not None and r.tls.verified and 0 < r.tls_days_left <= 1.01
    assert "STARTTLS" in r.details["extensions"] and list(r.phases)[:4] == ["resolve", "connect", "banner", "ehlo"]
    plain = run(smtp_probe("mx", "127.0.0.1", SmtpProbeConfig(port=port, expect_banner="Python SMTP")))
    assert plain.ok and plain.tls is None
    # its certificate is self-signed: against the system's CAs the check is bad, and the expiry still evidence
    untrusted = run(smtp_probe("mx", "127.0.0.1", SmtpProbeConfig(port=port, tls="starttls")))
    assert not untrusted.ok and untrusted.evidence().verdict == "bad"
    assert untrusted.reason == "TLS certificate not valid for 127.0.0.1: self-signed certificate", untrusted.reason
    assert not untrusted.tls.verified and 0 < untrusted.tls_days_left <= 1.01


def test_smtp_without_starttls_fails_when_required():
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        r = run(smtp_probe("mx", "127.0.0.1", SmtpProbeConfig(port=port, tls="starttls")))
        assert not r.ok and r.reason == "the server does not offer STARTTLS"
        banner = run(smtp_probe("mx", "127.0.0.1", SmtpProbeConfig(port=port, expect_banner="^Exchange")))
        assert not banner.ok and "does not match /^Exchange/" in banner.reason
    finally:
        controller.stop()


# --------------------------------------------------------------------------- WebSocket


def test_websocket_dialogue_and_ping(pki):
    plain = WebSocketServer()
    secure = WebSocketServer(Pki.context(*pki.certs["valid"]))
    expired = WebSocketServer(Pki.context(*pki.certs["expired"]))
    try:
        r = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(
            url=f"ws://127.0.0.1:{plain.port}/chat", send="hello", expect="^echo: hello$")))
        assert r.ok and r.details["matched"] == "echo: hello", r.reason
        assert list(r.phases) == ["handshake", "dialogue", "ping"] and r.details["ping_rtt"].endswith(" ms")
        missing = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(
            url=f"ws://127.0.0.1:{plain.port}/nochat")))
        assert not missing.ok and missing.reason == "handshake refused: HTTP 404"
        silent = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(
            url=f"ws://127.0.0.1:{plain.port}/chat", expect="^never", ping=False, timeout="700ms")))
        assert not silent.ok and silent.reason == "no message matching /^never/ within 0.7 s"
        tls = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(
            url=f"wss://127.0.0.1:{secure.port}/chat", ca_file=str(pki.ca))))
        assert tls.ok and tls.tls.verified and 364 < tls.tls_days_left < 366, tls.reason
        bad = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(
            url=f"wss://127.0.0.1:{expired.port}/chat", ca_file=str(pki.ca))))
        assert not bad.ok and bad.evidence().verdict == "bad" and "certificate has expired" in bad.reason
        assert not bad.tls.verified and -7.01 < bad.tls_days_left < -6.9  # the expiry is still evidence
        nowhere = run(websocket_probe("chat", "127.0.0.1", WebSocketProbeConfig(url="ws://no-such-host.invalid/")))
        assert nowhere.evidence().verdict == "none" and "cannot resolve no-such-host.invalid" in nowhere.reason
    finally:
        plain.stop()
        secure.stop()
        expired.stop()


# --------------------------------------------------------------------------- the core's view


def test_response_times_roll_up_and_judge_the_percentile(https):
    port = https["plain"]
    results = [run(http_probe("p", "127.0.0.1", http(port, "/ok", "http"))) for _ in range(5)]
    rollup = Rollup()
    for r in results:
        s = cycle_samples([r])
        rollup.add_cycle("good", False, s.sent, s.received, list(s.rtts), s.jitter, None, None, None, s.response)
    assert rollup.response.count == 5 and rollup.rtt.count == 0
    again = Rollup.decode(rollup.counts_blob(), rollup.rtt.to_bytes())
    assert again.response.count == 5
    assert again.response.quantile(0.95) == pytest.approx(rollup.response.quantile(0.95))
    objectives = Objectives(availability=Decimal("99.9"),
                            response_time=LatencyObjective(percentile=95, max=0.000001))
    assert judge(results[0].samples(), objectives) == {"response_time": False}


def test_cli_probe_prints_the_evidence(tmp_path, https, pki):
    config = tmp_path / "c.yaml"
    config.write_text(f"""
contracts:
  - id: c1
    customer: Alliance
    provider: Telco
    objectives: {{availability: 99.9%, response_time: {{percentile: 95, max: 500ms}}, tls_expiry_min: 14d}}
targets:
  - id: portal
    contract: c1
    kind: support
    address: 127.0.0.1
    probes:
      icmp: null
      http: {{url: "https://127.0.0.1:{https['valid']}/ok", ca_file: "{pki.ca}", body_regex: healthy}}
storage: {{path: "{tmp_path / 'db.sqlite'}"}}
""")
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "probe", "portal", "-c", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("portal http 127.0.0.1: OK\n")
    assert "  answer: HTTP/1." in out.stdout and "phases: resolve" in out.stdout
    assert "certificate CN=valid issued by CN=slawatch test CA" in out.stdout and "verified" in out.stdout
    assert "  objectives: response_time met; tls_expiry met\n" in out.stdout, out.stdout
    expiring = config.read_text().replace(f"127.0.0.1:{https['valid']}/ok", f"127.0.0.1:{https['expiring']}/ok")
    config.write_text(expiring)
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "probe", "portal", "-c", str(config), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["objectives"] == {"response_time": True, "tls_expiry": False}
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "probe", "portal", "-c", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert "  objectives: response_time met; tls_expiry MISSED (TLS certificate expires in 3.0 days, under the " \
           "14-day minimum)\n" in out.stdout, out.stdout


@pytest.mark.parametrize("probe, value, message", [
    ("http", '{url: "portal.example.net/status"}',
     "targets[0].probes.http.url: URL must start with http:// or https:// (got 'portal.example.net/status')"),
    ("sip", "{transport: sctp}", "targets[0].probes.sip.transport: must be one of udp, tcp, tls (got 'sctp')"),
    ("http", '{url: "http://127.0.0.1/", body_regex: "(unclosed"}',
     "targets[0].probes.http.body_regex: regular expression does not compile: missing ), unterminated "
     "subpattern at position 0 (got '(unclosed')"),
    ("dns", "{query_name: portal.sla.test, query_type: AAAAA}",
     "targets[0].probes.dns.query_type: not a DNS record type (got 'AAAAA')"),
    ("http", '{url: "https://127.0.0.1/", ca_file: /nonexistent/ca.pem}',
     "targets[0].probes.http.ca_file: CA file /nonexistent/ca.pem does not exist or is not a file "
     "(got '/nonexistent/ca.pem')"),
    ("websocket", '{url: "http://127.0.0.1/chat"}',
     "targets[0].probes.websocket.url: URL must start with ws:// or wss:// and name a host "
     "(got 'http://127.0.0.1/chat')"),
])
def test_bad_probe_settings_are_config_errors(tmp_path, probe, value, message):
    config = tmp_path / "c.yaml"
    config.write_text(f"""
contracts:
  - {{id: c1, customer: A, provider: T, objectives: {{availability: 99.9%}}}}
targets:
  - id: t1
    contract: c1
    kind: support
    address: 127.0.0.1
    probes: {{icmp: null, {probe}: {value}}}
""")
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config", "-c", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"  {message}" in out.stderr.splitlines(), out.stderr


def test_daemon_sip_outage_while_ping_answers(tmp_path, pki, https, icmp_mode):
    """`slawatch run` with a voice gateway probed by ICMP and SIP, and a portal by HTTPS: Kamailio stops, the
    gateway still answers ping, and the gateway goes down with the SIP reason; the portal's figures are exported."""
    import json
    import signal
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from conftest import REPO, SLAWATCH

    ok, why = Kamailio.available()
    if not ok:
        pytest.skip(why)
    cert, key = pki.certs["valid"]
    k = Kamailio(tmp_path / "k", free_port(), cert, key).start()
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"""
storage: {{path: "{tmp_path / 'db.sqlite'}", flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - id: c1
    customer: Alliance
    provider: Telco
    objectives: {{availability: 99.9%, response_time: {{percentile: 95, max: 500ms}}, tls_expiry_min: 14d}}
targets:
  - id: gw1
    contract: c1
    kind: voice
    address: 127.0.0.1
    interval: 1s
    failure_threshold: 2
    probes:
      icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}
      sip: {{port: {k.port}, timeout: 500ms, t1: 100ms}}
  - id: portal
    contract: c1
    kind: support
    address: 127.0.0.1
    interval: 1s
    probes:
      icmp: null
      http: {{url: "https://127.0.0.1:{https['valid']}/ok", ca_file: "{pki.ca}", timeout: 500ms}}
""")

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    def value(metrics, name, **labels):
        return next((v for (n, lab), v in metrics.items() if n == name and labels.items() <= dict(lab).items()), None)

    proc = spawn(SLAWATCH + ["run", "-c", str(config)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, metrics = time.time() + 30, {}
        while time.time() < deadline:
            try:
                metrics = scrape()
            except OSError:
                time.sleep(0.2)
                continue
            if value(metrics, "slawatch_target_up", target="gw1") == 1.0 and \
                    value(metrics, "slawatch_target_up", target="portal") == 1.0:
                break
            time.sleep(0.3)
        assert value(metrics, "slawatch_probe_success", target="gw1", probe="sip") == 1.0, metrics
        assert 0 < value(metrics, "slawatch_probe_response_seconds", target="portal", probe="http") <= 0.5  # timeout
        not_after = value(metrics, "slawatch_tls_cert_not_after_seconds", target="portal", probe="http")
        assert 364 < (not_after - time.time()) / 86400 < 366
        k.stop()
        deadline = time.time() + 20
        while time.time() < deadline:
            metrics = scrape()
            if value(metrics, "slawatch_target_up", target="gw1") == 0.0:
                break
            time.sleep(0.3)
        assert value(metrics, "slawatch_target_up", target="gw1") == 0.0
        assert value(metrics, "slawatch_probe_success", target="gw1", probe="sip") == 0.0
        assert value(metrics, "slawatch_probe_success", target="portal", probe="http") == 1.0
        # the series budget: a support target probed by HTTPS only costs 7 + 3 (success, response, expiry)
        portal_series = [n for (n, lab) in metrics if dict(lab).get("target") == "portal"]
        assert len(portal_series) <= 10, sorted(portal_series)
        assert "slawatch_icmp_packets_sent_total" not in portal_series
    finally:
        k.stop()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    outage = [json.loads(line) for line in err.splitlines() if line.startswith("{") and "outage_started" in line]
    assert outage and "target gw1: up -> down" in outage[0]["msg"], outage or err[-3000:]
    from monitor.config import load_config
    from monitor.store import open_store

    store = open_store(load_config(str(config)).storage, readonly=True)
    try:
        down = [o for o in store.outages("gw1") if o.kind == "down"]
        assert len(down) == 1 and not store.outages("portal")
        assert down[0].evidence["first_bad"]["reason"] == f"127.0.0.1 port {k.port}: Connection refused"
        sip_cycles = [c for c in store.cycles("gw1", 0, time.time() + 1) if c.probe == "sip"]
        answered = [c for c in sip_cycles if c.ok]
        assert answered and all(0 < c.samples["response"] < 0.5 for c in answered)
        assert all(c.samples["status"] == "SIP/2.0 200 Keepalive" for c in answered)
        from monitor.sla.rollup import Rollup

        portal = Rollup.stored(store.monthly_rollups(time.strftime("%Y-%m"))["portal"])
        assert portal.response.count >= 1 and portal.rtt.count == 0
    finally:
        store.close()


# --------------------------------------------------------------------------- UDP through a namespace host


@pytest.fixture(scope="module")
def lab_kamailio(tmp_path_factory, pki):
    from netlab import NetLab, can_build_netlab

    ok, why = can_build_netlab()
    if not ok:
        pytest.skip(why)
    ok, why = Kamailio.available()
    if not ok:
        pytest.skip(why)
    lab = NetLab()
    host = lab.add_host("sbc")
    cert, key = pki.certs["valid"]
    k = Kamailio(tmp_path_factory.mktemp("labkam"), 5060, cert, key, address=host.address(1), netns=host.netns)
    try:
        k.start()
        yield host, k
    finally:
        k.stop()
        lab.close()


def test_sip_over_udp_recovers_from_loss_by_retransmission(lab_kamailio):
    """40 % of the requests dropped on the SBC's side (nftables): every check still gets its final response, by
    retransmission on timer E, and the retransmissions are counted."""
    host, k = lab_kamailio
    host.clear_drops()
    host.drop_udp(host.address(1), 5060, 40)
    try:
        cfg = SipProbeConfig(timeout="3s", t1="100ms", t2="400ms")

        async def many():
            return await asyncio.gather(*(sip_probe(f"gw{i}", host.address(1), cfg) for i in range(20)))

        results = run(many())
    finally:
        host.clear_drops()
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    sent = [r.details["requests_sent"] for r in results]
    assert sum(sent) > 20 and max(sent) >= 2, sent


def test_sip_and_blackout_and_cut_are_bad(lab_kamailio):
    host, k = lab_kamailio
    host.clear_drops()
    host.drop_udp(host.address(1), 5060, 100)
    try:
        r = run(sip_probe("gw", host.address(1), SipProbeConfig(timeout="1s", t1="200ms")))
    finally:
        host.clear_drops()
    assert not r.ok and r.evidence().verdict == "bad"
    assert r.reason == "no final response to OPTIONS within 1 s (3 sent)"
    host.cut()
    try:
        cut = run(sip_probe("gw", host.address(1), SipProbeConfig(timeout="1s", transport="tcp")))
    finally:
        host.restore()
    assert not cut.ok and cut.evidence().verdict == "bad", cut.reason
    back = run(sip_probe("gw", host.address(1), SipProbeConfig(timeout="2s")))
    assert back.ok, back.reason


def test_dns_over_udp_through_a_namespace_host(tmp_path):
    """unbound on a namespace host: answers; a blackout of its UDP port (nftables) is a bad check with the reason;
    TCP still answers during the UDP blackout."""
    from netlab import NetLab, can_build_netlab

    ok, why = can_build_netlab()
    if not ok:
        pytest.skip(why)
    ok, why = unbound_available()
    if not ok:
        pytest.skip(why)
    with NetLab() as lab:
        host = lab.add_host("ns")
        server = Unbound(tmp_path / "unbound", address=host.address(1), netns=host.netns).start()
        try:
            cfg = DnsProbeConfig(query_name="portal.sla.test", timeout="1s", expect_answers=["192.0.2.10"])
            assert run(dns_probe("ns", host.address(1), cfg)).ok
            host.drop_udp(host.address(1), 53, 100)
            dark = run(dns_probe("ns", host.address(1), cfg))
            assert not dark.ok and dark.evidence().verdict == "bad"
            assert dark.reason == f"no answer from {host.address(1)} port 53 (udp) within 1 s"
            tcp = run(dns_probe("ns", host.address(1), cfg.model_copy(update={"transport": "tcp"})))
            assert tcp.ok, tcp.reason
        finally:
            server.stop()


def test_daemon_opens_a_ticket_before_the_certificate_expires(tmp_path, pki, https):
    """`slawatch run` with a portal whose certificate expires in 3 days under `tls_expiry_min: 14d`: the portal
    answers (up), goes degraded, and a ticket is delivered to the webhook naming the certificate's days left; the
    degradation record keeps that evidence. A portal on a year-long certificate opens nothing."""
    import signal
    import time

    from conftest import REPO, SLAWATCH
    from fakehttp import FakeHttp

    hook = FakeHttp({("POST", "/hook"): lambda req: (200, {"ok": True})})
    hook_url = hook.url + "hook"

    def portal(name: str, cert: str) -> str:
        return (f"  - {{id: {name}, contract: c1, kind: support, address: 127.0.0.1, interval: 1s, "
                f"degraded_threshold: 2, probes: {{icmp: null, http: {{url: 'https://127.0.0.1:{https[cert]}/ok', "
                f"ca_file: '{pki.ca}', timeout: 800ms}}}}}}")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
storage: {{path: "{tmp_path / 'db.sqlite'}", flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{free_port()}"}}
contracts:
  - id: c1
    customer: Alliance
    provider: Telco
    objectives: {{availability: 99.9%, tls_expiry_min: 14d}}
    escalation: [{{tier: 1, after: 0s, sinks: [noc]}}]
targets:
{portal("portal", "expiring")}
{portal("billing", "valid")}
ticket_sinks:
  - {{name: noc, type: webhook, url: "{hook_url}"}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(config)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not hook.requests:
            time.sleep(0.2)
        time.sleep(3)  # the valid portal has had as many cycles: it must open nothing
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        hook.close()
    assert hook.requests, err[-3000:]
    alerts = [a for req in hook.requests for a in req["json"]["alerts"]]
    assert {a["labels"].get("target") for a in alerts} == {"portal"}, alerts
    first = alerts[0]["annotations"]
    assert first["summary"] == "portal is degraded"
    assert "cause: http: TLS certificate expires in 3.0 days, under the 14-day minimum" in first["description"], first

    from monitor.config import load_config
    from monitor.store import open_store

    store = open_store(load_config(str(config)).storage, readonly=True)
    try:
        degraded = store.outages("portal")
        assert [o.kind for o in degraded] == ["degraded"] and not store.outages("billing")
        assert degraded[0].evidence["first_breach"]["reason"].startswith("http: TLS certificate expires in 3.0 days")
    finally:
        store.close()
