"""SNMP probe. Planned (issue #4): v1/v2c/v3 polling with profiles and traps."""

from __future__ import annotations

from typing import Any

from monitor.errors import NotYetImplemented

from .base import ProbeResult

__all__ = ["snmp_probe"]


async def snmp_probe(target_id: str, address: str, settings: Any, *, context: Any = None) -> ProbeResult:
    raise NotYetImplemented(
        f"target {target_id}: the SNMP probe is not yet implemented in this version; "
        "remove probes.snmp from the target or run only ICMP"
    )
