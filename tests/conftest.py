"""Shared fixtures. Network traffic goes only to loopback or to namespaces the tests create."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLAWATCH = [sys.executable, "-m", "monitor.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def write_config(tmp_path):
    """Write dedented YAML to a file in tmp_path and return its path."""

    def write(text: str, name: str = "slawatch.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(scope="session")
def icmp_mode() -> str:
    """'dgram' or 'raw' when this process may send ICMP; skips the test otherwise."""
    from monitor.errors import ProbeSetupError
    from probes.icmp import socket_mode

    try:
        return socket_mode(socket.AF_INET)
    except ProbeSetupError as exc:
        pytest.skip(f"ICMP not permitted here ({exc}); run scripts/dev-setup or as root")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces / nftables); CI runs as root")


@pytest.fixture(scope="module")
def netlab():
    """A NetLab for the module; skipped with the reason when namespaces cannot be made."""
    from netlab import NetLab, can_build_netlab

    ok, why = can_build_netlab()
    if not ok:
        pytest.skip(why)
    lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()
