"""SNMP trap receiver (v2c and v3) on a configurable address.

linkDown, linkUp, coldStart and warmStart (and configured OIDs) from a known
target's address are handed to ``on_trap(target_id, kind, varbinds)``.
Traps from unknown sources, with a wrong community or wrong v3 credentials,
or that do not parse at all are counted and dropped; none of them can crash
the receiver.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from probes.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS

from monitor.measure.writer import RateLimited

__all__ = ["TrapReceiver", "TRAP_KINDS"]

log = logging.getLogger("slawatch.traps")

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
TRAP_KINDS = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
}
class TrapReceiver:
    """Receives SNMP v2c and v3 traps on a UDP listener and hands link and restart traps to the daemon."""

    def __init__(self, listen: tuple[str, int], communities: list[str], users: list[dict], sources: dict[str, str],
                 on_trap: Callable[[str, str, dict], None], extra_oids: dict[str, str] | None = None):
        self.listen = listen
        self.communities = communities
        self.users = users  # {user, auth_protocol, auth_key, priv_protocol, priv_key, engine_id}
        self.sources = sources  # source address -> target id
        self.on_trap = on_trap
        self.kinds = {**TRAP_KINDS, **{oid: name for name, oid in (extra_oids or {}).items()}}
        self.received = 0
        self.unknown_source = 0
        self.ignored = 0
        #: datagrams that do not decode as SNMP (pysnmp raised while parsing them), dropped
        self.malformed = 0
        self.engine = None
        self._said = RateLimited(60.0)

    def start(self) -> None:
        """Bind the trap socket and start receiving on the event loop."""
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto.rfc1902 import OctetString

        receiver = self

        class _Guarded(udp.UdpAsyncioTransport):
            """Every datagram handled inside a guard: junk that makes pysnmp's decoder raise is counted and
            dropped, never an asyncio 'Exception in callback' traceback in the log (11,000 junk datagrams gave
            168 of them)."""

            def datagram_received(self, datagram, address):
                callback = self._callback_function
                if callback is None:
                    return

                def guarded():
                    try:
                        callback(self, address, datagram)
                    except Exception as exc:
                        receiver._malformed(exc)

                self.loop.call_soon(guarded)

        # pysnmp binds later, on the loop, and only logs a failure: bind once here, so a taken or forbidden
        # address is an error at start (OSError) instead of a receiver that never receives
        import socket

        with socket.socket(socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(self.listen)
        self.engine = engine.SnmpEngine()
        config.add_transport(self.engine, udp.DOMAIN_NAME, _Guarded().open_server_mode(self.listen))
        for i, community in enumerate(self.communities):
            config.add_v1_system(self.engine, f"slawatch-{i}", community)
        for u in self.users:
            kwargs: dict[str, Any] = {}
            if u.get("auth_protocol"):
                kwargs.update(authProtocol=_proto(AUTH_PROTOCOLS[u["auth_protocol"]]), authKey=u["auth_key"])
            if u.get("priv_protocol"):
                kwargs.update(privProtocol=_proto(PRIV_PROTOCOLS[u["priv_protocol"]]), privKey=u["priv_key"])
            config.add_v3_user(self.engine, u["user"], securityEngineId=OctetString(hexValue=u["engine_id"]), **kwargs)
        ntfrcv.NotificationReceiver(self.engine, self._callback)

    def _malformed(self, exc: Exception) -> None:
        self.malformed += 1
        if self._said.due("malformed"):
            log.warning("trap port: a datagram that is not SNMP dropped (%s); %d so far (said at most once a "
                        "minute)", type(exc).__name__, self.malformed)

    def dropped(self) -> dict[str, int]:
        """Datagrams and traps dropped, by reason."""
        return {"malformed": self.malformed, "unknown_source": self.unknown_source,
                "bad_credentials": self.bad_credentials(), "not_a_configured_trap": self.ignored}

    def bad_credentials(self) -> int:
        """Traps dropped for a wrong community or wrong v3 credentials (pysnmp's own counters)."""
        if self.engine is None:
            return 0
        total = 0
        builder = self.engine.get_mib_builder()
        for module, name in (("__SNMPv2-MIB", "snmpInBadCommunityNames"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs")):
            try:
                (symbol,) = builder.import_symbols(module, name)
                total += int(symbol.syntax)
            except Exception:
                continue
        return total

    def _callback(self, snmp_engine, state_reference, context_engine_id, context_name, var_binds, cb_ctx) -> None:
        try:
            _domain, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
            source = address[0]
            binds = {str(oid): value.prettyPrint() for oid, value in var_binds}
            target = self.sources.get(source)
            if target is None:
                self.unknown_source += 1
                log.debug("trap from unknown source %s dropped", source)
                return
            self.received += 1  # authenticated, from a target's address
            kind = self.kinds.get(binds.get(SNMP_TRAP_OID, ""))
            if kind is None:
                self.ignored += 1
                return
            self.on_trap(target, kind, binds)
        except Exception:  # a trap must never take the receiver down
            log.exception("trap handling failed")

    def close(self) -> None:
        """Close the trap socket."""
        if self.engine is not None:
            self.engine.close_dispatcher()


def _proto(name: str):
    from pysnmp.hlapi.v3arch import asyncio as hl

    return getattr(hl, name)
