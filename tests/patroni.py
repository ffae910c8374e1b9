"""A throwaway high-availability PostgreSQL for the tests: Patroni (Debian's ``patroni``) managing two
PostgreSQL instances on loopback, with a one-member etcd (Debian's ``etcd-server``) as its configuration store.

Synchronous replication (Patroni's ``synchronous_mode``): a commit is acknowledged only once the standby has
it, so a failover loses nothing that was acknowledged. Every process runs in a process group of its own and is
stopped with it; PostgreSQL runs as the ``postgres`` user (it refuses root)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port
from pgcluster import pg_bindir
from procs import spawn, stop

__all__ = ["PatroniCluster", "patroni_available"]

SUPER, REPLICATOR, APP = "su-pass-9", "rep-pass-9", "app-pass-9"


def patroni_available() -> tuple[bool, str]:
    for tool, package in (("patroni", "patroni"), ("etcd", "etcd-server")):
        if not shutil.which(tool):
            return False, f"{tool} not installed (./scripts/dev-setup installs {package})"
    if pg_bindir() is None:
        return False, "PostgreSQL server binaries not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False, "no postgres user (the postgresql package makes it)"
    return True, ""


def _running(pid: int) -> bool:
    """Whether a process lives (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PatroniCluster:
    """etcd plus two Patroni members (pg0, pg1); :meth:`primary` names the one leading now."""

    def __init__(self, ttl: int = 10, listen: tuple[str, ...] = ()) -> None:
        """``listen``: addresses beside 127.0.0.1 where the members' PostgreSQL accepts clients (the host side of
        test namespaces' veths)."""
        self.listen = listen
        self.root = Path(tempfile.mkdtemp(prefix="slawatch-patroni-"))
        os.chmod(self.root, 0o755)
        pw = pwd.getpwnam("postgres")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.etcd_port, etcd_peer = free_port(), free_port()
        self.etcd = spawn(["etcd", "--name", "e0", "--data-dir", str(self.root / "etcd"),
                           "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                           "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                           "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                           "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                           "--initial-cluster", f"e0=http://127.0.0.1:{etcd_peer}"],
                          stdout=subprocess.DEVNULL, stderr=open(self.root / "etcd.log", "wb"))
        self._wait(f"http://127.0.0.1:{self.etcd_port}/health", "etcd")
        self.members: dict[str, dict] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        for name in ("pg0", "pg1"):
            self.members[name] = {"port": free_port(), "rest": free_port(), "dir": self.root / name}
            self._write_config(name, ttl)
        self.start("pg0")
        self.wait_primary(timeout=90)
        self.start("pg1")
        self.wait_replicating(timeout=90)
        self.psql(f"CREATE ROLE slawatch LOGIN PASSWORD '{APP}'")
        self.psql("CREATE DATABASE slawatch OWNER slawatch")

    # -- set-up ---------------------------------------------------------------------------------
    def _write_config(self, name: str, ttl: int) -> None:
        m = self.members[name]
        m["dir"].mkdir(mode=0o700)
        (m["dir"] / "sock").mkdir()
        for path in (m["dir"], m["dir"] / "sock"):
            os.chown(path, self.uid, self.gid)
        config = {
            "scope": "slawatch-test", "name": name,
            "log": {"level": "WARNING", "dir": str(m["dir"])},
            "restapi": {"listen": f"127.0.0.1:{m['rest']}", "connect_address": f"127.0.0.1:{m['rest']}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {"ttl": ttl, "loop_wait": 1, "retry_timeout": 3, "synchronous_mode": True,
                        "maximum_lag_on_failover": 1048576,
                        # a killed primary comes back as a standby: rewound, or cloned again if that fails
                        "postgresql": {"use_pg_rewind": True, "remove_data_directory_on_rewind_failure": True,
                                       "remove_data_directory_on_diverged_timelines": True,
                                       "parameters": {"wal_level": "replica", "max_wal_senders": 5,
                                                      "wal_log_hints": "on"}}},
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": ["local all all trust", "host replication replicator 127.0.0.1/32 scram-sha-256",
                           "host all all 127.0.0.1/32 scram-sha-256"]
                + (["host all all 198.19.0.0/16 scram-sha-256"] if self.listen else []),
            },
            "postgresql": {
                "listen": f"{','.join(('127.0.0.1', *self.listen))}:{m['port']}",
                "connect_address": f"127.0.0.1:{m['port']}",
                "data_dir": str(m["dir"] / "data"), "bin_dir": str(pg_bindir()),
                "pgpass": str(m["dir"] / "pgpass"),
                "authentication": {"superuser": {"username": "postgres", "password": SUPER},
                                   "replication": {"username": "replicator", "password": REPLICATOR}},
                "parameters": {"unix_socket_directories": str(m["dir"] / "sock"), "fsync": "off",
                               "full_page_writes": "off", "max_connections": 100, "shared_buffers": "64MB"},
            },
        }
        path = m["dir"] / "patroni.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        os.chown(path, self.uid, self.gid)
        m["config"] = path

    def start(self, name: str) -> None:
        m = self.members[name]
        self.procs[name] = spawn(["runuser", "-u", "postgres", "--", "patroni", str(m["config"])],
                                 cwd=str(m["dir"]), stdout=open(self.root / f"{name}.out", "ab"),
                                 stderr=subprocess.STDOUT)

    @staticmethod
    def _wait(url: str, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.2)
        raise RuntimeError(f"{what} did not come up ({url})")

    def _role(self, name: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.members[name]['rest']}/patroni", timeout=2) as r:
                data = json.loads(r.read())
        except (OSError, urllib.error.HTTPError, ValueError):
            return None
        return data.get("role") if data.get("state") == "running" else None

    def primary(self) -> str | None:
        """The member that is the primary now (Patroni's view), or None."""
        return next((n for n in self.members if self._role(n) in ("master", "primary")), None)

    def wait_primary(self, timeout: float = 60.0, other_than: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.primary()
            if p is not None and p != other_than:
                return p
            time.sleep(0.2)
        raise RuntimeError(f"no Patroni primary within {timeout:g} s; see {self.root}")

    def wait_replicating(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'", check=False)
            if out.strip() == "1" and self._sync_standby() is not None:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the standby is not a synchronous replica within {timeout:g} s; see {self.root}")

    def _sync_standby(self) -> str | None:
        """The member Patroni's DCS names synchronous standby (the one it may promote), or None."""
        for name, m in self.members.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{m['rest']}/cluster", timeout=2) as r:
                    members = json.loads(r.read()).get("members", [])
            except (OSError, urllib.error.HTTPError, ValueError):
                continue
            return next((x["name"] for x in members if x.get("role") in ("sync_standby", "synchronous_standby")
                         and x.get("state") in ("running", "streaming")), None)
        return None

    def psql(self, sql: str, check: bool = True) -> str:
        name = self.primary() or "pg0"
        m = self.members[name]
        r = subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bindir() / "psql"), "-h", str(m["dir"] / "sock"),
                            "-p", str(m["port"]), "-U", "postgres", "-At", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode:
            raise RuntimeError(f"psql on {name}: {r.stderr.strip()}")
        return r.stdout

    def dsn(self, host: str = "127.0.0.1") -> str:
        """Every member's address (``host``, one of ``listen``, for a client in a namespace), read-write only."""
        hosts = ",".join(f"{host}:{m['port']}" for m in self.members.values())
        return f"postgresql://slawatch:{APP}@{hosts}/slawatch?target_session_attrs=read-write"

    # -- faults -----------------------------------------------------------------------------------
    def rejoin(self, name: str) -> None:
        """Start a killed former primary again as a fresh standby: its data directory removed, so Patroni clones
        the new primary (its own WAL may have run ahead of what the standby got: a diverged timeline that
        pg_rewind does not always mend here)."""
        data = self.members[name]["dir"] / "data"
        shutil.rmtree(data, ignore_errors=True)
        self.start(name)

    def restart(self, name: str) -> None:
        """Restart a member's PostgreSQL through Patroni's REST API (a planned restart, not a failover)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.members[name]['rest']}/restart", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120):
            pass

    def kill(self, name: str) -> None:
        """SIGKILL a member: its Patroni and its PostgreSQL (which runs in a session of its own)."""
        from procs import descendants

        pidfile = self.members[name]["dir"] / "data" / "postmaster.pid"
        postmaster = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
        # the postmaster's backends too, at once: a restarted member must not find them still running
        children = [p.pid for p in descendants(postmaster).values()] if postmaster is not None else []
        stop(self.procs.pop(name), timeout=0.1, sig=signal.SIGKILL)
        for pid in ([postmaster] if postmaster is not None else []) + children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        pids = [pid for pid in [postmaster, *children] if pid is not None]
        while time.monotonic() < deadline and any(_running(pid) for pid in pids):
            time.sleep(0.05)
        for pid in pids:  # orphans this process adopted as the subreaper: a zombie postmaster's pid file would
            try:          # keep Patroni "stopping" it forever
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def close(self) -> None:
        for name in list(self.procs):
            stop(self.procs.pop(name), timeout=30)
        for m in self.members.values():  # a PostgreSQL whose Patroni died first
            pidfile = m["dir"] / "data" / "postmaster.pid"
            if pidfile.exists():
                subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bindir() / "pg_ctl"), "-D",
                                str(m["dir"] / "data"), "-m", "immediate", "stop"], capture_output=True)
        stop(self.etcd, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
