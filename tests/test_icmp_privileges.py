"""Privileges: datagram ICMP without CAP_NET_RAW, and a clear error when nothing is allowed.

Each case runs `slawatch probe` in a throwaway network namespace (ping_group_range is
per namespace) with CAP_NET_RAW dropped by setpriv."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from conftest import REPO, SLAWATCH

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to build the namespace (CI runs as root)"
)

CONFIG = """\
contracts: [{id: c1, customer: A, provider: B, objectives: {availability: 99.9%}}]
targets: [{id: lo, contract: c1, kind: internet, address: 127.0.0.1, probes: {icmp: {count: 2, spacing: 10ms, timeout: 500ms}}}]
"""


@pytest.fixture
def netns():
    name = f"swpriv{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name])


def probe_without_net_raw(netns: str, group_range: str, config) -> subprocess.CompletedProcess:
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"net.ipv4.ping_group_range={group_range}"], check=True)
    return subprocess.run(
        ["ip", "netns", "exec", netns, "setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw",
         *SLAWATCH, "probe", "-c", str(config), "lo"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )


def test_unprivileged_datagram_icmp_works_without_cap_net_raw(netns, write_config):
    r = probe_without_net_raw(netns, "0 0", write_config(CONFIG))
    assert r.returncode == 0, r.stderr
    assert "sent 2, received 2" in r.stdout


def test_no_permission_names_the_sysctl_and_the_capability(netns, write_config):
    r = probe_without_net_raw(netns, "1 0", write_config(CONFIG))
    assert r.returncode == 1
    assert "no ICMP socket is allowed for this process (uid 0, gid 0)" in r.stderr
    assert "sysctl -w net.ipv4.ping_group_range='0 2147483647'" in r.stderr
    assert "CAP_NET_RAW" in r.stderr and "cap_net_raw+ep" in r.stderr
    assert "Traceback" not in r.stderr
