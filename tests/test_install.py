"""The README's install steps on this machine, then the unit's ExecStart as the unit's user with the unit's
capabilities (PID 1 here is not systemd, so the unit itself cannot be started). Also the unit's checks:
systemd-analyze verify and the security exposure score."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from procs import spawn

UNIT = REPO / "systemd" / "slawatch.service"
OPT, ETC, STATE = Path("/opt/slawatch"), Path("/etc/slawatch"), Path("/var/lib/slawatch")


def unit_value(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]


def test_security_exposure_is_at_most_2():
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for slawatch.service: ([0-9.]+)", out.stdout).group(1))
    assert score <= 2.0, out.stdout[-2000:]


def test_portal_unit_exposure_is_at_most_2_and_it_has_no_capability():
    """#29: the portal's unit runs as the daemon's user, with no capability and the same hardening."""
    portal = REPO / "systemd" / "slawatch-portal.service"
    lines = portal.read_text().splitlines()
    assert "CapabilityBoundingSet=" in lines and "AmbientCapabilities=" in lines and "User=slawatch" in lines
    assert "ExecStart=/opt/slawatch/venv/bin/slawatch portal -c /etc/slawatch/slawatch.yaml" in lines
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(portal)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for slawatch-portal.service: ([0-9.]+)", out.stdout).group(1))
    assert score <= 2.0, out.stdout[-2000:]


def test_unit_shape():
    assert unit_value("Type") == ["notify"] and unit_value("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_value("AmbientCapabilities") == ["CAP_NET_RAW"] and unit_value("CapabilityBoundingSet") == ["CAP_NET_RAW"]
    assert unit_value("RestrictAddressFamilies") == ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"]
    assert unit_value("WatchdogSec") and unit_value("StateDirectory") == ["slawatch"]
    assert unit_value("ConfigurationDirectory") == ["slawatch"] and unit_value("DynamicUser") == ["yes"]


@pytest.mark.skipif(os.geteuid() != 0, reason="installs under /opt and /etc and adds a user: needs root (CI runs as root)")
def test_readme_install_steps_give_a_service_that_starts(tmp_path):
    if OPT.exists() or ETC.exists():
        pytest.skip("/opt/slawatch or /etc/slawatch exists already: not touching a real installation")
    if not shutil.which("systemd-analyze") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs Debian's python3 and systemd-analyze")
    created_user = False
    try:
        # the README's steps, as written there
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(OPT / "venv")], check=True)
        subprocess.run([str(OPT / "venv/bin/pip"), "install", "-q", str(REPO)], check=True, timeout=900)
        ETC.mkdir(mode=0o755)
        shutil.copy(REPO / "config/example.yaml", ETC / "slawatch.yaml")
        verify = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
        assert "slawatch.service" not in verify.stderr, verify.stderr  # (other units' warnings are not ours)

        # what systemd would do: the unit's user, its state directory, its capabilities, its environment
        try:
            pwd.getpwnam("slawatch")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "slawatch"], check=True)
            created_user = True
        STATE.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(STATE, "slawatch", "slawatch")
        import tempfile

        notify_dir = Path(tempfile.mkdtemp(prefix="slawatch-notify-"))  # reachable by the unit's user
        os.chmod(notify_dir, 0o777)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_dir / "sock"))
        os.chmod(notify_dir / "sock", 0o777)
        notify.settimeout(60)
        exec_start = shlex.split(unit_value("ExecStart")[0])
        env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(notify_dir / "sock"), "JOURNAL_STREAM": "8:1",
               "LANG": "C.UTF-8", **dict(e.split("=", 1) for e in unit_value("Environment"))}
        proc = spawn(
            ["setpriv", "--reuid=slawatch", "--regid=slawatch", "--clear-groups", "--no-new-privs",
             "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", *exec_start],
            cwd=STATE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            try:
                message = notify.recv(4096).decode()
            except socket.timeout:
                proc.kill()
                raise AssertionError(f"no READY=1 from the service: {proc.communicate()[1][-3000:]}") from None
            assert message.startswith("READY=1"), message
            deadline = time.time() + 30
            ups: set[str] = set()
            while time.time() < deadline and len(ups) < 4:
                time.sleep(1)
                with urllib.request.urlopen("http://127.0.0.1:9842/metrics", timeout=5) as resp:
                    ups = {line.split('target="')[1].split('"')[0] for line in resp.read().decode().splitlines()
                           if line.startswith("slawatch_target_up{") and line.endswith(" 1.0")}
            assert ups == {"lo-internet-1", "lo-internet-2", "lo-internet-v6", "lo-voice-1"}
            status = open(f"/proc/{proc.pid}/status").read()
            assert re.search(r"^Uid:\s+(\d+)", status, re.M).group(1) == str(pwd.getpwnam("slawatch").pw_uid)
            assert re.search(r"^CapEff:\s+0*2000$", status, re.M), status  # CAP_NET_RAW (bit 13) only
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert '"level": "info", "logger": "slawatch.daemon", "msg": "stopped cleanly"' in err  # JSON under systemd
        assert (STATE / "var" / "slawatch.db").exists()
    finally:
        shutil.rmtree(OPT, ignore_errors=True)
        shutil.rmtree(ETC, ignore_errors=True)
        shutil.rmtree(STATE, ignore_errors=True)
        if "notify_dir" in locals():
            shutil.rmtree(notify_dir, ignore_errors=True)
        if created_user:
            subprocess.run(["userdel", "slawatch"], capture_output=True)
