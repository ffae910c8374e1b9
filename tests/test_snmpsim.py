"""SNMP against snmpsim agents with scripted values: many agents at once, rising counters, a 32-bit wrap, a reboot,
delays and timeouts. The daemon's own cycle code (run_cycle) turns the polls into state and utilization."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from conftest import free_port
from monitor.config.loader import parse_config
from monitor.measure.cycle import run_cycle
from monitor.measure.live import TargetLive
from monitor.measure.state import TargetTracker
from peers import SnmpSim
from probes.base import ProbeContext
from probes.snmp import SnmpEngineHolder

pytestmark = pytest.mark.skipif(not shutil.which("snmpget"), reason="net-snmp's tools are not installed (scripts/dev-setup)")

IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0|67:numeric|rate=100,min=0"  # ticks since the simulator (re)started


def snmprec(records: list[str]) -> str:
    """snmpsim wants its records in OID order."""
    return "\n".join(sorted(records, key=lambda r: tuple(int(a) for a in r.split("|", 1)[0].split("."))))


def agent(name: str, interfaces: int = 4, down: tuple[int, ...] = (), hc_in: str = "70|1000", in32: str = "65|1000",
          high_speed: int | None = 1000, speed: int = 1_000_000_000, uptime: str = SYS_UPTIME) -> str:
    rec = [uptime, f"1.3.6.1.2.1.1.5.0|4|{name}", f"1.3.6.1.2.1.1.1.0|4|simulated {name}"]
    for i in range(1, interfaces + 1):
        rec += [f"{IF}.2.{i}|4|eth{i}", f"{IF}.5.{i}|66|{speed}", f"{IF}.7.{i}|2|1", f"{IF}.8.{i}|2|{2 if i in down else 1}",
                f"{IF}.10.{i}|{in32}", f"{IF}.13.{i}|65|0", f"{IF}.14.{i}|65|{i}", f"{IF}.16.{i}|65|500",
                f"{IF}.19.{i}|65|0", f"{IF}.20.{i}|65|0"]
        if high_speed is not None:
            rec += [f"{IFX}.1.{i}|4|ge-0/0/{i}", f"{IFX}.6.{i}|{hc_in}", f"{IFX}.10.{i}|70|500",
                    f"{IFX}.15.{i}|66|{high_speed}", f"{IFX}.18.{i}|4|{name} circuit {i}"]
    return snmprec(rec)


def setup(addresses: list[str], community_of, port: int, interfaces: list[str] | None = None, timeout: str = "1s"):
    """A config with one SNMP-only target per address (so SNMP alone decides), and their live state."""
    raw = {
        "version": 1,
        "contracts": [{"id": "c", "customer": "x", "provider": "y", "timezone": "UTC", "objectives": {"availability": "99%"}}],
        "targets": [{"id": f"t{i}", "contract": "c", "kind": "internet", "address": a, "interval": "10s",
                     "probes": {"icmp": None, "snmp": {"version": "2c", "community": community_of(i), "port": port, "timeout": timeout,
                                         "retries": 0, "profiles": ["system", "if-mib"], "interfaces": interfaces or []}}}
                    for i, a in enumerate(addresses)],
    }
    cfg = parse_config(raw)
    lives = {t.id: TargetLive(t.id, "c", "internet", TargetTracker(t.id, failure_threshold=1, recovery_threshold=1))
             for t in cfg.targets}
    return cfg, lives


async def cycle(cfg, lives, ctx):
    contract = cfg.contracts[0]
    return await asyncio.gather(*(run_cycle(t, contract, lives[t.id], ctx) for t in cfg.targets))


def test_many_simulated_agents_each_answer_with_their_own_data():
    n, port = 40, free_port()
    addresses = [f"127.21.1.{i + 1}" for i in range(n)]
    sim = SnmpSim([(a, port) for a in addresses],
                  {f"agent{i}": agent(f"agent{i}", down=(2,) if i % 10 == 3 else ()) for i in range(n)}).start()
    try:
        cfg, lives = setup(addresses, lambda i: f"agent{i}", port, interfaces=["ge-0/0/2"])

        async def run():
            ctx = ProbeContext(snmp_engine=SnmpEngineHolder(max_concurrent=16))
            try:
                return await cycle(cfg, lives, ctx)
            finally:
                ctx.snmp_engine.close()

        outcomes = asyncio.run(run())
    finally:
        sim.stop()
    for i, out in enumerate(outcomes):
        snmp = out.results[0]
        assert snmp.ok, snmp.reason
        assert snmp.scalars["sysName"] == f"agent{i}" and sorted(snmp.interfaces) == [1, 2, 3, 4]
        assert snmp.interfaces[3]["ifAlias"] == f"agent{i} circuit 3" and snmp.interfaces[4]["ifInErrors"] == 4
        # the selected circuit (ge-0/0/2) is admin up / oper down on every tenth agent: an outage of that circuit
        assert out.verdict == ("bad" if i % 10 == 3 else "good")
        assert (lives[f"t{i}"].tracker.state == "down") == (i % 10 == 3)
        if i % 10 == 3:  # the outage has its cause in the cycle and the evidence (it was null)
            assert snmp.reason and "ge-0/0/2 (ifIndex 2) administratively up but operationally down" in snmp.reason
            assert lives[f"t{i}"].first_bad["reason"] == snmp.reason
        else:
            assert snmp.reason is None


def run_polls(sim: SnmpSim, cfg, lives, waits: list[float], between=None) -> list:
    """Poll every target once, then again after each wait (calling ``between(k)`` first, if given)."""

    async def run():
        ctx = ProbeContext(snmp_engine=SnmpEngineHolder())
        outs = [await cycle(cfg, lives, ctx)]
        for k, wait in enumerate(waits):
            if between:
                await asyncio.to_thread(between, k)
            await asyncio.sleep(wait)
            outs.append(await cycle(cfg, lives, ctx))
        ctx.snmp_engine.close()
        return outs

    return asyncio.run(run())


def test_rising_64bit_counter_gives_utilization_over_the_real_elapsed_time():
    port = free_port()
    # 12,500,000 octets/s on a 1000 Mbit/s interface: 10 %; a second agent at 2.5 % on ifSpeed only (no ifHighSpeed)
    sim = SnmpSim([("127.21.2.1", port), ("127.21.2.2", port)], {
        "fast": agent("fast", hc_in="70:numeric|rate=12500000,initial=1000000000000"),
        "slow": agent("slow", high_speed=None, speed=100_000_000, in32="65:numeric|rate=312500,initial=5"),
    }).start()
    try:
        cfg, lives = setup(["127.21.2.1", "127.21.2.2"], lambda i: ["fast", "slow"][i], port)
        outs = run_polls(sim, cfg, lives, [2.0])
    finally:
        sim.stop()
    first, second = outs
    assert all(o.results[0].ok for o in first + second)
    fast0, fast1 = first[0].results[0].interfaces[1], second[0].results[0].interfaces[1]
    assert fast1["ifHCInOctets"] > fast0["ifHCInOctets"] > 1_000_000_000_000
    assert lives["t0"].snmp_interfaces[1]["utilization_in"] == pytest.approx(0.10, rel=0.03)
    assert lives["t1"].snmp_interfaces[1]["utilization_in"] == pytest.approx(0.025, rel=0.03)
    assert "ifHCInOctets" not in second[1].results[0].interfaces[1]  # the 32-bit counter was what it had


def test_32bit_counter_wrap_is_added_back_not_a_spike():
    port = free_port()
    rate = 1_250_000  # octets/s: 10 % of 100 Mbit/s
    wrap_at = time.time() + 15  # after the simulator is up (about 3 s here) and the first poll is in
    initial = (-wrap_at * rate) % 4294967295  # snmpsim wraps at max (2**32 - 1): (t * rate + initial) % max
    sim = SnmpSim([("127.21.3.1", port)], {
        "wrap": agent("wrap", high_speed=None, speed=100_000_000,
                      in32=f"65:numeric|rate={rate},initial={initial:.0f},atime=1,wrap=1,max=4294967295"),
    }).start()
    try:
        cfg, lives = setup(["127.21.3.1"], lambda i: "wrap", port)
        assert wrap_at - time.time() > 2.5, "snmpsim started too late for the scripted wrap"
        first_wait = wrap_at - 2 - time.time()

        async def run():
            await asyncio.sleep(first_wait)
            ctx = ProbeContext(snmp_engine=SnmpEngineHolder())
            a = await cycle(cfg, lives, ctx)
            util_before = lives["t0"].snmp_interfaces[1].get("utilization_in")
            await asyncio.sleep(4.0)
            b = await cycle(cfg, lives, ctx)
            ctx.snmp_engine.close()
            return a, b, util_before

        a, b, util_before = asyncio.run(run())
    finally:
        sim.stop()
    v1, v2 = a[0].results[0].interfaces[1]["ifInOctets"], b[0].results[0].interfaces[1]["ifInOctets"]
    assert v2 < v1, "the counter must have wrapped between the polls"
    assert util_before is None  # the first sample has nothing to compare with
    assert lives["t0"].snmp_interfaces[1]["utilization_in"] == pytest.approx(0.10, rel=0.03)
    assert lives["t0"].snmp_reboots == 0


def test_reboot_between_polls_is_a_gap_not_a_spike():
    port = free_port()
    # a 32-bit counter that restarts from 0 with the agent: read naively, the drop looks like a wrap (a spike)
    sim = SnmpSim([("127.21.4.1", port)], {
        "rb": agent("rb", high_speed=None, speed=100_000_000, in32="65:numeric|rate=1250000,initial=0"),
    }).start()
    try:
        cfg, lives = setup(["127.21.4.1"], lambda i: "rb", port)
        # polls at about 1 s and 4 s of uptime, the reboot, then polls at about 1 s and 3 s of the new uptime
        outs = run_polls(sim, cfg, lives, [3.0, 1.0, 2.0], between=lambda k: sim.reboot() if k == 1 else None)
    finally:
        sim.stop()
    first, before, after, later = (o[0].results[0] for o in outs)
    assert before.interfaces[1]["utilization_in"] == pytest.approx(0.10, rel=0.03)
    assert after.scalars["sysUpTime"] < before.scalars["sysUpTime"]
    assert lives["t0"].snmp_reboots == 1
    # the poll after the reboot has no utilization (a gap); the one after that is back to 10 %
    # (kept per poll in the cycle outcome's own copy of the interface table)
    assert after.interfaces[1].get("utilization_in") is None
    assert later.interfaces[1]["utilization_in"] == pytest.approx(0.10, rel=0.03)
    assert all(o[0].verdict == "good" for o in outs)  # a reboot that came back in time is not an outage by itself


def test_slow_agent_within_timeout_answers_and_beyond_it_is_unknown():
    port = free_port()
    slow = agent("slow").replace("1.3.6.1.2.1.1.5.0|4|slow", "1.3.6.1.2.1.1.5.0|4:delay|value=slow,wait=400")
    dead = agent("dead").replace("1.3.6.1.2.1.1.5.0|4|dead", "1.3.6.1.2.1.1.5.0|4:delay|value=dead,wait=3000")
    # two simulators: snmpsim's delay holds its whole process, and the slow agent must not wait behind the dead one
    sim = SnmpSim([("127.21.5.1", port)], {"slow": slow}).start()
    sim2 = SnmpSim([("127.21.5.2", port)], {"dead": dead}).start()
    try:
        cfg, lives = setup(["127.21.5.1", "127.21.5.2"], lambda i: ["slow", "dead"][i], port, timeout="1s")

        async def run():
            ctx = ProbeContext(snmp_engine=SnmpEngineHolder())
            try:
                return await cycle(cfg, lives, ctx)
            finally:
                ctx.snmp_engine.close()

        ok, late = asyncio.run(run())
    finally:
        sim.stop()
        sim2.stop()
    assert ok.results[0].ok, ok.results[0].reason
    assert ok.results[0].scalars["sysName"] == "slow" and ok.results[0].duration >= 0.4
    r = late.results[0]
    assert not r.ok and not r.answered and "No SNMP response received before timeout" in r.reason
    assert late.verdict == "unknown" and lives["t1"].tracker.state != "down"  # never up, never an outage
    assert lives["t1"].snmp_up is False
