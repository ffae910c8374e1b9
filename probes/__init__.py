"""Probes: one async callable per kind, registered by name.

A probe never raises for a failing target: it returns a frozen result with
``ok=False`` and a ``reason``. See :mod:`probes.base` for the Protocol.
"""

from .base import Evidence, Probe, ProbeContext, ProbeResult, Samples
from .dns import dns_probe
from .http import http_probe
from .icmp import IcmpResult, icmp_probe
from .service import ServiceResult
from .sip import sip_probe
from .smtp import smtp_probe
from .snmp import snmp_probe
from .tcp import tcp_probe
from .websocket import websocket_probe

#: probe kind -> probe callable (as blackbox_exporter maps prober names)
PROBES: dict[str, Probe] = {
    "icmp": icmp_probe,
    "snmp": snmp_probe,
    "sip": sip_probe,
    "http": http_probe,
    "tcp": tcp_probe,
    "dns": dns_probe,
    "smtp": smtp_probe,
    "websocket": websocket_probe,
}

#: probe kind -> its result class (a stored cycle is rebuilt by the kind's ``from_record``)
RESULTS: dict[str, type[ProbeResult]] = {"icmp": IcmpResult, **{kind: ServiceResult for kind in
                                                               ("sip", "http", "tcp", "dns", "smtp", "websocket")}}


def result_from_record(probe: str, target: str, started: float, duration: float, ok: bool, reason: str | None,
                       sent: int | None, received: int | None, samples: dict | None) -> ProbeResult | None:
    """A stored cycle back as its kind's result (:meth:`ProbeResult.from_record`), or None."""
    return RESULTS.get(probe, ProbeResult).from_record(probe, target, started, duration, ok, reason, sent, received,
                                                       samples or {})


__all__ = ["PROBES", "RESULTS", "result_from_record", "Probe", "ProbeContext", "ProbeResult", "Evidence", "Samples", "IcmpResult",
           "ServiceResult", "icmp_probe", "snmp_probe", "sip_probe", "http_probe", "tcp_probe", "dns_probe",
           "smtp_probe", "websocket_probe"]
