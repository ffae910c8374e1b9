"""SNMP polling against a real net-snmp snmpd: versions, profiles, interface state, errors, utilization math."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess

import pytest

from conftest import free_port
from monitor.config.models import SnmpProbeConfig
from monitor.measure.counters import counter_delta, rebooted, utilization
from monitor.measure.cycle import verdict_of
from peers import Snmpd
from probes.icmp import IcmpResult
from probes.snmp import SnmpResult, snmp_probe
from procs import spawn, stop


@pytest.fixture(scope="module")
def agent():
    if not shutil.which("snmpd"):
        pytest.skip("net-snmp's snmpd is not installed (scripts/dev-setup installs snmpd)")
    server = Snmpd(free_port()).start()
    yield server
    server.stop()


def poll(port, **cfg):
    return asyncio.run(snmp_probe("t", "127.0.0.1", SnmpProbeConfig(port=port, **cfg)))


def test_v2c_system_and_interface_table(agent):
    r = poll(agent.port, version="2c", community="public", profiles=["system", "if-mib"])
    assert r.ok and r.answered and r.scalars["sysName"] == "slawatch-test-agent"
    assert isinstance(r.scalars["sysUpTime"], int) and r.scalars["sysUpTime"] >= 0
    ifaces = r.interfaces
    lo = next(cols for cols in ifaces.values() if cols.get("ifDescr") == "lo")
    assert lo["ifAdminStatus"] == 1 and lo["ifOperStatus"] == 1 and isinstance(lo["ifHCInOctets"], int)
    # the walk matches net-snmp's own tool
    walk = subprocess.run(["snmpwalk", "-On", "-v2c", "-c", "public", f"127.0.0.1:{agent.port}", "1.3.6.1.2.1.2.2.1.2"],
                          capture_output=True, text=True).stdout
    assert sorted(ifaces) == sorted(int(line.split(" = ")[0].rsplit(".", 1)[1]) for line in walk.splitlines())
    assert r.pdus < 1 + len(ifaces) * 12  # many varbinds per PDU, not one request per OID


def test_v1_walks_with_getnext(agent):
    r = poll(agent.port, version="1", community="public", profiles=["system", "if-mib"])
    assert r.ok and r.interfaces and all("ifHCInOctets" not in c for c in r.interfaces.values())  # no Counter64 in v1


@pytest.mark.parametrize("user", sorted(Snmpd.USERS))
def test_v3_every_security_level_and_protocol(agent, user):
    """authPriv with MD5/SHA/SHA-2 and DES/AES-128/192/256, authNoPriv and noAuthNoPriv, against net-snmp."""
    auth, akey, priv, pkey = Snmpd.USERS[user]
    r = poll(agent.port, version="3", user=user, auth_protocol=auth, auth_key=akey, priv_protocol=priv, priv_key=pkey,
             profiles=["system", "if-mib"])
    assert r.ok, r.reason
    assert r.scalars["sysName"] == "slawatch-test-agent" and any(c.get("ifDescr") == "lo" for c in r.interfaces.values())


def test_v3_wrong_key_is_reported_clearly(agent):
    r = poll(agent.port, version="3", user="usha", auth_protocol="sha", auth_key="not-the-key", priv_protocol="aes",
             priv_key="privpass123", profiles=["system"], retries=0, timeout="1s")
    assert not r.ok and not r.answered, r  # unknown, never down: the agent is there, the credentials are wrong
    assert "wrong authentication key or protocol (sha) for user 'usha' (usmStatsWrongDigests)" in r.reason
    assert "not-the-key" not in r.reason


@pytest.mark.parametrize("case,settings,expected", [
    ("unknown user", dict(user="nobody", auth_protocol="sha", auth_key="authpass123"),
     "the agent does not know user 'nobody' (usmStatsUnknownUserNames)"),
    ("wrong privacy key", dict(user="usha", auth_protocol="sha", auth_key="authpass123", priv_protocol="aes",
                               priv_key="not-the-priv-key"),
     "the agent answers user 'usha''s authenticated requests but drops its encrypted ones: wrong privacy key or "
     "protocol (aes)"),
    ("privacy protocol the user does not have", dict(user="usha", auth_protocol="sha", auth_key="authpass123",
                                                      priv_protocol="des", priv_key="privpass123"),
     "wrong privacy key or protocol (des)"),
    ("auth protocol the user does not have", dict(user="usha", auth_protocol="md5", auth_key="authpass123"),
     "wrong authentication key or protocol (md5) for user 'usha' (usmStatsWrongDigests)"),
    ("a level above the user's", dict(user="uauth", auth_protocol="sha", auth_key="authonly123", priv_protocol="aes",
                                      priv_key="privpass123"),
     "user 'uauth' (usmStatsUnsupportedSecLevels)"),
    ("a context the agent does not have", dict(user="usha", auth_protocol="sha", auth_key="authpass123",
                                               priv_protocol="aes", priv_key="privpass123", context="no-such-vrf"),
     "the agent answers engine discovery but nothing in context 'no-such-vrf'"),
    ("wrong engine ID", dict(user="usha", auth_protocol="sha", auth_key="authpass123", engine_id="0x80001f8880aabbccdd"),
     "is not the configured engine_id 0x80001f8880aabbccdd"),
])
def test_v3_bad_credentials_are_unknown_with_a_reason_that_names_what_failed(agent, case, settings, expected):
    r = poll(agent.port, version="3", profiles=["system"], retries=0, timeout="1s", **settings)
    assert not r.ok and not r.answered, r  # unknown time, never down (nor up)
    assert expected in r.reason, (case, r.reason)
    for secret in ("authpass123", "privpass123", "not-the-priv-key", "authonly123"):
        assert secret not in r.reason


@pytest.mark.parametrize("off", ["behind", "ahead"])
def test_v3_time_window_missed_is_resynchronised_once(agent, off):
    """Our notion of the agent's clock far off (behind: an older boot, as after the agent restarted; ahead:
    a day ahead): the agent answers notInTimeWindow with its clock, authenticated; the poller takes it and
    retries once, and the poll succeeds."""
    from probes.snmp import SnmpEngineHolder
    from probes.base import ProbeContext

    async def go():
        holder = SnmpEngineHolder()
        ctx = ProbeContext(snmp_engine=holder)
        cfg = SnmpProbeConfig(port=agent.port, version="3", user="usha", auth_protocol="sha", auth_key="authpass123",
                              priv_protocol="aes", priv_key="privpass123", profiles=["system"], retries=0)
        try:
            first = await snmp_probe("t", "127.0.0.1", cfg, context=ctx)
            engine = holder.wire._engines[("127.0.0.1", agent.port)]
            if off == "behind":
                engine.boots -= 1
            else:
                engine.time += 100_000
                engine.latest = engine.time
            second = await snmp_probe("t", "127.0.0.1", cfg, context=ctx)
            return first, second, dict(holder.wire.reports), engine.now()
        finally:
            holder.close()

    first, second, reports, now = asyncio.run(go())
    assert first.ok and second.ok, (first.reason, second.reason)
    assert reports == {"not_in_time_window": 1} and now > 0


def test_timeout_is_unknown_never_up():
    r = poll(free_port(), version="2c", community="public", profiles=["system"], retries=0, timeout="300ms")
    assert not r.ok and not r.answered and "No SNMP response received before timeout" in r.reason
    assert verdict_of([r]) == "unknown"
    icmp_ok = IcmpResult("icmp", "t", "x", 0, 0, True, sent=3, received=3, rtts=(0.001, 0.001, 0.001))
    assert verdict_of([icmp_ok, r]) == "good"  # an SNMP timeout while ICMP answers is not an outage


def test_admin_up_oper_down_interface_is_a_circuit_outage():
    ifaces = {1: {"ifName": "ge-0/0/1", "ifAdminStatus": 1, "ifOperStatus": 2}, 2: {"ifName": "ge-0/0/2", "ifAdminStatus": 2, "ifOperStatus": 2}}
    r = SnmpResult("snmp", "t", "x", 0, 0, True, None, True, {}, ifaces)
    icmp_ok = IcmpResult("icmp", "t", "x", 0, 0, True, sent=3, received=3, rtts=(0.001, 0.001, 0.001))

    def selecting(*selectors):
        return dataclasses.replace(r, selectors=selectors)

    assert verdict_of([icmp_ok, selecting("ge-0/0/1")]) == "bad"
    assert verdict_of([icmp_ok, selecting("ge-0/0/2")]) == "good"  # administratively down is not an outage
    assert verdict_of([icmp_ok, selecting("1")]) == "bad"  # by index
    # the cause, for the cycle, the outage evidence and the ticket
    assert r.cause(["ge-0/0/1"]) == "ge-0/0/1 (ifIndex 1) administratively up but operationally down (SNMP ifOperStatus)"
    assert r.cause(["ge-0/0/2"]) is None
    from monitor.events import outage_event
    from monitor.tickets.ledger import Ledger

    text = Ledger._describe(outage_event("outage_started", "c1", "t", 0.0, None, r.cause(["1"])))
    assert text.endswith("; cause: ge-0/0/1 (ifIndex 1) administratively up but operationally down (SNMP ifOperStatus)")


def test_counter_math():
    # 32-bit wrap: 4,294,967,000 -> 1,000 is 1,296 octets
    assert counter_delta(4_294_967_000, 1_000, 32) == 1_296
    assert counter_delta(10, 5, 64) is None  # a 64-bit counter reset is a gap, not a spike
    assert counter_delta(None, 5, 64) is None  # a missing sample is a gap
    assert counter_delta(100, 200, 64, reboot=True) is None
    assert rebooted(5000, 100) and not rebooted(100, 5000)
    # 125,000,000 octets in 10 s on a 1000 Mbit/s interface: 10 %
    assert utilization(0, 125_000_000, 10.0, 1000) == pytest.approx(0.1)
    assert utilization(0, 125_000_000, 10.0, None) is None


def test_daemon_exports_snmp_interface_metrics(agent, write_config, tmp_path, icmp_mode, stores):
    import signal
    import time
    import urllib.request

    from conftest import REPO, SLAWATCH

    port = free_port()
    path = write_config(f"""
storage: {stores.yaml()}
exporter: {{listen: "127.0.0.1:{port}"}}
contracts: [{{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}}}}]
targets:
  - id: r1
    contract: c1
    kind: internet
    address: 127.0.0.1
    interval: 1s
    probes:
      icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}
      snmp: {{version: 2c, community: public, port: {agent.port}, profiles: [system, if-mib], interfaces: [lo],
              timeout: 300ms}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, text = time.time() + 30, ""
        while time.time() < deadline and "slawatch_interface_utilization_ratio{" not in text:
            time.sleep(1)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert 'slawatch_snmp_up{contract="c1",kind="internet",target="r1"} 1.0' in text
    assert 'slawatch_interface_oper_status{contract="c1",ifindex="1",ifname="lo",kind="internet",target="r1"} 1.0' in text
    assert 'slawatch_interface_utilization_ratio{contract="c1",direction="in",ifindex="1",ifname="lo"' in text
    # the counter the cycle chose (ifHCInOctets on a 64-bit agent), exported as it was read
    assert 'slawatch_interface_octets_total{contract="c1",direction="in",ifindex="1",ifname="lo"' in text
    assert 'ifname="eth0"' not in text  # only the selected interface
    assert 'slawatch_snmp_datagrams_dropped_total{reason="unmatched"} 0.0' in text  # every answer matched its request
    assert 'slawatch_snmp_datagrams_dropped_total{reason="malformed"} 0.0' in text
    assert "public" not in err


IPSLA = "1.3.6.1.4.1.9.9.42.1.5.2.1"
# a scripted IP SLA jitter entry 7 (values as a Cisco gateway stores them: ms, MOS x100)
IPSLA_VALUES = {1: 100, 2: 4200, 4: 38, 5: 55, 26: 2, 27: 1, 42: 412, 43: 3, 46: 4, 47: 3, 48: 5, 49: 20, 50: 22}


@pytest.fixture(scope="module")
def ipsla_agent():
    if not shutil.which("snmpd"):
        pytest.skip("net-snmp's snmpd is not installed")
    lines = "\n".join(f"override .{IPSLA}.{col}.7 integer {value}" for col, value in IPSLA_VALUES.items())
    lines += "\noverride .1.3.6.1.4.1.99999.1.0 integer 17"
    server = Snmpd(free_port(), extra=lines).start()
    yield server
    server.stop()


def test_cisco_ipsla_profile(ipsla_agent):
    r = poll(ipsla_agent.port, version="2c", community="public", profiles=["cisco-ipsla"])
    assert r.ok and set(r.tables["cisco-ipsla"]) == {"7"}
    from probes.snmp import ipsla_figures

    f = ipsla_figures(r.tables["cisco-ipsla"]["7"])
    assert f["mos"] == pytest.approx(4.12) and f["icpif"] == 3  # MOS is stored x100
    assert f["rtt_avg_s"] == pytest.approx(0.042)  # RTTSum 4200 ms / 100 RTTs
    assert (f["jitter_sd_s"], f["jitter_ds_s"]) == (pytest.approx(0.003), pytest.approx(0.005))
    assert (f["loss_sd"], f["loss_ds"]) == (2, 1)
    assert (f["one_way_sd_s"], f["one_way_ds_s"]) == (pytest.approx(0.020), pytest.approx(0.022))


def test_user_defined_profile(ipsla_agent):
    from monitor.config import parse_config
    from probes.base import ProbeContext

    cfg = parse_config({
        "contracts": [{"id": "c", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
        "targets": [{"id": "u", "contract": "c", "kind": "internet", "address": "127.0.0.1",
                     "probes": {"snmp": {"version": "2c", "community": "public", "port": ipsla_agent.port,
                                         "profiles": ["ups"]}}}],
        "snmp_profiles": {"ups": {"scalars": {"battery": "1.3.6.1.4.1.99999.1.0"}, "tables": {"ifname": "1.3.6.1.2.1.31.1.1.1.1"}}},
    })
    ctx = ProbeContext(snmp_profiles=cfg.snmp_profiles)
    r = asyncio.run(snmp_probe("u", "127.0.0.1", cfg.targets[0].probes.snmp, context=ctx))
    assert r.ok and r.scalars["ups.battery"] == 17
    assert "lo" in {row["ifname"] for row in r.tables["ups"].values()}


def test_trap_receiver_v2c_v3_and_garbage(write_config, tmp_path, icmp_mode, stores):
    """linkDown (v2c) moves the target down at once, the next polls clear it; a v3 authPriv trap is accepted;
    a wrong community, a wrong key, an unknown source and raw garbage are counted or dropped, never fatal."""
    import signal
    import socket
    import time
    import urllib.request

    from conftest import REPO, SLAWATCH, wait_for

    if not shutil.which("snmptrap"):
        pytest.skip("net-snmp's snmptrap is not installed")
    port, trap_port = free_port(), free_port()
    path = write_config(f"""
storage: {stores.yaml(flush_interval="200ms")}
exporter: {{listen: "127.0.0.1:{port}"}}
traps:
  listen: "127.0.0.1:{trap_port}"
  community: trapcomm
  users:
    - {{user: usha, engine_id: "0x8000000001020304", auth_protocol: sha, auth_key: authpass123, priv_protocol: aes, priv_key: privpass123}}
    - {{user: u192, engine_id: "0x8000000001020304", auth_protocol: sha, auth_key: authpass192, priv_protocol: aes192, priv_key: privpass192}}
    - {{user: u256c, engine_id: "0x8000000001020304", auth_protocol: md5, auth_key: authpass256, priv_protocol: aes256c, priv_key: privpass256}}
contracts: [{{id: c1, customer: A, provider: B, objectives: {{availability: 99.9%}}}}]
targets:
  - {{id: r1, contract: c1, kind: internet, address: 127.0.0.1, interval: 4s, recovery_threshold: 1}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def metrics():
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    def trap(*args):
        subprocess.run(["snmptrap", *args, f"127.0.0.1:{trap_port}", "", *TRAP_ARGS], capture_output=True, timeout=10)

    try:
        wait_for("r1 up", lambda: 'slawatch_target_up{contract="c1",kind="internet",target="r1"} 1.0' in metrics())
        garbage = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for blob in (b"", b"\x30\x82\xff\xff" * 8, bytes(range(256))):
            garbage.sendto(blob, ("127.0.0.1", trap_port))
        # 600 more: random bytes, a v2c trap cut short, and the same with one bit flipped (seeded)
        import random

        rng = random.Random(19)
        valid = bytes.fromhex("302902010104067075626c6963a71c020200010201000201003010300e06082b06010201010300430200c8")
        for i in range(600):
            if i % 3 == 0:
                blob = rng.randbytes(rng.randint(0, 200))
            elif i % 3 == 1:
                blob = valid[:rng.randint(0, len(valid))]
            else:
                flipped = bytearray(valid)
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
                blob = bytes(flipped)
            garbage.sendto(blob, ("127.0.0.1", trap_port))
            if i % 50 == 0:
                time.sleep(0.01)
        wait_for("junk counted as malformed", lambda: any(
            line.startswith('slawatch_snmp_traps_dropped_total{reason="malformed"}') and float(line.split()[-1]) > 0
            for line in metrics().splitlines()))
        time.sleep(1)

        def bad_credentials() -> float:
            return next(float(line.split()[-1]) for line in metrics().splitlines()
                        if line.startswith("slawatch_snmp_traps_bad_credentials_total "))

        baseline = bad_credentials()  # the flipped copies carry the wrong community (public)
        TRAP_ARGS[:] = ["1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.1", "i", "1"]
        trap("-v2c", "-c", "wrong-community")
        trap("-v3", "-e", "0x8000000001020304", "-u", "usha", "-l", "authPriv", "-a", "SHA", "-A", "wrong-key-99",
             "-x", "AES", "-X", "privpass123")
        trap("-v2c", "-c", "trapcomm")
        t0 = time.time()
        wait_for("down at once on linkDown", lambda: 'slawatch_target_up{contract="c1",kind="internet",target="r1"} 0.0' in metrics(),
                 timeout=3, step=0.1)
        assert time.time() - t0 < 3
        # the next poll (ICMP answers) clears it
        wait_for("cleared by the next poll", lambda: 'slawatch_target_up{contract="c1",kind="internet",target="r1"} 1.0' in metrics(),
                 timeout=15)
        TRAP_ARGS[:] = ["1.3.6.1.6.3.1.1.5.4"]
        trap("-v3", "-e", "0x8000000001020304", "-u", "usha", "-l", "authPriv", "-a", "SHA", "-A", "authpass123",
             "-x", "AES", "-X", "privpass123")
        # AES-192 and AES-256 with keys that need extending: net-snmp's Blumenthal (AES192) and Reeder (AES256C)
        trap("-v3", "-e", "0x8000000001020304", "-u", "u192", "-l", "authPriv", "-a", "SHA", "-A", "authpass192",
             "-x", "AES192", "-X", "privpass192")
        trap("-v3", "-e", "0x8000000001020304", "-u", "u256c", "-l", "authPriv", "-a", "MD5", "-A", "authpass256",
             "-x", "AES256C", "-X", "privpass256")
        text = wait_for("four traps", lambda: (lambda m: m if "slawatch_snmp_traps_received_total 4.0" in m else None)(metrics()),
                        timeout=15)
        assert text and bad_credentials() == baseline + 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


TRAP_ARGS: list[str] = []


def test_garbage_and_truncated_answers_never_crash_the_poller():
    """A fake agent answers every request with garbage, or with the request cut short."""
    import socket
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def agent():
        sock.settimeout(0.2)
        n = 0
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            n += 1
            sock.sendto([b"\x30\x82\xff\xff garbage", data[: len(data) // 2], b"", bytes(range(256))][n % 4], addr)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    try:
        for version, extra in (("2c", {"community": "public"}), ("1", {"community": "public"})):
            r = poll(sock.getsockname()[1], version=version, profiles=["system", "if-mib"], retries=1, timeout="300ms", **extra)
            assert not r.ok and not r.answered and r.reason
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_ipv6_agent_v1_and_v2c(tmp_path):
    """The wire client's IPv6 socket, against snmpd listening on ::1 only."""
    if not shutil.which("snmpd"):
        pytest.skip("net-snmp's snmpd is not installed")
    port = free_port()
    conf = tmp_path / "snmpd.conf"
    conf.write_text(f"agentAddress udp6:[::1]:{port}\nrocommunity6 public default\nsysName six\n")
    proc = spawn(["snmpd", "-f", "-Lf", str(tmp_path / "log"), "-C", "-c", str(conf), "-p", str(tmp_path / "pid")],
                            env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if subprocess.run(["snmpget", "-v2c", "-c", "public", "-r0", "-t1", f"udp6:[::1]:{port}", "1.3.6.1.2.1.1.5.0"],
                              capture_output=True).returncode == 0:
                break
        for version in ("1", "2c"):
            r = asyncio.run(snmp_probe("t", "::1", SnmpProbeConfig(version=version, community="public", port=port,
                                                                   profiles=["system", "if-mib"])))
            assert r.ok, r.reason
            assert r.scalars["sysName"] == "six" and any(c.get("ifDescr") == "lo" for c in r.interfaces.values())
    finally:
        stop(proc)


def test_a_reload_gives_the_trap_listener_the_new_targets_addresses():
    """Traps are accepted from the targets' addresses: a target added by a reload is one from then on, a removed
    one is not (before, the listener kept the addresses of the config it started with)."""
    import asyncio
    from types import SimpleNamespace

    from monitor.config import parse_config
    from monitor.measure.traps import TrapReceiver
    from monitor.measure.trapstage import TrapStage

    def config(*addresses):
        return parse_config({"contracts": [{"id": "c1", "customer": "A", "provider": "B",
                                            "objectives": {"availability": "99.9%"}}],
                             "targets": [{"id": f"r{i}", "contract": "c1", "kind": "internet", "address": a}
                                         for i, a in enumerate(addresses, 1)]})

    first = config("127.0.0.1", "127.0.0.2")
    stage = TrapStage(first, SimpleNamespace(targets={}), None)
    stage.receiver = TrapReceiver(("127.0.0.1", 0), ["c"], [], TrapStage._sources(first), stage.on_trap)
    assert stage.receiver.sources == {"127.0.0.1": "r1", "127.0.0.2": "r2"}
    asyncio.run(stage.reload(SimpleNamespace(config=config("127.0.0.2", "127.0.0.9"))))
    assert stage.receiver.sources == {"127.0.0.2": "r1", "127.0.0.9": "r2"}


def test_probe_lines_name_interface_states_and_show_uptime_as_a_duration():
    """#27: `slawatch probe` printed "admin 1, oper 1" and sysUpTime in raw ticks."""
    from probes.snmp import SnmpResult

    r = SnmpResult("snmp", "t", "127.0.0.1", 0.0, 0.1, True, answered=True,
                   scalars={"sysUpTime": 27_790_612, "sysName": "cpe1"},
                   interfaces={2: {"ifName": "ge-0/0/2", "ifAdminStatus": 1, "ifOperStatus": 7},
                               3: {"ifName": "ge-0/0/3", "ifAdminStatus": 2, "ifOperStatus": 9}})
    assert r.lines() == ["sysName = cpe1", "sysUpTime = 3 d 5:11:46 (27790612 ticks)",
                         "interface ge-0/0/2 (ifIndex 2): admin up, oper lowerLayerDown",
                         "interface ge-0/0/3 (ifIndex 3): admin down, oper 9"]
