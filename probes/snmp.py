"""SNMP probe: v1/v2c/v3 polling of named OID profiles (config/snmp-profiles.yaml and the config's own).

* ``system``: sysUpTime, sysName, sysDescr in one GET PDU. A sysUpTime that
  goes backwards is a reboot.
* ``if-mib``: the interface table (ifDescr, ifName, ifAlias, ifAdminStatus,
  ifOperStatus, ifHighSpeed and ifSpeed, 64-bit and 32-bit octet counters,
  errors, discards) walked with GETBULK (GETNEXT on v1), every column in the
  same PDU. The 32-bit counters are what v1 agents and agents without ifXTable
  have.
* ``cisco-ipsla``: CISCO-RTTMON-MIB's latest jitter results per IP SLA entry
  (MOS, ICPIF, RTT, jitter and loss in both directions; MOS is stored x100).
* user profiles from the config's ``snmp_profiles`` (scalars by GET, tables walked).

A target that does not answer, or answers with an error, is a result with
``ok=False`` and the reason, never an exception. Concurrency is bounded by
semaphores shared by every probe, so an agent's receive buffer never overflows.

All versions go through :mod:`probes.snmp_wire` (one shared socket, a direct BER
codec: pysnmp costs 25x more CPU per response, measured in bench/snmp_scale.py);
SNMPv3's User-based Security Model is :mod:`probes.snmp_usm` (keys cached per user
and engine, digests by hmac, ciphers by ``cryptography``). pysnmp remains only in
the trap receiver (monitor/measure/traps.py), which accepts v3 traps from many senders.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from . import snmp_usm as usm
from .base import Evidence, ProbeResult
from .settings import PositiveDuration, ProbeSettings, as_text
from .snmp_wire import GET, GETBULK, GETNEXT, Absent, Reply, WireClient

__all__ = ["SHIPPED_PROFILES", "AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "SnmpResult", "SnmpProbeConfig", "snmp_probe", "SnmpEngineHolder", "SYSTEM", "IF_COLUMNS", "IPSLA_COLUMNS", "ipsla_figures"]


def _shipped_profiles() -> dict[str, dict[str, dict[str, str]]]:
    """config/snmp-profiles.yaml (packaged as monitor/snmp-profiles.yaml)."""
    from importlib.resources import files

    import yaml

    data = yaml.safe_load((files("monitor") / "snmp-profiles.yaml").read_text(encoding="utf-8"))
    return {name: {"scalars": dict(p.get("scalars") or {}), "tables": dict(p.get("tables") or {})}
            for name, p in data.items()}


SHIPPED_PROFILES = _shipped_profiles()
SYSTEM = SHIPPED_PROFILES["system"]["scalars"]
IF_COLUMNS = SHIPPED_PROFILES["if-mib"]["tables"]
IPSLA_COLUMNS = SHIPPED_PROFILES["cisco-ipsla"]["tables"]


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


class SnmpProbeConfig(ProbeSettings):
    """An SNMP poll: version and credentials, profiles, the interfaces whose state is the circuit's."""

    version: Annotated[Literal["1", "2c", "3"], BeforeValidator(as_text)] = "2c"
    port: int = Field(161, ge=1, le=65535)
    timeout: PositiveDuration = 1.0
    retries: int = Field(1, ge=0, le=10)
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["des", "aes", "aes192", "aes256", "aes192c", "aes256c"] | None = None
    priv_key: SecretStr | None = None
    context: str = ""
    #: v3: the agent's snmpEngineID (hex) when it must be this one; discovered otherwise
    engine_id: str | None = Field(None, pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$")
    profiles: list[str] = Field(default_factory=lambda: ["system"])
    interfaces: list[Annotated[str, BeforeValidator(as_text)]] = Field(default_factory=list)
    max_repetitions: int = Field(25, ge=1, le=1000)

    @model_validator(mode="after")
    def _credentials(self) -> "SnmpProbeConfig":
        if self.version in ("1", "2c") and self.community is None:
            raise PydanticCustomError(
                "slawatch", "SNMP v{v} needs community (or community_file)", {"v": self.version}
            )
        if self.version == "3":
            if not self.user:
                raise PydanticCustomError("slawatch", "SNMP v3 needs user")
            if (self.auth_protocol is None) != (self.auth_key is None):
                raise PydanticCustomError("slawatch", "auth_protocol and auth_key go together")
            if (self.priv_protocol is None) != (self.priv_key is None):
                raise PydanticCustomError("slawatch", "priv_protocol and priv_key go together")
            if self.priv_protocol and not self.auth_protocol:
                raise PydanticCustomError("slawatch", "privacy (priv_*) needs authentication (auth_*)")
        return self

    def worst_case(self, address: str) -> tuple[float, str]:
        """The longest a poll can take with these settings at ``address``, and how that figure is made up."""
        seconds = self.timeout * (self.retries + 1)
        how = f"{self.timeout:g} s timeout x {self.retries + 1} tries"
        if self.version == "3" and self.priv_protocol:  # a silent authPriv answer is checked once without priv
            seconds += self.timeout
            how += f", {self.timeout:g} s for the v3 privacy check"
        return seconds, how


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
    #: the configured interface selectors (index, ifName, ifDescr or ifAlias) whose state is the circuit's
    selectors: tuple[str, ...] = ()

    def evidence(self) -> Evidence:
        """Secondary: a selected interface administratively up and operationally down is bad; an answering agent
        is good only when no primary probe (ICMP) ran; a silent agent is no evidence (never up)."""
        if not self.answered:
            return Evidence("none", self.reason, primary=False)
        cause = self.cause(list(self.selectors))
        if cause:
            return Evidence("bad", cause, primary=False)
        return Evidence("good" if self.ok else "none", self.reason, primary=False)

    def lines(self) -> list[str]:
        """The evidence in words, for ``slawatch probe``: interface states by their IF-MIB names, sysUpTime as a
        duration (with its raw TimeTicks)."""
        out = [f"{key} = {_shown(key, value)}" for key, value in sorted(self.scalars.items())]
        for index, cols in sorted(self.selected(list(self.selectors)).items()):
            name = cols.get("ifName") or cols.get("ifDescr") or index
            out.append(f"interface {name} (ifIndex {index}): admin {_named(_ADMIN, cols.get('ifAdminStatus'))}, "
                       f"oper {_named(_OPER, cols.get('ifOperStatus'))}")
        return out

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
        return bool(self.down_interfaces(selectors))

    def down_interfaces(self, selectors: list[str]) -> list[str]:
        """The selected interfaces that are administratively up and operationally down, by name."""
        return [f"{c.get('ifName') or c.get('ifDescr') or 'interface'} (ifIndex {index})"
                for index, c in sorted(self.selected(selectors).items())
                if c.get("ifAdminStatus") == 1 and c.get("ifOperStatus") == 2]

    def cause(self, selectors: list[str]) -> str | None:
        """The circuit-down cause in words, for the cycle, the outage evidence and the ticket."""
        down = self.down_interfaces(selectors)
        if not down:
            return None
        return f"{', '.join(down)} administratively up but operationally down (SNMP ifOperStatus)"

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for JSON output)."""
        out = ProbeResult.to_dict(self)
        out["interfaces"] = {str(k): v for k, v in self.interfaces.items()}
        return out


#: config names -> pysnmp's protocol constants (shared with the trap receiver)
AUTH_PROTOCOLS = {"md5": "usmHMACMD5AuthProtocol", "sha": "usmHMACSHAAuthProtocol", "sha224": "usmHMAC128SHA224AuthProtocol",
         "sha256": "usmHMAC192SHA256AuthProtocol", "sha384": "usmHMAC256SHA384AuthProtocol",
         "sha512": "usmHMAC384SHA512AuthProtocol"}
PRIV_PROTOCOLS = {"des": "usmDESPrivProtocol", "aes": "usmAesCfb128Protocol",
                  # net-snmp's AES-192/256 extend a short key the Blumenthal way; pysnmp's usmAesCfb192Protocol
                  # is the Reeder (Cisco) way, net-snmp's AES-192-C
                  "aes192": "usmAesBlumenthalCfb192Protocol", "aes256": "usmAesBlumenthalCfb256Protocol",
                  "aes192c": "usmAesCfb192Protocol", "aes256c": "usmAesCfb256Protocol"}


class SnmpEngineHolder:
    """What every SNMP probe of a daemon shares: the wire client (v1, v2c and v3, with the v3 agents' engines)
    and the concurrency bound, so an agent's receive buffer never overflows."""

    def __init__(self, max_concurrent: int = 128):
        self.max_concurrent = max_concurrent
        self.wire = WireClient()
        self.semaphore = asyncio.Semaphore(max_concurrent)
        #: (address, port, first column) -> rows seen on the last walk; the next walk asks for one row more
        #: than that, so a steady table ends in one GETBULK instead of decoding max-repetitions rows
        self.table_rows: dict[tuple[str, int, str], int] = {}

    def close(self) -> None:
        """Close the SNMP engine's sockets."""
        self.wire.close()


class _Session:
    """One poll's requests to one agent. Counts the PDUs sent and whether the agent answered at all; the
    subclasses say how a request travels."""

    def __init__(self, holder: SnmpEngineHolder, address: str, settings: Any):
        self.holder, self.address, self.settings = holder, address, settings
        self.where = f"{settings.version} to {address}:{settings.port}"
        self.pdus = 0
        self.answered = False

    async def _send(self, kind: int, oids: list[str], repetitions: int) -> Reply:
        raise NotImplementedError

    async def _ask(self, kind: int, oids: list[str], repetitions: int = 0) -> Reply:
        reply = await self._send(kind, oids, repetitions)
        self.pdus += 1
        self.answered = self.answered or reply.error is None
        return reply

    async def get(self, oids: list[str]) -> Reply:
        return await self._ask(GET, oids)

    async def next(self, oids: list[str]) -> Reply:
        return await self._ask(GETNEXT, oids)

    async def bulk(self, oids: list[str], repetitions: int) -> Reply:
        return await self._ask(GETBULK, oids, repetitions)


class _WireSession(_Session):
    """v1/v2c requests through the shared wire client."""

    def __init__(self, holder: SnmpEngineHolder, address: str, settings: Any):
        super().__init__(holder, address, settings)
        self.version = 0 if settings.version == "1" else 1
        self.community = settings.community.get_secret_value().encode()

    async def _send(self, kind: int, oids: list[str], repetitions: int) -> Reply:
        s = self.settings
        return await self.holder.wire.request(self.address, s.port, self.version, self.community, kind, oids,
                                              timeout=s.timeout, retries=s.retries, max_repetitions=repetitions)


class _V3Session(_Session):
    """SNMPv3 requests through the same wire client: USM (keys, digests, privacy) in probes/snmp_usm.py."""

    def __init__(self, holder: SnmpEngineHolder, address: str, settings: Any):
        super().__init__(holder, address, settings)
        self.where = f"v3 ({settings.user}) to {address}:{settings.port}"
        self.user = usm.UsmUser(
            settings.user.encode(), settings.auth_protocol,
            settings.auth_key.get_secret_value().encode() if settings.auth_key else b"",
            settings.priv_protocol, settings.priv_key.get_secret_value().encode() if settings.priv_key else b"")
        self.context = settings.context.encode()
        pin = getattr(settings, "engine_id", None)
        self.engine_id = bytes.fromhex(pin.removeprefix("0x")) if pin else None

    async def _send(self, kind: int, oids: list[str], repetitions: int) -> Reply:
        s = self.settings
        return await self.holder.wire.request_v3(self.address, s.port, self.user, self.context, kind, oids,
                                                 timeout=s.timeout, retries=s.retries,
                                                 max_repetitions=repetitions, engine_id=self.engine_id)


class _Failed(Exception):
    """Ends a poll early with the reason (whether the agent answered anything is the session's)."""


def _check(session: _Session, reply: Reply) -> None:
    if reply.error:
        raise _Failed(f"SNMP {session.where}: {reply.error}")
    if reply.status and reply.status != "noSuchName":  # v1 says noSuchName past the end of the MIB
        raise _Failed(f"SNMP error {reply.status} at {reply.index} from {session.where}")


async def _get(session: _Session, oids: dict[str, str]) -> dict[str, Any]:
    """Scalars by name in one GET PDU (split in halves while the agent says tooBig)."""
    reply = await session.get(list(oids.values()))
    if reply.status == "tooBig" and len(oids) > 1:
        items = list(oids.items())
        half = len(items) // 2
        return {**await _get(session, dict(items[:half])), **await _get(session, dict(items[half:]))}
    if reply.status == "noSuchName":  # v1: one of the scalars does not exist
        raise _Failed(f"SNMP error noSuchName at {reply.index} from {session.where}")
    _check(session, reply)
    return {name: (None if isinstance(value, Absent) else value) for name, (_oid, value) in zip(oids, reply.binds)}


async def _walk(session: _Session, columns: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Walk table columns together (GETBULK, GETNEXT on v1): row index -> column -> value."""
    settings, holder = session.settings, session.holder
    rows: dict[str, dict[str, Any]] = {}
    cursor = dict(columns)
    size_key = (session.address, settings.port, next(iter(columns.values())))
    known = holder.table_rows.get(size_key)
    repetitions = settings.max_repetitions if known is None else max(1, min(settings.max_repetitions, known + 1))
    while cursor:
        names = list(cursor)
        oids = [cursor[n] for n in names]
        if settings.version == "1":
            reply = await session.next(oids)
        else:
            reply = await session.bulk(oids, repetitions)
        if reply.status == "tooBig" and repetitions > 1 and settings.version != "1":
            repetitions = max(1, repetitions // 2)
            continue
        _check(session, reply)
        repetitions = settings.max_repetitions  # a table that grew: walk the rest at full size
        ended: set[str] = set()
        progressed = False
        binds = [] if reply.status else reply.binds
        for row_start in range(0, len(binds), len(names)):  # GETBULK answers row by row
            for name, (oid, value) in zip(names, binds[row_start:row_start + len(names)]):
                if name in ended:
                    continue
                prefix = columns[name] + "."
                if not oid.startswith(prefix) or isinstance(value, Absent):
                    ended.add(name)
                    continue
                rows.setdefault(oid[len(prefix):], {})[name] = value
                cursor[name] = oid
                progressed = True
        for name in ended:
            cursor.pop(name, None)
        if not progressed:
            break
    holder.table_rows[size_key] = len(rows)
    return rows


async def snmp_probe(target_id: str, address: str, settings: SnmpProbeConfig, *, context: Any = None) -> SnmpResult:
    """The registered ``snmp`` probe: the profiles' scalars and tables from the agent."""
    shared = getattr(context, "snmp_engine", None)
    own = shared is None
    holder: SnmpEngineHolder = SnmpEngineHolder() if shared is None else shared
    started, t0 = time.time(), time.perf_counter()
    scalars: dict[str, Any] = {}
    interfaces: dict[int, dict[str, Any]] = {}
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    session = (_V3Session if settings.version == "3" else _WireSession)(holder, address, settings)

    def result(ok: bool, reason: str | None) -> SnmpResult:
        return SnmpResult("snmp", target_id, address, started, time.perf_counter() - t0, ok, reason,
                          ok or session.answered, scalars, interfaces, session.pdus, tables,
                          tuple(str(i) for i in settings.interfaces or ()))

    try:
        async with holder.semaphore:
            if "system" in settings.profiles:
                scalars.update(await _get(session, SYSTEM))
            if "if-mib" in settings.profiles:
                rows = await _walk(session, IF_COLUMNS)
                interfaces.update({int(k): v for k, v in rows.items() if k.isdigit()})
            user_profiles = getattr(context, "snmp_profiles", None) or {}
            for name in settings.profiles:
                if name in ("system", "if-mib"):
                    continue
                if name == "cisco-ipsla":
                    tables_wanted, scalars_wanted = {"cisco-ipsla": IPSLA_COLUMNS}, {}
                else:
                    profile = user_profiles[name]
                    tables_wanted = {name: dict(profile.tables)} if profile.tables else {}
                    scalars_wanted = dict(profile.scalars)
                if scalars_wanted:
                    got = await _get(session, scalars_wanted)
                    scalars.update({f"{name}.{key}": value for key, value in got.items()})
                for table, columns in tables_wanted.items():
                    tables[table] = await _walk(session, columns)
        answered = result(True, None)
        # the agent answered (ok); a selected interface down is the circuit's cause, kept as the reason
        return dataclasses.replace(answered, reason=answered.cause(list(settings.interfaces or [])))
    except _Failed as failed:
        return result(False, str(failed))
    finally:
        if own:
            holder.close()


#: IF-MIB's ifAdminStatus and ifOperStatus values (RFC 2863)
_ADMIN = {1: "up", 2: "down", 3: "testing"}
_OPER = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}


def _named(names: dict[int, str], value: Any) -> str:
    """An enumerated status by its MIB name (the number when the agent sent one the MIB does not define)."""
    return names.get(value, str(value)) if isinstance(value, int) else str(value)


def _shown(key: str, value: Any) -> str:
    """A scalar for people: sysUpTime's TimeTicks (hundredths of a second) as days and h:mm:ss."""
    if key == "sysUpTime" and isinstance(value, int):
        days, rest = divmod(value // 100, 86400)
        clock = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        return f"{days} d {clock} ({value} ticks)" if days else f"{clock} ({value} ticks)"
    return str(value)
