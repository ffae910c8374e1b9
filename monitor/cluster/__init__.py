"""Cluster: active-active nodes sharing one PostgreSQL store.

Owns: membership, leases and fencing (``member``), the probe units of multi-site targets and their N-of-M
consensus (``consensus``, ``vantage``), and the config the nodes share (``shared_config``).
May import (checked: pyproject.toml's import-linter layers): ``monitor.measure``, ``monitor.sla``,
``monitor.store``, ``monitor.config`` and the bottom layer.
"""
