"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, a free loopback port, removed afterwards.

Uses Debian's server binaries (/usr/lib/postgresql/<major>/bin). initdb and postgres refuse to run as root,
so as root the cluster belongs to the ``postgres`` system user (or ``nobody``). No running server is assumed.
Clients connect over TCP to 127.0.0.1 with a password (scram-sha-256) as the role ``slawatch``; the
superuser ``postgres`` connects through the cluster's own unix socket without one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["PgCluster", "pg_bindir"]

PASSWORD = "pg-test-s3cret"


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, listen: tuple[str, ...] = (), shared: bool = False) -> None:
        """``listen``: addresses beside 127.0.0.1 to accept clients on (a test namespace's host-side veth)."""
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (scripts/dev-setup installs postgresql)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="slawatch-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        self.port = _free_port()
        self.user: str | None = None
        #: the whole run's cluster (conftest's pg_cluster), not one test's own
        self.shared = shared
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                os.chmod(self.root, 0o755)
                for p in (self.root, self.sock):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                break
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale=C"])
        with open(self.data / "pg_hba.conf", "w") as hba:
            hba.write("local all all trust\nhost all postgres 127.0.0.1/32 reject\n"
                      "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
                      + ("host all all 198.19.0.0/16 scram-sha-256\n" if listen else ""))
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '{','.join(('127.0.0.1', *listen))}'\nport = {self.port}\nunix_socket_directories = '{self.sock}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                       "shared_buffers = 128MB\nlog_min_messages = warning\n")
        self.start()
        self.sql("CREATE ROLE slawatch LOGIN CREATEDB PASSWORD '%s'" % PASSWORD)

    # -- process -------------------------------------------------------------------------------------
    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, cwd=self.root)

    def running(self) -> bool:
        return self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], check=False).returncode == 0

    def start(self) -> None:
        if self.running():
            return
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                   "start"])
        if self.shared:  # the run's cluster, restarted by a test: it lives on after that test (tests/procs.py)
            from procs import outlives_test

            outlives_test(int((self.data / "postmaster.pid").read_text().split()[0]))

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash, not a shutdown)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- clients ---------------------------------------------------------------------------------------
    def sql(self, statement: str, db: str = "postgres") -> str:
        out = subprocess.run([str(self.bin / "psql"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", statement],
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_db(self, name: str | None = None) -> str:
        """A new empty database owned by ``slawatch``; returns its DSN (with the password)."""
        name = name or "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name} OWNER slawatch")
        return self.dsn(name)

    def dsn(self, db: str, password: str = PASSWORD, host: str = "127.0.0.1") -> str:
        return f"postgresql://slawatch:{password}@{host}:{self.port}/{db}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run([str(self.bin / "pg_isready"), "-h", str(self.sock), "-p", str(self.port)],
                         check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not become ready")
