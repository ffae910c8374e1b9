"""MIB::name OIDs: the shipped modules, a module compiled from the user's directory, errors in the config,
and a profile written with names polling a real snmpd."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import textwrap

import pytest

from conftest import free_port
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.config.mibnames import MibError, MibResolver
from peers import Snmpd
from probes.base import ProbeContext
from probes.snmp import IF_COLUMNS, SYSTEM, snmp_probe


@pytest.fixture(scope="module")
def resolver():
    r = MibResolver()
    yield r
    r.close()


def test_shipped_if_mib_names_are_the_numbers_the_profiles_poll(resolver):
    # the if-mib profile's numeric OIDs were checked against snmpd's own walk (tests/test_snmp.py)
    for name, oid in IF_COLUMNS.items():
        assert resolver.resolve(f"IF-MIB::{name}") == oid, name
    assert resolver.resolve("IF-MIB::linkDown") == "1.3.6.1.6.3.1.1.5.3"  # RFC 3418 snmpTraps.3
    assert resolver.resolve("IF-MIB::linkUp") == "1.3.6.1.6.3.1.1.5.4"


def test_shipped_snmpv2_mib_matches_pysnmps_own_compiled_module(resolver):
    """pysnmp ships SNMPv2-MIB compiled separately (its own build of RFC 3418): an independent reference."""
    from pysnmp.smi import builder

    b = builder.MibBuilder()
    b.load_modules("SNMPv2-MIB")
    for name in ("sysDescr", "sysObjectID", "sysUpTime", "sysContact", "sysName", "sysLocation", "coldStart", "warmStart"):
        (node,) = b.import_symbols("SNMPv2-MIB", name)
        assert resolver.resolve(f"SNMPv2-MIB::{name}") == ".".join(map(str, node.name)), name
    for name, oid in SYSTEM.items():
        assert resolver.resolve(f"SNMPv2-MIB::{name}.0") == oid


def test_forms_and_errors(resolver):
    assert resolver.resolve(".1.3.6.1.2.1.1.5.0") == "1.3.6.1.2.1.1.5.0"
    assert resolver.resolve("IF-MIB::ifHCInOctets.3") == "1.3.6.1.2.1.31.1.1.1.6.3"
    with pytest.raises(MibError, match=r"IF-MIB has no object named ifHCInOctet \(did you mean ifHCInOctets"):
        resolver.resolve("IF-MIB::ifHCInOctet")
    with pytest.raises(MibError, match="MIB module NOPE-MIB not found"):
        resolver.resolve("NOPE-MIB::thing")
    with pytest.raises(MibError, match="not an OID"):
        resolver.resolve("1.3.six")


TEST_MIB = textwrap.dedent("""\
    SLAWATCH-TEST-MIB DEFINITIONS ::= BEGIN
    IMPORTS
        MODULE-IDENTITY, OBJECT-TYPE, Integer32, enterprises FROM SNMPv2-SMI;

    slawatchTestMIB MODULE-IDENTITY
        LAST-UPDATED "202611250000Z"
        ORGANIZATION "slawatch tests"
        CONTACT-INFO "none"
        DESCRIPTION "A module for the tests: one scalar under a private enterprise number."
        ::= { enterprises 99999 }

    slawatchBattery OBJECT-TYPE
        SYNTAX      Integer32
        MAX-ACCESS  read-only
        STATUS      current
        DESCRIPTION "Battery charge, percent."
        ::= { slawatchTestMIB 1 }
    END
    """)


@pytest.fixture(scope="module")
def agent():
    if not shutil.which("snmpd"):
        pytest.skip("net-snmp's snmpd is not installed (scripts/dev-setup installs snmpd)")
    server = Snmpd(free_port(), extra="override .1.3.6.1.4.1.99999.1.0 integer 87").start()
    yield server
    server.stop()


def config_with(profile: dict, tmp_path, port: int, mib_dirs=None) -> dict:
    raw = {
        "contracts": [{"id": "c", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
        "targets": [{"id": "u", "contract": "c", "kind": "internet", "address": "127.0.0.1",
                     "probes": {"icmp": None, "snmp": {"version": "2c", "community": "public", "port": port,
                                                       "profiles": ["named"]}}}],
        "snmp_profiles": {"named": profile},
    }
    if mib_dirs is not None:
        raw["mib_dirs"] = mib_dirs
    return parse_config(raw, base_dir=tmp_path)


def poll(cfg):
    ctx = ProbeContext(snmp_profiles=cfg.snmp_profiles)
    return asyncio.run(snmp_probe("u", "127.0.0.1", cfg.targets[0].probes.snmp, context=ctx))


def test_profile_written_with_names_polls_a_real_agent(agent, tmp_path):
    (tmp_path / "mibs").mkdir()
    (tmp_path / "mibs" / "SLAWATCH-TEST-MIB.txt").write_text(TEST_MIB)
    cfg = config_with({
        "scalars": {"uptime": "SNMPv2-MIB::sysUpTime.0", "battery": "SLAWATCH-TEST-MIB::slawatchBattery.0",
                    "agent": "SNMPv2-MIB::sysObjectID.0"},
        "tables": {"descr": "IF-MIB::ifDescr", "oper": "IF-MIB::ifOperStatus"},
    }, tmp_path, agent.port, mib_dirs=["mibs", "/usr/share/snmp/mibs"])
    profile = cfg.snmp_profiles["named"]
    assert profile.scalars["battery"] == "1.3.6.1.4.1.99999.1.0"  # compiled from the user's directory
    r = poll(cfg)
    assert r.ok, r.reason
    assert r.scalars["named.battery"] == 87 and isinstance(r.scalars["named.uptime"], int)
    lo = next(row for row in r.tables["named"].values() if row["descr"] == "lo")
    assert lo["oper"] == 1
    # sysObjectID of net-snmp on Linux is NET-SNMP-MIB::netSnmpAgentOIDs.10, compiled from Debian's NET-SNMP-MIB
    netsnmp = MibResolver(["/usr/share/snmp/mibs"])
    try:
        assert r.scalars["named.agent"] == netsnmp.resolve("NET-SNMP-MIB::netSnmpAgentOIDs.10")
    finally:
        netsnmp.close()
    # and the same as net-snmp's own tool reads it
    out = subprocess.run(["snmpget", "-On", "-Oqv", "-v2c", "-c", "public", f"127.0.0.1:{agent.port}", "1.3.6.1.4.1.99999.1.0"],
                         capture_output=True, text=True).stdout.strip()
    assert out == "87"


def test_config_errors_name_the_yaml_path_and_the_value(tmp_path):
    with pytest.raises(ConfigError) as info:
        config_with({"scalars": {"a": "IF-MIB::ifHCInOctet", "b": "NOPE-MIB::x", "c": "1.3.six", "d": "1.3.6.1.2.1.1.5.0"},
                     "tables": {"e": "IF-MIB::ifDescr"}}, tmp_path, 161, mib_dirs=["missing-dir"])
    problems = info.value.problems
    assert any(p.startswith("snmp_profiles.named.scalars.a: IF-MIB has no object named ifHCInOctet (did you mean "
                            "ifHCInOctets or ") and p.endswith("(got 'IF-MIB::ifHCInOctet')") for p in problems)
    assert any(p.startswith("snmp_profiles.named.scalars.b: MIB module NOPE-MIB not found (looked in ") for p in problems)
    assert any(p.startswith("snmp_profiles.named.scalars.c: not an OID") and p.endswith("(got '1.3.six')") for p in problems)
    assert "mib_dirs[0]: not a directory (got 'missing-dir')" in problems
    assert len(problems) == 4  # d and e are fine


def test_a_user_profile_cannot_take_a_shipped_name(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config({
            "snmp_profiles": {"if-mib": {"tables": {"x": "1.3.6.1.2.1.2.2.1.2"}}}}, base_dir=tmp_path)
    assert info.value.problems == ["snmp_profiles.if-mib: a shipped profile has this name (config/snmp-profiles.yaml); "
                                   "choose another"]
