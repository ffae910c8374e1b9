"""The probe Protocol and the fields every probe result shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Probe", "ProbeResult", "ProbeContext"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What every probe result carries. Subclasses add their raw samples."""

    probe: str
    target: str
    address: str
    started: float  # unix seconds, wall clock, when the cycle began
    duration: float  # seconds the probe took
    ok: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(slots=True)
class ProbeContext:
    """Shared resources a probe may use, passed in by whoever runs it (the daemon, the CLI)."""

    icmp_engine: Any = None
    snmp_engine: Any = None
    snmp_profiles: Any = None  # the config's user-defined SNMP profiles


@runtime_checkable
class Probe(Protocol):
    """``await probe(target_id, address, settings, context=ctx) -> ProbeResult``; never raises for a bad target."""

    async def __call__(self, target_id: str, address: str, settings: Any, *, context: ProbeContext | None = None) -> ProbeResult: ...
