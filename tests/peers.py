"""Real peers for the ticket tests: Request Tracker 5 and Alertmanager from Debian, started on loopback.

Each runs in a private temporary directory and is stopped by the test that started it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from procs import spawn, stop

__all__ = ["RtServer", "Alertmanager", "Snmpd", "SnmpSim", "Kamailio", "stop_peer", "terminate", "rt_available", "alertmanager_available", "wait_http"]

RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"
RT_SETUP = "/usr/sbin/rt-setup-database-5"
RT_LIB = "/usr/share/request-tracker5/lib"


def rt_available() -> tuple[bool, str]:
    if not (os.path.exists(RT_SERVER) and os.path.exists(RT_SETUP)):
        return False, "Request Tracker 5 is not installed (scripts/dev-setup installs request-tracker5)"
    return True, ""


def alertmanager_available() -> tuple[bool, str]:
    if not shutil.which("prometheus-alertmanager"):
        return False, "Alertmanager is not installed (scripts/dev-setup installs prometheus-alertmanager)"
    return True, ""


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate a peer's process and every worker of its group, killing them after ``timeout`` seconds."""
    stop(proc, timeout)


def stop_peer(proc: subprocess.Popen | None, directory: Path) -> None:
    """Terminate a peer (kill it after 10 s) and remove its private directory."""
    terminate(proc)
    shutil.rmtree(directory, ignore_errors=True)


def wait_http(url: str, timeout: float = 60.0, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s: {last}")


class RtServer:
    """A throwaway RT 5: its own SQLite database, the standalone server on loopback, and its outgoing mail through
    RT's own sendmail path (``$MailCommand = 'sendmailpipe'``) into a capturing sendmail that keeps each message
    (:meth:`mails`): what RT would hand its MTA, recipients from the headers as with ``-t``."""

    def __init__(self, port: int):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="slawatch-rt-"))
        self.url = f"http://127.0.0.1:{port}/"
        self.proc: subprocess.Popen | None = None
        self.token = ""

    @property
    def env(self) -> dict:
        (self.dir / "conf.d").mkdir(exist_ok=True)
        return {**os.environ, "RT_SITE_CONFIG": str(self.dir / "site.pm"), "RT_SITE_CONFIG_DIR": str(self.dir / "conf.d")}

    def start(self) -> "RtServer":
        (self.dir / "mail").mkdir(exist_ok=True)
        sendmail = self.dir / "sendmail"
        sendmail.write_text(f"""#!{sys.executable}
import sys, time
data = sys.stdin.buffer.read()
with open("{self.dir}/mail/%d.eml" % time.time_ns(), "wb") as f:
    f.write(data)
""")
        sendmail.chmod(0o755)
        (self.dir / "site.pm").write_text(f"""
Set($rtname, 'slawatch-test');
Set($Organization, 'slawatch.test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {self.port});
Set($WebPath, '');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{self.dir}/rt.db');
Set($DatabaseUser, '');
Set($DatabasePassword, '');
Set($MailCommand, 'sendmailpipe');
Set($SendmailPath, '{self.dir}/sendmail');
Set($CorrespondAddress, 'rt@slawatch.test');
Set($CommentAddress, 'rt-comment@slawatch.test');
Set($LogToSTDERR, 'error');
Set($LogToSyslog, undef);
Set($RestrictReferrer, 0);
1;
""")
        env = self.env
        subprocess.run([RT_SETUP, "--action", "init", "--skip-create"], env=env, input="\n" * 5, text=True,
                       capture_output=True, check=True, timeout=120)
        made = subprocess.run(
            ["perl", f"-I{RT_LIB}", "-e",
             'use RT; RT::LoadConfig(); RT::Init(); my $u = RT::User->new(RT->SystemUser); $u->Load("root");'
             ' my $t = RT::AuthToken->new(RT::CurrentUser->new($u));'
             ' my ($ok, $msg, $auth) = $t->Create(Owner => $u->Id, Description => "slawatch tests");'
             ' die $msg unless $ok; print "TOKEN=$auth\\n";'],
            env=env, capture_output=True, text=True, check=True, timeout=60)
        self.token = next(line[6:] for line in made.stdout.splitlines() if line.startswith("TOKEN="))
        self.resume()
        return self

    def mails(self) -> list:
        """The messages RT sent so far, oldest first (email.message.Message, with To, Cc, Bcc as RT set them)."""
        import email

        return [email.message_from_bytes(p.read_bytes()) for p in sorted((self.dir / "mail").glob("*.eml"))]

    def pause(self) -> None:
        """Stop the server (the database stays): the sink is down."""
        terminate(self.proc)
        self.proc = None

    def resume(self) -> None:
        self.proc = spawn([RT_SERVER, "--port", str(self.port)], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "server.log", "a"))
        wait_http(self.url + "REST/2.0/queues/all", headers={"Authorization": f"token {self.token}"})

    def api(self, method: str, path: str, body=None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "REST/2.0" + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def tickets_with(self, tag: str) -> list[dict]:
        query = urllib.parse.quote(f"Subject LIKE '{tag}'")
        items = self.api("GET", f"/tickets?query={query}")["items"]
        return [self.api("GET", f"/ticket/{i['id']}") for i in items]

    def stop(self) -> None:
        stop_peer(self.proc, self.dir)


class Alertmanager:
    """Alertmanager on loopback with a null receiver; alerts are read back through its v2 API."""

    def __init__(self, port: int, cluster_port: int):
        self.port = port
        self.cluster_port = cluster_port
        self.dir = Path(tempfile.mkdtemp(prefix="slawatch-am-"))
        self.url = f"http://127.0.0.1:{port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Alertmanager":
        (self.dir / "am.yml").write_text("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
        self.proc = spawn(
            ["prometheus-alertmanager", f"--config.file={self.dir / 'am.yml'}", f"--storage.path={self.dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
             f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "am.log", "w"))
        wait_http(self.url + "-/ready")
        return self

    def alerts(self, active_only: bool = False) -> list[dict]:
        q = "" if active_only else "?active=true&silenced=true&inhibited=true&unprocessed=true"
        with urllib.request.urlopen(self.url + "api/v2/alerts" + q, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        stop_peer(self.proc, self.dir)




class Snmpd:
    """net-snmp's snmpd on a loopback port: v2c community 'public' and a v3 user for every security level and
    protocol pair in :attr:`USERS`, in a private persistent directory."""

    #: user -> (auth protocol, auth key, priv protocol, priv key): every pair the config accepts (6 digests x
    #: no privacy, DES, AES-128, AES-192/256 with either key extension) and noAuthNoPriv. With MD5 and SHA-1 the localised key is
    #: shorter than AES-192/256 need, so those pairs test the key extension too.
    USERS = {
        "usha": ("sha", "authpass123", "aes", "privpass123"),
        "uauth": ("sha", "authonly123", None, None),
        "unone": (None, None, None, None),
        **{f"u-{a}-{p or 'nopriv'}": (a, f"auth-{a}-pw", p, f"priv-{p}-pw" if p else None)
           for a in ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
           for p in (None, "des", "aes", "aes192", "aes256", "aes192c", "aes256c")
           if (a, p) not in (("sha", "aes"), ("sha", None))},
    }
    _NET_SNMP = {"md5": "MD5", "sha": "SHA", "sha224": "SHA-224", "sha256": "SHA-256", "sha384": "SHA-384",
                 "sha512": "SHA-512", "des": "DES", "aes": "AES", "aes192": "AES-192", "aes256": "AES-256",
                 "aes192c": "AES-192-C", "aes256c": "AES-256-C"}

    @classmethod
    def users_conf(cls) -> str:
        lines = []
        for user, (auth, akey, priv, pkey) in cls.USERS.items():
            create = f"createUser {user}"
            if auth:
                create += f' {cls._NET_SNMP[auth]} "{akey}"'
            if priv:
                create += f' {cls._NET_SNMP[priv]} "{pkey}"'
            lines += [create, f"rouser {user} {'priv' if priv else 'auth' if auth else 'noauth'}"]
        return "\n".join(lines)

    def __init__(self, port: int, netns: str | None = None, address: str = "127.0.0.1", extra: str = ""):
        self.extra = extra  # more snmpd.conf lines, e.g. `override OID TYPE VALUE` for scripted values
        self.port = port
        self.address = address
        self.netns = netns
        self.dir = Path(tempfile.mkdtemp(prefix="slawatch-snmpd-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Snmpd":
        (self.dir / "persist").mkdir()
        (self.dir / "snmpd.conf").write_text(f"""agentAddress udp:{self.address}:{self.port}
rocommunity public default
{self.users_conf()}
sysName slawatch-test-agent
{self.extra}
""")
        cmd = ["snmpd", "-f", "-Lf", str(self.dir / "log"), "-C", "-c", str(self.dir / "snmpd.conf"), "-p", str(self.dir / "pid")]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = spawn(cmd, env={**os.environ, "SNMP_PERSISTENT_DIR": str(self.dir / "persist")},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = subprocess.run((["ip", "netns", "exec", self.netns] if self.netns else []) +
                                   ["snmpget", "-On", "-v2c", "-c", "public", "-r0", "-t1", f"{self.address}:{self.port}",
                                    "1.3.6.1.2.1.1.5.0"], capture_output=True, text=True)
            if probe.returncode == 0:
                return self
            time.sleep(0.3)
        raise RuntimeError(f"snmpd did not answer: {(self.dir / 'log').read_text()[-500:] if (self.dir / 'log').exists() else ''}")

    def stop(self) -> None:
        stop_peer(self.proc, self.dir)


class SnmpSim:
    """snmpsim agents: one simulator process answering on many loopback endpoints, one simulated agent per
    community (``records``: community -> .snmprec text, with variation modules for scripted values).

    :meth:`reboot` restarts the process: snmpsim's ``numeric`` values count from the process start, so
    sysUpTime and counters written as ``numeric`` start again from their initial values, as after a reboot.
    As root the simulator drops to nobody/nogroup (it refuses to run as root); ``tests/snmpsim_run.py``
    imports what it needs before that, since the interpreter's own files may be unreadable to nobody.
    """

    def __init__(self, endpoints: list[tuple[str, int]], records: dict[str, str], max_var_binds: int = 256):
        self.endpoints, self.records, self.max_var_binds = endpoints, records, max_var_binds
        self.dir = Path(tempfile.mkdtemp(prefix="slawatch-snmpsim-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SnmpSim":
        import sys

        data, cache = self.dir / "data", self.dir / "cache"
        data.mkdir(exist_ok=True)
        cache.mkdir(exist_ok=True)
        for community, text in self.records.items():
            (data / f"{community}.snmprec").write_text(text.strip() + "\n")
        cmd = [sys.executable, str(Path(__file__).with_name("snmpsim_run.py")), f"--data-dir={data}",
               f"--cache-dir={cache}", "--log-level=error", f"--max-var-binds={self.max_var_binds}",
               *(f"--agent-udpv4-endpoint={a}:{p}" for a, p in self.endpoints)]
        if os.geteuid() == 0:
            cmd += ["--process-user=nobody", "--process-group=nogroup"]
            for path in (self.dir, data, cache, *data.iterdir()):
                path.chmod(0o777 if path.is_dir() else 0o644)
        self.log = open(self.dir / "log", "wb")
        self.proc = spawn(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        community = next(iter(self.records))
        deadline = time.monotonic() + 60
        pending = list(self.endpoints)
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            address, port = pending[-1]
            probe = subprocess.run(["snmpget", "-On", "-v2c", "-c", community, "-r0", "-t1", f"{address}:{port}",
                                    "1.3.6.1.2.1.1.3.0"], capture_output=True, text=True)
            if probe.returncode == 0:
                pending.pop()
            else:
                time.sleep(0.2)
        if pending:
            self.stop_process()
            raise RuntimeError(f"snmpsim did not answer on {pending[-1]}: {(self.dir / 'log').read_text()[-800:]}")
        return self

    def stop_process(self) -> None:
        terminate(self.proc)
        self.proc = None

    def reboot(self) -> None:
        self.stop_process()
        self.start()

    def stop(self) -> None:
        self.stop_process()
        stop_peer(None, self.dir)


class Kamailio:
    """A real Kamailio answering SIP OPTIONS on UDP and TCP (``port``) and TLS (``port + 1``) on loopback, with
    ``status`` as its answer (200, or 503 for a stack that is up but refuses service)."""

    MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

    def __init__(self, directory: Path, port: int, cert: Path, key: Path, status: str = "200 Keepalive",
                 address: str = "127.0.0.1", netns: str | None = None):
        self.dir, self.port, self.cert, self.key, self.status = directory, port, cert, key, status
        self.address, self.netns = address, netns
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> tuple[bool, str]:
        if not shutil.which("kamailio"):
            return False, "kamailio not installed (./scripts/dev-setup installs it)"
        if not os.path.exists(os.path.join(Kamailio.MODULES, "tls.so")):
            return False, "kamailio-tls-modules not installed"
        return True, ""

    def start(self) -> "Kamailio":
        self.dir.mkdir(parents=True, exist_ok=True)
        code, _, phrase = self.status.partition(" ")
        host = f"[{self.address}]" if ":" in self.address else self.address
        (self.dir / "tls.cfg").write_text(f"[server:default]\nmethod = TLSv1.2+\ncertificate = {self.cert}\n"
                                          f"private_key = {self.key}\n")
        (self.dir / "kamailio.cfg").write_text(f"""#!KAMAILIO
debug=2
log_stderror=yes
children=2
dns=no
rev_dns=no
use_dns_cache=off
auto_aliases=no
tcp_children=2
listen=udp:{host}:{self.port}
listen=tcp:{host}:{self.port}
enable_tls=yes
listen=tls:{host}:{self.port + 1}
server_header="Server: slawatch-test-kamailio"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "tls.so"
modparam("tls", "config", "{self.dir / 'tls.cfg'}")
request_route {{
    if (is_method("OPTIONS")) {{
        sl_send_reply("{code}", "{phrase}");
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
""")
        log = open(self.dir / "kamailio.log", "wb")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = spawn([*prefix, "kamailio", "-f", str(self.dir / "kamailio.cfg"), "-DD", "-E", "-Y",
                                      str(self.dir), "-P", str(self.dir / "pid"), "-m", "32", "-M", "4"],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: {(self.dir / 'kamailio.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port + 1), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("kamailio did not start listening")

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
