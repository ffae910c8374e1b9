"""Probes: one async callable per kind, registered by name.

A probe never raises for a failing target: it returns a frozen result with
``ok=False`` and a ``reason``. See :mod:`probes.base` for the Protocol.
"""

from .base import Probe, ProbeContext, ProbeResult
from .icmp import IcmpResult, icmp_probe
from .snmp import snmp_probe

#: probe kind -> probe callable (as blackbox_exporter maps prober names)
PROBES: dict[str, Probe] = {
    "icmp": icmp_probe,
    "snmp": snmp_probe,
}

__all__ = ["PROBES", "Probe", "ProbeContext", "ProbeResult", "IcmpResult", "icmp_probe", "snmp_probe"]
