"""SNMP probe (pysnmp 7, asyncio): v1/v2c/v3 polling of named OID profiles.

* ``system``: sysUpTime, sysName, sysDescr in one GET PDU. A sysUpTime that
  goes backwards is a reboot.
* ``if-mib``: the interface table (ifDescr, ifName, ifAlias, ifAdminStatus,
  ifOperStatus, ifHighSpeed, 64-bit octet counters, errors, discards) walked
  with GETBULK (GETNEXT on v1), every column in the same PDU.

A target that does not answer, or answers with an error, is a result with
``ok=False`` and the reason, never an exception. Concurrency is bounded by a
semaphore shared by the engine, so an agent's receive buffer never overflows.

* ``cisco-ipsla``: CISCO-RTTMON-MIB's latest jitter results per IP SLA entry
  (MOS, ICPIF, RTT, jitter and loss in both directions; MOS is stored x100).
* user profiles from the config's ``snmp_profiles`` (scalars by GET, tables walked).

Not yet here (issue #4): ``MIB::name`` OIDs and the trap receiver.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from .base import ProbeResult

__all__ = ["AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "SnmpResult", "snmp_probe", "SnmpEngineHolder", "PROFILE_OIDS", "IF_COLUMNS", "IPSLA_COLUMNS", "ipsla_figures"]

SYSTEM = {"sysDescr": "1.3.6.1.2.1.1.1.0", "sysUpTime": "1.3.6.1.2.1.1.3.0", "sysName": "1.3.6.1.2.1.1.5.0"}
IF_COLUMNS = {
    "ifDescr": "1.3.6.1.2.1.2.2.1.2",
    "ifAdminStatus": "1.3.6.1.2.1.2.2.1.7",
    "ifOperStatus": "1.3.6.1.2.1.2.2.1.8",
    "ifInErrors": "1.3.6.1.2.1.2.2.1.14",
    "ifOutErrors": "1.3.6.1.2.1.2.2.1.20",
    "ifInDiscards": "1.3.6.1.2.1.2.2.1.13",
    "ifOutDiscards": "1.3.6.1.2.1.2.2.1.19",
    "ifName": "1.3.6.1.2.1.31.1.1.1.1",
    "ifHCInOctets": "1.3.6.1.2.1.31.1.1.1.6",
    "ifHCOutOctets": "1.3.6.1.2.1.31.1.1.1.10",
    "ifHighSpeed": "1.3.6.1.2.1.31.1.1.1.15",
    "ifAlias": "1.3.6.1.2.1.31.1.1.1.18",
}
#: CISCO-RTTMON-MIB rttMonLatestJitterOperEntry (1.3.6.1.4.1.9.9.42.1.5.2.1), indexed by the IP SLA entry
IPSLA_BASE = "1.3.6.1.4.1.9.9.42.1.5.2.1"
IPSLA_COLUMNS = {
    "NumOfRTT": f"{IPSLA_BASE}.1", "RTTSum": f"{IPSLA_BASE}.2", "RTTMin": f"{IPSLA_BASE}.4", "RTTMax": f"{IPSLA_BASE}.5",
    "PacketLossSD": f"{IPSLA_BASE}.26", "PacketLossDS": f"{IPSLA_BASE}.27",
    "MOS": f"{IPSLA_BASE}.42", "ICPIF": f"{IPSLA_BASE}.43", "AvgJitter": f"{IPSLA_BASE}.46",
    "AvgSDJ": f"{IPSLA_BASE}.47", "AvgDSJ": f"{IPSLA_BASE}.48", "OWAvgSD": f"{IPSLA_BASE}.49", "OWAvgDS": f"{IPSLA_BASE}.50",
}
PROFILE_OIDS = {"system": SYSTEM, "if-mib": IF_COLUMNS, "cisco-ipsla": IPSLA_COLUMNS}


def ipsla_figures(row: dict) -> dict:
    """One IP SLA jitter entry in base units: MOS is stored x100, times in ms."""
    n = row.get("NumOfRTT") or 0
    ms = 1000.0
    return {
        "mos": None if row.get("MOS") in (None, 0) else row["MOS"] / 100,
        "icpif": row.get("ICPIF"),
        "rtt_avg_s": (row["RTTSum"] / n / ms) if n and row.get("RTTSum") is not None else None,
        "jitter_sd_s": None if row.get("AvgSDJ") is None else row["AvgSDJ"] / ms,
        "jitter_ds_s": None if row.get("AvgDSJ") is None else row["AvgDSJ"] / ms,
        "loss_sd": row.get("PacketLossSD"), "loss_ds": row.get("PacketLossDS"),
        "one_way_sd_s": None if row.get("OWAvgSD") is None else row["OWAvgSD"] / ms,
        "one_way_ds_s": None if row.get("OWAvgDS") is None else row["OWAvgDS"] / ms,
    }


@dataclass(frozen=True, slots=True)
class SnmpResult(ProbeResult):
    """``scalars``: name -> value; ``interfaces``: ifIndex -> column name -> value. ``answered`` is False
    when the agent did not answer at all (unknown, never up)."""

    answered: bool = False
    scalars: dict[str, Any] = field(default_factory=dict)
    interfaces: dict[int, dict[str, Any]] = field(default_factory=dict)
    pdus: int = 0
    #: other table profiles (cisco-ipsla, user tables): profile -> row index -> column -> value
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def selected(self, selectors: list[str]) -> dict[int, dict[str, Any]]:
        """Interfaces selected by index, ifName, ifDescr or ifAlias (all when no selector)."""
        if not selectors:
            return self.interfaces
        out = {}
        for index, cols in self.interfaces.items():
            names = {str(index), str(cols.get("ifName", "")), str(cols.get("ifDescr", "")), str(cols.get("ifAlias", ""))}
            if names & set(selectors):
                out[index] = cols
        return out

    def circuit_down(self, selectors: list[str]) -> bool:
        """An administratively up (1) and operationally down (2) selected interface: the circuit is down."""
        return any(c.get("ifAdminStatus") == 1 and c.get("ifOperStatus") == 2 for c in self.selected(selectors).values())

    def to_dict(self) -> dict[str, Any]:
        out = ProbeResult.to_dict(self)
        out["interfaces"] = {str(k): v for k, v in self.interfaces.items()}
        return out


#: config names -> pysnmp's protocol constants (shared with the trap receiver)
AUTH_PROTOCOLS = {"md5": "usmHMACMD5AuthProtocol", "sha": "usmHMACSHAAuthProtocol", "sha224": "usmHMAC128SHA224AuthProtocol",
         "sha256": "usmHMAC192SHA256AuthProtocol", "sha384": "usmHMAC256SHA384AuthProtocol",
         "sha512": "usmHMAC384SHA512AuthProtocol"}
PRIV_PROTOCOLS = {"des": "usmDESPrivProtocol", "aes": "usmAesCfb128Protocol", "aes192": "usmAesCfb192Protocol",
         "aes256": "usmAesCfb256Protocol"}


class SnmpEngineHolder:
    """One pysnmp engine and one concurrency bound, shared by every SNMP probe of a daemon."""

    def __init__(self, max_concurrent: int = 128):
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        self.engine = SnmpEngine()
        self.semaphore = asyncio.Semaphore(max_concurrent)

    def close(self) -> None:
        try:
            self.engine.close_dispatcher()
        except Exception:  # pragma: no cover - best effort at shutdown
            pass


def _auth_data(settings):
    from pysnmp.hlapi.v3arch import asyncio as hl

    if settings.version in ("1", "2c"):
        return hl.CommunityData(settings.community.get_secret_value(), mpModel=0 if settings.version == "1" else 1)
    kwargs = {}
    if settings.auth_protocol:
        kwargs["authKey"] = settings.auth_key.get_secret_value()
        kwargs["authProtocol"] = getattr(hl, AUTH_PROTOCOLS[settings.auth_protocol])
    if settings.priv_protocol:
        kwargs["privKey"] = settings.priv_key.get_secret_value()
        kwargs["privProtocol"] = getattr(hl, PRIV_PROTOCOLS[settings.priv_protocol])
    return hl.UsmUserData(settings.user, **kwargs)


def _value(v) -> Any:
    from pysnmp.proto.rfc1902 import Counter32, Counter64, Gauge32, Integer, Integer32, TimeTicks, Unsigned32

    if isinstance(v, (Counter32, Counter64, Gauge32, Integer, Integer32, TimeTicks, Unsigned32)):
        return int(v)
    return v.prettyPrint()


async def snmp_probe(target_id: str, address: str, settings: Any, *, context: Any = None) -> SnmpResult:
    from pysnmp.hlapi.v3arch import asyncio as hl

    holder = getattr(context, "snmp_engine", None)
    own = holder is None
    if own:
        holder = SnmpEngineHolder()
    started, t0 = time.time(), time.perf_counter()
    scalars: dict[str, Any] = {}
    interfaces: dict[int, dict[str, Any]] = {}
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    pdus = 0

    def result(ok: bool, reason: str | None, answered: bool) -> SnmpResult:
        return SnmpResult("snmp", target_id, address, started, time.perf_counter() - t0, ok, reason, answered,
                          scalars, interfaces, pdus, tables)

    try:
        async with holder.semaphore:
            try:
                transport = await hl.UdpTransportTarget.create((address, settings.port), timeout=settings.timeout,
                                                               retries=settings.retries)
            except Exception as exc:  # resolution failures and the like
                return result(False, f"SNMP transport to {address}:{settings.port}: {exc}", False)
            auth = _auth_data(settings)
            ctx = hl.ContextData(contextName=settings.context)
            if "system" in settings.profiles:
                oids = list(SYSTEM.items())
                err, status, index, binds = await hl.get_cmd(holder.engine, auth, transport, ctx,
                                                             *(hl.ObjectType(hl.ObjectIdentity(o)) for _, o in oids))
                pdus += 1
                if err:
                    return result(False, f"SNMP {settings.version} to {address}:{settings.port}: {err}", False)
                if status:
                    return result(False, f"SNMP error {status.prettyPrint()} at {index}", True)
                for (name, _), (_oid, value) in zip(oids, binds):
                    scalars[name] = _value(value)
            async def walk(columns: dict[str, str]) -> tuple[dict[str, dict[str, Any]], str | None]:
                """Walk table columns together (GETBULK, GETNEXT on v1): row index -> column -> value."""
                nonlocal pdus
                rows: dict[str, dict[str, Any]] = {}
                cursor = dict(columns)
                while cursor:
                    names = list(cursor)
                    request = [hl.ObjectType(hl.ObjectIdentity(cursor[n])) for n in names]
                    if settings.version == "1":
                        err, status, index, binds = await hl.next_cmd(holder.engine, auth, transport, ctx, *request)
                    else:
                        err, status, index, binds = await hl.bulk_cmd(holder.engine, auth, transport, ctx, 0,
                                                                      settings.max_repetitions, *request)
                    pdus += 1
                    if err:
                        return rows, f"SNMP {settings.version} to {address}:{settings.port}: {err}"
                    if status and status.prettyPrint() != "noSuchName":
                        return rows, f"SNMP error {status.prettyPrint()} at {index}"
                    binds = list(binds)
                    ended: set[str] = set()
                    progressed = False
                    for row_start in range(0, len(binds), len(names)):  # GETBULK answers row by row
                        for name, (oid, value) in zip(names, binds[row_start:row_start + len(names)]):
                            if name in ended:
                                continue
                            text = str(oid)
                            if not text.startswith(columns[name] + ".") or value.__class__.__name__ in (
                                    "EndOfMibView", "NoSuchObject", "NoSuchInstance"):
                                ended.add(name)
                                continue
                            rows.setdefault(text[len(columns[name]) + 1:], {})[name] = _value(value)
                            cursor[name] = text
                            progressed = True
                    for name in ended:
                        cursor.pop(name, None)
                    if not progressed:
                        break
                return rows, None

            if "if-mib" in settings.profiles:
                rows, problem = await walk(IF_COLUMNS)
                if problem:
                    return result(False, problem, bool(scalars))
                interfaces.update({int(k): v for k, v in rows.items() if k.isdigit()})
            user_profiles = getattr(context, "snmp_profiles", None) or {}
            for name in settings.profiles:
                if name in ("system", "if-mib"):
                    continue
                if name == "cisco-ipsla":
                    tables_wanted = {"cisco-ipsla": IPSLA_COLUMNS}
                    scalars_wanted = {}
                else:
                    profile = user_profiles[name]
                    tables_wanted = {name: dict(profile.tables)} if profile.tables else {}
                    scalars_wanted = dict(profile.scalars)
                if scalars_wanted:
                    err, status, index, binds = await hl.get_cmd(
                        holder.engine, auth, transport, ctx,
                        *(hl.ObjectType(hl.ObjectIdentity(o)) for o in scalars_wanted.values()))
                    pdus += 1
                    if err or status:
                        return result(False, f"SNMP {settings.version} to {address}:{settings.port}: {err or status.prettyPrint()}",
                                      bool(scalars))
                    for key, (_oid, value) in zip(scalars_wanted, binds):
                        scalars[f"{name}.{key}"] = _value(value)
                for table, columns in tables_wanted.items():
                    rows, problem = await walk(columns)
                    if problem:
                        return result(False, problem, bool(scalars))
                    tables[table] = rows
        return result(True, None, True)
    finally:
        if own:
            holder.close()
