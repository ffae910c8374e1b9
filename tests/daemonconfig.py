"""The daemon-test config, written once: a contract, two loopback circuits probed every second with a short
ICMP burst, JSON logs; each test gives its storage and exporter (and may give other targets or sections)."""

from __future__ import annotations

__all__ = ["daemon_yaml", "LOOPBACK_TARGETS", "CLUSTER_NODE"]

#: the head of a cluster node's config, for ``str.format`` (node, site, heartbeat, failover, dsn in seconds and
#: text): PostgreSQL with a short flush interval and connect timeout, no exporter, JSON logs
CLUSTER_NODE = """\
cluster: {{node: {node}, site: {site}, heartbeat: {heartbeat}s, failover_delay: {failover}s}}
storage: {{backend: postgresql, dsn: '{dsn}', flush_interval: 200ms, connect_timeout: 2s}}
exporter: {{enabled: false}}
logging: {{format: json}}
"""

LOOPBACK_TARGETS = """\
  - {id: lo1, contract: c1, kind: internet, address: 127.0.0.1}
  - {id: lo2, contract: c1, kind: internet, address: 127.0.0.2}
"""


def daemon_yaml(storage: str, exporter: str = "{enabled: false}", targets: str = LOOPBACK_TARGETS,
                extra: str = "") -> str:
    """A config file's text: ``storage`` and ``exporter`` as YAML flow mappings, ``targets`` as list lines."""
    return f"""\
storage: {storage}
exporter: {exporter}
logging: {{format: json}}
{extra}contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
defaults:
  targets: {{interval: 1s, probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}}}
targets:
{targets}"""
