"""A network of test hosts in namespaces, for every test that needs more than loopback.

Each :class:`LabHost` is a network namespace joined to the test's own
namespace by a veth pair. It answers for a whole prefix of addresses at once:
an AnyIP ``local`` route in the host namespace, plus a route to the prefix
through the veth here. The prefixes come from the benchmarking range
198.18.0.0/15 (RFC 2544) and the ULA fd00:5157::/32. They are routed only to
the veth pairs this lab creates, so no traffic leaves the machine.

A host either lets its kernel answer echo requests (fast, no impairment) or
runs ``icmp_responder.py`` with ``net.ipv4.icmp_echo_ignore_all=1`` in its
namespace. The responder applies per-address delay, jitter, loss, duplicates
and blackout. ``drop_random`` adds nftables ``numgen random`` drop rules as a
second source of loss.

Everything is removed by ``close()``. It is also removed at interpreter exit,
and stale labs of dead processes are removed when a new lab starts.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from procs import outlives_test, spawn, stop

__all__ = ["NetLab", "LabHost", "can_build_netlab"]

RESPONDER = Path(__file__).with_name("icmp_responder.py")
_PREFIX = "swl"


def _run(*args: str, input: str | None = None) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def can_build_netlab() -> tuple[bool, str]:
    """Whether this process can create namespaces; the reason when not."""
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces (CI runs as root)"
    for tool in ("ip", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return False, f"needs the '{tool}' command (scripts/dev-setup installs it)"
    return True, ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_labs() -> None:
    for line in _run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(_PREFIX) and "-" in name:
            pid = name[len(_PREFIX):].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


_CLAIMS = Path(tempfile.gettempdir()) / "slawatch-netlab-claims"


def _claim_index(start: int) -> int:
    """A host index no other live process holds. Each index owns 198.18.<i>.0/24, 198.19.<i>.0/30 and
    fd00:5157:<i>::/64, so two test runs on one machine must not share one: the claim is a file holding
    the owner's pid, made with O_EXCL, and taken over when that pid is gone."""
    _CLAIMS.mkdir(mode=0o755, exist_ok=True)
    for index in range(start, 251):
        path = _CLAIMS / str(index)
        for _attempt in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = int(path.read_text() or 0)
                except (OSError, ValueError):
                    break
                if owner <= 0 or _alive(owner):
                    break  # held (or being written) by a live process
                path.unlink(missing_ok=True)  # a dead run's claim: try once more
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return index
    raise ValueError("no free lab host index: at most 250 lab hosts at once on this machine")


def _release_index(index: int) -> None:
    path = _CLAIMS / str(index)
    try:
        if int(path.read_text() or 0) == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


@dataclass
class LabHost:
    lab: "NetLab"
    name: str
    index: int
    netns: str
    veth: str
    v4_prefix: ipaddress.IPv4Network
    v6_prefix: ipaddress.IPv6Network | None
    kernel_replies: bool
    responder: subprocess.Popen | None = None
    rules_file: Path | None = None
    _nft_ready: bool = field(default=False, repr=False)

    def address(self, i: int = 1) -> str:
        """The i-th address of this host's IPv4 prefix."""
        return str(self.v4_prefix.network_address + i)

    def addresses(self, n: int, first: int = 1) -> list[str]:
        base = self.v4_prefix.network_address
        if n + first > self.v4_prefix.num_addresses - 1:
            raise ValueError(f"{self.v4_prefix} holds fewer than {n} addresses")
        return [str(base + first + i) for i in range(n)]

    def address6(self, i: int = 1) -> str:
        assert self.v6_prefix is not None
        return str(self.v6_prefix.network_address + i)

    def exec(self, *args: str) -> str:
        return _run("ip", "netns", "exec", self.netns, *args)

    # -- impairment --------------------------------------------------------------------
    def set_rules(self, rules: dict) -> None:
        """Per-address rules for the responder:
        ``{"default": {...}, "addresses": {"198.18.0.5": {...}}}`` where each rule may hold
        ``delay_ms``, ``jitter_ms`` (uniform ± around the delay), ``loss`` (0..1),
        ``duplicate`` (extra copies) and ``blackout`` (bool)."""
        if self.kernel_replies:
            raise RuntimeError(f"host {self.name} lets its kernel answer; create it with kernel_replies=False")
        assert self.rules_file is not None
        tmp = self.rules_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rules))
        tmp.replace(self.rules_file)
        if self.responder is None:
            self._start_responder()
        else:
            self.responder.send_signal(signal.SIGHUP)
            self._expect("reloaded")

    def _start_responder(self) -> None:
        # the responder lives as long as its host, which may belong to a module's lab
        self.responder = outlives_test(spawn(
            ["ip", "netns", "exec", self.netns, sys.executable, str(RESPONDER), "--rules", str(self.rules_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ))
        self._expect("ready")

    def _expect(self, word: str, timeout: float = 10.0) -> None:
        assert self.responder is not None and self.responder.stdout is not None
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.responder.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=deadline - time.monotonic()):
                line = self.responder.stdout.readline()
                if not line:
                    break
                if line.startswith(word):
                    return
        err = self.responder.stderr.read() if self.responder.poll() is not None else ""
        raise RuntimeError(f"responder in {self.netns} did not say {word!r}: {err}")

    def drop_random(self, address: str, percent: int) -> None:
        """nftables: drop ``percent``% of echo requests to ``address`` at random (numgen random)."""
        self._nft_table()
        rule = ["ip", "daddr", address, "icmp", "type", "echo-request"]
        if percent < 100:
            rule += ["numgen", "random", "mod", "100", "<", str(percent)]
        self.exec("nft", "add", "rule", "inet", "swlab", "input", *rule, "drop")

    def drop_udp(self, address: str, port: int, percent: int) -> None:
        """nftables: drop ``percent``% of UDP datagrams to ``address`` port ``port`` at random (SIP, DNS)."""
        self._nft_table()
        rule = ["ip", "daddr", address, "udp", "dport", str(port)]
        if percent < 100:
            rule += ["numgen", "random", "mod", "100", "<", str(percent)]
        self.exec("nft", "add", "rule", "inet", "swlab", "input", *rule, "drop")

    def _nft_table(self) -> None:
        if not self._nft_ready:
            self.exec("nft", "add", "table", "inet", "swlab")
            self.exec("nft", "add", "chain", "inet", "swlab", "input",
                      "{ type filter hook input priority 0; policy accept; }")
            self._nft_ready = True

    def clear_drops(self) -> None:
        if self._nft_ready:
            self.exec("nft", "flush", "chain", "inet", "swlab", "input")

    def cut(self) -> None:
        """Take this host's link down (from the test's side)."""
        _run("ip", "link", "set", self.veth, "down")

    def restore(self) -> None:
        _run("ip", "link", "set", self.veth, "up")
        _run("ip", "route", "replace", str(self.v4_prefix), "via", f"198.19.{self.index}.2")

    def stop(self) -> None:
        stop(self.responder, timeout=5)
        self.responder = None


class NetLab:
    """Create hosts with :meth:`add_host`; ``with NetLab() as lab:`` cleans up."""

    _count = 0
    _hosts_made = 0  # host indices (and so prefixes) are unique within the process, and claimed across processes

    def __init__(self) -> None:
        ok, why = can_build_netlab()
        if not ok:
            raise RuntimeError(why)
        _remove_stale_labs()
        NetLab._count += 1
        self.seq = NetLab._count
        self.id = f"{_PREFIX}{os.getpid()}-{self.seq}"
        self.hosts: list[LabHost] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="slawatch-netlab-"))
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> "NetLab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_host(self, name: str, *, v4_prefix: str | None = None, v6: bool = True,
                 kernel_replies: bool = True) -> LabHost:
        index = _claim_index(NetLab._hosts_made)
        NetLab._hosts_made = index + 1
        v4 = ipaddress.IPv4Network(v4_prefix or f"198.18.{index}.0/24")
        if not v4.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")):
            raise ValueError(f"{v4} is outside the benchmarking range 198.18.0.0/15")
        v6net = ipaddress.IPv6Network(f"fd00:5157:{index:x}::/64") if v6 else None
        netns = f"{self.id}-{index}"
        short = f"s{os.getpid() % 100000}{self.seq % 100:02d}"
        veth, peer = f"{short}r{index}", f"{short}h{index}"  # at most 15 characters
        host = LabHost(self, name, index, netns, veth, v4, v6net, kernel_replies, rules_file=self.tmp / f"{name}.json")
        self.hosts.append(host)
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", netns)
        _run("ip", "addr", "add", f"198.19.{index}.1/30", "dev", veth)
        _run("ip", "link", "set", veth, "up")
        host.exec("ip", "link", "set", "lo", "up")
        host.exec("ip", "addr", "add", f"198.19.{index}.2/30", "dev", peer)
        host.exec("ip", "link", "set", peer, "up")
        host.exec("ip", "route", "add", "local", str(v4), "dev", "lo")
        host.exec("ip", "route", "add", "default", "via", f"198.19.{index}.1")
        _run("ip", "route", "add", str(v4), "via", f"198.19.{index}.2")
        if v6net is not None:
            _run("ip", "-6", "addr", "add", f"fd00:5157:ffff:{index:x}::1/64", "dev", veth, "nodad")
            host.exec("ip", "-6", "addr", "add", f"fd00:5157:ffff:{index:x}::2/64", "dev", peer, "nodad")
            host.exec("ip", "-6", "route", "add", "local", str(v6net), "dev", "lo")
            _run("ip", "-6", "route", "add", str(v6net), "via", f"fd00:5157:ffff:{index:x}::2")
        if not kernel_replies:
            host.exec("sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
            host.exec("sysctl", "-q", "-w", "net.ipv6.icmp.echo_ignore_all=1")
        return host

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            host.stop()
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
            _release_index(host.index)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


class SiteLab:
    """Vantage sites and customer hosts behind one router, each in a namespace of its own (on a NetLab).

    Every namespace keeps NetLab's management veth to the test's namespace (where PostgreSQL listens); the
    sites reach the customers only through their own *uplink* veth to the router namespace, which forwards
    (``ip_forward`` inside the router only; the test's namespace never forwards). So cutting a site's uplink
    is a real cut of that site's probe path, and cutting a customer's uplink a real cut of that customer,
    while every node keeps its database.
    """

    def __init__(self, lab: NetLab, sites: list[str], customers: list[str]):
        self.lab = lab
        self.router = lab.add_host("router")
        self.links = lab.add_host("links")  # its 198.18.<i>.0/24 numbers the router's point-to-point links
        self.router.exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.sites = {s: lab.add_host(f"site-{s}") for s in sites}
        self.customers = {c: lab.add_host(f"cust-{c}") for c in customers}
        self.uplink: dict[str, str] = {}
        n = 0
        for name, host in [*self.sites.items(), *self.customers.items()]:
            n += 1
            r_addr, x_addr = f"198.18.{self.links.index}.{4 * n + 1}", f"198.18.{self.links.index}.{4 * n + 2}"
            r_if, x_if = f"sl{self.links.index}r{n}", f"sl{self.links.index}x{n}"
            _run("ip", "link", "add", r_if, "netns", self.router.netns, "type", "veth", "peer", "name", x_if,
                 "netns", host.netns)
            self.router.exec("ip", "addr", "add", f"{r_addr}/30", "dev", r_if)
            self.router.exec("ip", "link", "set", r_if, "up")
            host.exec("ip", "addr", "add", f"{x_addr}/30", "dev", x_if)
            host.exec("ip", "link", "set", x_if, "up")
            self.uplink[name] = x_if
            if name in self.customers:
                self.router.exec("ip", "route", "add", str(host.v4_prefix), "via", x_addr)
                host.exec("ip", "route", "add", f"198.18.{self.links.index}.0/24", "via", r_addr)
            else:
                for cust in self.customers.values():
                    host.exec("ip", "route", "add", str(cust.v4_prefix), "via", r_addr)
        self._routes: dict[str, str] = {}

    def _host(self, name: str) -> LabHost:
        return self.sites.get(name) or self.customers[name]

    def cut(self, name: str) -> None:
        """Take the uplink of a site or a customer down (from inside its namespace)."""
        host = self._host(name)
        self._routes[name] = host.exec("ip", "-4", "route", "show", "dev", self.uplink[name])
        host.exec("ip", "link", "set", self.uplink[name], "down")

    def restore(self, name: str) -> None:
        host = self._host(name)
        host.exec("ip", "link", "set", self.uplink[name], "up")
        for line in self._routes.pop(name, "").splitlines():
            if " via " in line:
                host.exec("ip", "route", "replace", *line.split())
        if name in self.customers:
            net = str(host.v4_prefix)
            r_addr = host.exec("ip", "-4", "-o", "addr", "show", "dev", self.uplink[name]).split()[3].split("/")[0]
            self.router.exec("ip", "route", "replace", net, "via", r_addr)
