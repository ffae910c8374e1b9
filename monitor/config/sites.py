"""The names of a multi-site target's probe units: one per vantage site (``target@site``).

Pure functions of the config, below every layer that needs them: the SLA engine reads each site's unit
(:mod:`monitor.sla.monthly`), the cluster decides on them (:mod:`monitor.cluster.consensus`), the report and the
CLI show them.

May import: nothing of slawatch.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["SEPARATOR", "unit_id", "multi_site"]

SEPARATOR = "@"


def unit_id(target: str, site: str) -> str:
    """The probe unit id of a multi-site target's site (``target@site``)."""
    return f"{target}{SEPARATOR}{site}"


def multi_site(targets: Iterable[Any]) -> list:
    """The targets probed from several sites (each site's view a unit of its own)."""
    return [t for t in targets if t.vantage is not None and len(t.vantage.sites) > 1]
