"""Typed configuration: models, the YAML loader, MIB names.

Owns: the models (``models``; each probe's and sink's settings live beside the probe and the sink), the field
types (``types``), the loader (every error at once with its YAML path: ``loader``), MIB names (``mibnames``), the
cache of large configs' parsed YAML (``parse_cache``).
May import: ``probes`` (the probes' settings), ``monitor.tickets.sinks`` (the sinks' settings), ``monitor.units``,
``monitor.errors``.

The names are loaded on first use (PEP 562), so that the modules whose settings models live beside them
(``probes/``, ``monitor/tickets/sinks/``) can use :mod:`monitor.config.types` without loading the whole config
first (which imports them back).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config.loader import (BUILTIN_SNMP_PROFILES, SECRET_KEYS, config_warnings, inline_secrets, load_config,  # noqa: F401
                         load_config_text, parse_config)
    from monitor.config.models import *  # noqa: F401,F403

_LOADER = ("load_config", "load_config_text", "config_warnings", "inline_secrets", "parse_config", "SECRET_KEYS",
           "BUILTIN_SNMP_PROFILES")
_MODELS = ("is_ip", "Config", "Contract", "Target", "IcmpProbeConfig", "SnmpProbeConfig", "ProbesConfig", "Objectives",
           "LatencyObjective", "CreditTier", "MaintenanceWindow", "EscalationTier", "ResponseTarget", "StorageConfig",
           "ExporterConfig", "TicketSink", "SnmpProfile", "SEVERITIES")

__all__ = [*_LOADER, *_MODELS]


def __getattr__(name: str) -> Any:
    if name in _LOADER:
        return getattr(importlib.import_module(".loader", __name__), name)
    if name in _MODELS:
        return getattr(importlib.import_module(".models", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
