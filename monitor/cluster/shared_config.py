"""The cluster's shared config: a reload on one node is picked up by every node.

Each node runs its own file. When a node reloads it (SIGHUP, ``POST /-/reload``), it publishes the file's
*shared* sections (everything but its own ``cluster`` section and the node-local ones: ``storage``,
``exporter``, ``logging``) to the database as a new version. Every other node sees the new version at its
next heartbeat and reloads with the published shared sections merged into its own file's ``cluster`` and
node-local sections, fully validated like a file (a config that does not validate on a node keeps that node
on its previous config, logged, and ``slawatch cluster status`` shows its config hash differing).

A config whose shared sections hold a secret written as a value (not ``${ENV}`` or ``<secret>_file``) is not
published: secrets never go into the database. A node (re)started with a file that differs from the latest
published version runs its file, and the difference is reported by ``slawatch cluster status``; it is
never silently mixed.
"""

from __future__ import annotations

import yaml

from monitor.cluster.member import NODE_LOCAL
from monitor.config.loader import inline_secrets, parse_yaml

__all__ = ["OWN_SECTIONS", "shared_text", "merged_text", "publishable"]

#: sections each node keeps from its own file
OWN_SECTIONS = (*NODE_LOCAL, "cluster")


def _load(text: str) -> dict:
    data = parse_yaml(text, "<cluster config>")
    return data if isinstance(data, dict) else {}


def shared_text(text: str) -> str:
    """The shared sections of a config file's text, as YAML."""
    shared = {k: v for k, v in _load(text).items() if k not in OWN_SECTIONS}
    return yaml.safe_dump(shared, sort_keys=False, allow_unicode=True)


def merged_text(shared: str, own: str) -> str:
    """Published shared sections with this node's own sections (from its file's text)."""
    mine = {k: v for k, v in _load(own).items() if k in OWN_SECTIONS}
    return yaml.safe_dump({**mine, **_load(shared)}, sort_keys=False, allow_unicode=True)


def publishable(text: str) -> list[str]:
    """Why the shared sections of ``text`` may not be published (the YAML paths of inline secrets), or []."""
    return inline_secrets(shared_text(text))
