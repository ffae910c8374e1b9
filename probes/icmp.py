"""ICMP echo probe: one burst of N echo requests per cycle, every RTT kept.

Design (see issue #3 and bench/icmp_scale.py for the measurements behind it):

* An :class:`IcmpEngine` sends every burst over **one shared socket per
  address family**, the way fping does, and matches replies by ICMP
  sequence number, source address and a per-burst payload token. It prefers
  an **unprivileged ICMP datagram socket**
  (``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)``, allowed by
  ``net.ipv4.ping_group_range``), whose replies the kernel filters by ICMP
  id; a raw socket (needs CAP_NET_RAW) is the fallback, and then the id is
  checked here. One socket means one reader for all replies: no socket sees
  another's traffic, and no socket is opened per burst.
* ``gap`` paces the engine's sends globally, like fping's ``-i``.
* RTTs use the kernel's receive timestamp (``SO_TIMESTAMPNS``), so event-loop
  delay does not inflate them. The send timestamp is taken right before
  ``sendto``.
* Duplicates and replies later than ``timeout`` are counted separately and
  never folded into the good RTTs.
* Loss is ``None`` when nothing was sent.

``icmplib`` is used for what it does well here: address-family detection.
Its ping functions are not used because they do not keep kernel timestamps,
duplicates or late replies apart.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import ipaddress
import os
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from icmplib import is_ipv6_address
from pydantic import Field

from monitor.errors import ProbeSetupError

from .base import Evidence, ProbeResult, Samples, fmt_ms
from .settings import PositiveDuration, ProbeSettings, is_ip_literal

__all__ = [
    "IcmpResult",
    "IcmpSettings",
    "IcmpProbeConfig",
    "icmp_probe",
    "ping_burst",
    "IcmpEngine",
    "EngineStats",
    "settings_from",
    "ipdv_jitter",
    "rfc3550_jitter_update",
    "check_icmp_permission",
    "socket_mode",
]

_ICMP_ECHO: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ICMP_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTO: dict[int, int] = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SCM_TIMESTAMPNS = _SO_TIMESTAMPNS
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
_IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
_IPV6_PMTUDISC_DO = 2
_TIMESPEC = struct.Struct("@qq")

_PERMISSION_HELP = (
    "no ICMP socket is allowed for this process (uid {uid}, gid {gid}): either let this group use "
    "unprivileged ICMP with `sysctl -w net.ipv4.ping_group_range='0 2147483647'` (or a range that "
    "includes gid {gid}), or grant the raw-socket capability with `setcap cap_net_raw+ep` on the "
    "Python binary or AmbientCapabilities=CAP_NET_RAW in the systemd unit"
)


@dataclass(frozen=True, slots=True)
class IcmpSettings:
    """The ICMP engine's settings for one burst (from IcmpProbeConfig, plus the name lookup's timeout)."""

    count: int = 3
    spacing: float = 0.2
    timeout: float = 1.0
    payload_size: int = 56
    ttl: int | None = None
    dont_fragment: bool = False
    dns_timeout: float = 2.0


class IcmpProbeConfig(ProbeSettings):
    """One ICMP burst per cycle."""

    count: int = Field(3, ge=1, le=1000)
    spacing: PositiveDuration = 0.2
    timeout: PositiveDuration = 1.0
    payload_size: int = Field(56, ge=0, le=65000)
    ttl: int | None = Field(None, ge=1, le=255)
    dont_fragment: bool = False

    def worst_case(self, address: str) -> tuple[float, str]:
        """The longest a cycle can take with these settings at ``address``, and how that figure is made up."""
        seconds = (self.count - 1) * self.spacing + self.timeout
        how = f"{self.count} x {self.spacing:g} s spacing + {self.timeout:g} s timeout"
        if not is_ip_literal(address):  # a name: the probe's own bounded lookup comes first
            lookup = IcmpSettings().dns_timeout
            seconds += lookup
            how += f", {lookup:g} s to resolve the name"
        return seconds, how


@dataclass(frozen=True, slots=True)
class IcmpResult(ProbeResult):
    """One burst. ``rtts[i]`` is the RTT of sequence i in seconds, or None if lost."""

    family: int = socket.AF_INET
    sent: int = 0
    received: int = 0
    duplicates: int = 0
    late: int = 0
    rtts: tuple[float | None, ...] = field(default_factory=tuple)
    resolve_time: float | None = None
    resolved_address: str | None = None
    socket_mode: str | None = None

    @classmethod
    def from_record(cls, probe: str, target: str, started: float, duration: float, ok: bool, reason: str | None,
                    sent: int | None, received: int | None, samples: dict[str, Any]) -> "IcmpResult | None":
        """A stored burst back as a result: its packet counts and answered RTTs (None when nothing was sent)."""
        if sent is None:
            return None
        return cls(probe=probe, target=target, address="", started=started, duration=duration, ok=ok, reason=reason,
                   sent=sent, received=received or 0, rtts=tuple(samples.get("rtts") or ()))

    @property
    def good_rtts(self) -> list[float]:
        """The RTTs of the echoes that were answered."""
        return [r for r in self.rtts if r is not None]

    @property
    def loss(self) -> float | None:
        """Loss ratio 0..1; None when nothing was sent (undefined, never 0)."""
        return None if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def rtt_min(self) -> float | None:
        """The lowest RTT, or None without replies."""
        good = self.good_rtts
        return min(good) if good else None

    @property
    def rtt_max(self) -> float | None:
        """The highest RTT, or None without replies."""
        good = self.good_rtts
        return max(good) if good else None

    @property
    def rtt_avg(self) -> float | None:
        """The mean RTT, or None without replies."""
        good = self.good_rtts
        return statistics.fmean(good) if good else None

    @property
    def rtt_median(self) -> float | None:
        """The median RTT, or None without replies."""
        good = self.good_rtts
        return statistics.median(good) if good else None

    @property
    def rtt_mdev(self) -> float | None:
        """Mean absolute deviation from the mean (as ping's mdev)."""
        good = self.good_rtts
        if not good:
            return None
        mean = statistics.fmean(good)
        return statistics.fmean(abs(r - mean) for r in good)

    @property
    def jitter(self) -> float | None:
        """IPDV jitter (RFC 5481): mean |RTT_i - RTT_{i-1}| over consecutive received packets."""
        return ipdv_jitter(self.rtts)

    def summary(self) -> dict[str, Any]:
        """Packets, loss and RTT figures as a dict (``slawatch probe``)."""
        return {
            "sent": self.sent,
            "received": self.received,
            "duplicates": self.duplicates,
            "late": self.late,
            "loss": self.loss,
            "rtt_min": self.rtt_min,
            "rtt_avg": self.rtt_avg,
            "rtt_median": self.rtt_median,
            "rtt_max": self.rtt_max,
            "rtt_mdev": self.rtt_mdev,
            "jitter": self.jitter,
        }

    def evidence(self) -> Evidence:
        """A reply is good; no reply to what was sent is bad; nothing sent (a local send error, a name that did
        not resolve) is no evidence about the target."""
        if self.ok:
            return Evidence("good")
        return Evidence("bad" if self.sent > 0 else "none", self.reason)

    def samples(self) -> Samples:
        """Packets sent and received, RTTs and jitter."""
        return Samples(sent=self.sent, received=self.received, rtts=tuple(self.good_rtts), rtt=self.rtt_median,
                       loss=self.loss, jitter=self.jitter)

    def record_samples(self) -> dict[str, Any]:
        """What the stored cycle keeps: each echo's RTT (None when lost), duplicates and late replies."""
        return {"rtts": [None if x is None else round(x, 7) for x in self.rtts], "dup": self.duplicates,
                "late": self.late}

    def lines(self) -> list[str]:
        """The evidence in words, for ``slawatch probe``."""
        s = self.summary()
        loss = "undefined" if s["loss"] is None else f"{s['loss'] * 100:.1f}%"
        return [f"sent {s['sent']}, received {s['received']}, loss {loss}, duplicates {s['duplicates']}, "
                f"late {s['late']}",
                f"rtt min/avg/median/max/mdev = {fmt_ms(s['rtt_min'])} / {fmt_ms(s['rtt_avg'])} / "
                f"{fmt_ms(s['rtt_median'])} / {fmt_ms(s['rtt_max'])} / {fmt_ms(s['rtt_mdev'])}; "
                f"jitter {fmt_ms(s['jitter'])}"]

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for JSON output)."""
        out = ProbeResult.to_dict(self)
        out["family"] = "ipv6" if self.family == socket.AF_INET6 else "ipv4"
        out["rtts"] = list(self.rtts)
        out.update(self.summary())
        return out


def ipdv_jitter(rtts: tuple[float | None, ...] | list[float | None]) -> float | None:
    """Mean absolute difference of RTTs of consecutive sequence numbers both received
    (RFC 5481 IPDV). None when fewer than two consecutive pairs exist."""
    diffs = [abs(b - a) for a, b in zip(rtts, rtts[1:]) if a is not None and b is not None]
    return statistics.fmean(diffs) if diffs else None


def rfc3550_jitter_update(jitter: float, d: float) -> float:
    """One step of the RFC 3550 §6.4.1 interarrival-jitter estimator: J += (|D| - J)/16."""
    return jitter + (abs(d) - jitter) / 16.0


# --------------------------------------------------------------------------- sockets

_mode_cache: dict[int, str] = {}


def _open_socket(family: int) -> tuple[socket.socket, str]:
    """An ICMP socket for ``family``: datagram (unprivileged) first, raw as fallback."""
    errors: list[OSError] = []
    order = ("dgram", "raw") if _mode_cache.get(family) != "raw" else ("raw",)
    for mode in order:
        kind = socket.SOCK_DGRAM if mode == "dgram" else socket.SOCK_RAW
        try:
            sock = socket.socket(family, kind, _PROTO[family])
        except PermissionError as exc:
            errors.append(exc)
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT):
                errors.append(exc)
                continue
            raise
        _mode_cache[family] = mode
        return sock, mode
    raise ProbeSetupError(_PERMISSION_HELP.format(uid=os.getuid(), gid=os.getgid()))


def socket_mode(family: int = socket.AF_INET) -> str:
    """Which socket kind this process gets for ICMP: 'dgram' or 'raw' (raises ProbeSetupError)."""
    sock, mode = _open_socket(family)
    sock.close()
    return mode


def check_icmp_permission() -> str:
    """Fail early, with the exact sysctl or capability to set, when ICMP cannot be sent."""
    return socket_mode(socket.AF_INET)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _packet(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", _ICMP_ECHO[family], 0, 0, ident, seq)
    csum = _checksum(header + payload) if family == socket.AF_INET else 0
    return struct.pack("!BBHHH", _ICMP_ECHO[family], 0, csum, ident, seq) + payload


def _kernel_time(ancdata: list) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return None


# --------------------------------------------------------------------------- the engine


class _Burst:
    """Book-keeping of one burst while it is in flight."""

    __slots__ = ("address", "dest", "family", "payload", "token", "timeout_ns", "timeout", "ttl", "dont_fragment",
                 "sent_at", "sent_mono", "rtts", "duplicates", "late", "waiting", "unsent", "done", "deadline", "used",
                 "send_errors", "mode")

    def __init__(self, address: str, dest: tuple, family: int, payload: bytes, token: bytes,
                 settings: IcmpSettings, done: asyncio.Future):
        self.address = address
        self.dest = dest
        self.family = family
        self.payload = payload
        self.token = token
        self.timeout = settings.timeout
        self.timeout_ns = int(settings.timeout * 1e9)
        self.ttl = settings.ttl
        self.dont_fragment = settings.dont_fragment
        count = settings.count
        self.sent_at: list[int | None] = [None] * count
        #: the same instants on the monotonic clock: an RTT across a step of the wall clock is taken from it
        self.sent_mono: list[int] = [0] * count
        self.rtts: list[float | None] = [None] * count
        self.duplicates = 0
        self.late = 0
        self.waiting = 0  # sent and neither answered nor late
        self.unsent = count  # the burst is complete only after its last send
        self.done = done
        self.deadline: asyncio.TimerHandle | None = None
        self.used: list[tuple["_Channel", int]] = []
        self.send_errors: list[str] = []
        self.mode: str | None = None

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def reply(self, index: int, recv_ns: int) -> None:
        sent = self.sent_at[index]
        if sent is None:
            return
        if self.rtts[index] is not None:
            self.duplicates += 1
            return
        rtt_ns = recv_ns - sent
        # the kernel stamps the reply on the wall clock (SO_TIMESTAMPNS), like the send time; if the wall clock
        # stepped in between, that difference is wrong, and the monotonic one (an upper bound: it includes the
        # wait until this reply was read) is taken instead
        mono_ns = time.monotonic_ns() - self.sent_mono[index]
        if rtt_ns < 0 or rtt_ns > mono_ns + 1_000_000:
            rtt_ns = mono_ns
        if rtt_ns > self.timeout_ns:
            self.late += 1
            self.rtts[index] = -1.0  # marks "handled": a second copy is a duplicate
        else:
            self.rtts[index] = max(rtt_ns, 0) / 1e9
        self.waiting -= 1
        if self.waiting <= 0 and self.unsent == 0:
            self.finish()


class _Channel:
    """One shared ICMP socket of one address family; replies are matched by sequence number.

    With a datagram socket the kernel delivers to this socket only the replies
    carrying its own ICMP id; with a raw socket we check the id ourselves."""

    def __init__(self, family: int, loop: asyncio.AbstractEventLoop, stats: "EngineStats"):
        self.family = family
        self.loop = loop
        self.stats = stats
        self.sock, self.mode = _open_socket(family)
        self.raw = self.mode == "raw"
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        except OSError:
            pass
        self.ident = int.from_bytes(os.urandom(2), "big")
        self.next_seq = int.from_bytes(os.urandom(2), "big")
        self.pending: dict[int, tuple[_Burst, int]] = {}
        self.options: tuple | None = None
        loop.add_reader(self.sock.fileno(), self._readable)

    def allocate(self) -> int | None:
        for _ in range(16):
            seq = self.next_seq
            self.next_seq = (seq + 1) & 0xFFFF
            if seq not in self.pending:
                return seq
        return None

    def set_options(self, ttl: int | None, dont_fragment: bool) -> None:
        wanted = (ttl, dont_fragment)
        if self.options == wanted:
            return
        v4 = self.family == socket.AF_INET
        hops = ttl if ttl is not None else 64
        if v4:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO if dont_fragment else 1)
        else:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops if ttl is not None else -1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_DO if dont_fragment else 1)
        self.options = wanted

    def _readable(self) -> None:
        sock, reply_type, pending, raw_v4 = self.sock, _ICMP_REPLY[self.family], self.pending, self.raw and self.family == socket.AF_INET
        for _ in range(4096):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            recv_ns = _kernel_time(anc) or time.time_ns()
            if raw_v4:
                if len(data) < 28:
                    continue
                data = data[(data[0] & 0x0F) * 4 :]
            if len(data) < 8 or data[0] != reply_type:
                continue
            ident, seq = struct.unpack_from("!HH", data, 4)
            if self.raw and ident != self.ident:
                continue
            entry = pending.get(seq)
            if entry is None:
                self.stats.unmatched += 1
                continue
            burst, index = entry
            if addr[0] != burst.address or data[8 : 8 + len(burst.token)] != burst.token:
                self.stats.unmatched += 1
                continue
            burst.reply(index, recv_ns)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.sock.fileno())
        finally:
            self.sock.close()


@dataclass(slots=True)
class EngineStats:
    """The shared ICMP engine's counters: sockets, sends, replies matched and dropped."""

    sent: int = 0
    send_errors: int = 0
    unmatched: int = 0


class IcmpEngine:
    """Sends bursts for many targets over a few shared sockets.

    Packets wait in one heap ordered by due time; a single timer callback
    sends what is due, at most one packet per ``gap`` seconds (like fping's
    ``-i``; 0 sends as fast as the bursts ask), and reads replies between
    sends so the receive buffer cannot overflow. Use one engine per event
    loop; close it when done."""

    DRAIN_EVERY = 64
    MAX_DEBT = 0.005

    def __init__(self, *, gap: float = 0.0):
        self.gap = gap
        self.stats = EngineStats()
        self._channels: dict[int, list[_Channel]] = {}
        self._queue: list[tuple[float, int, _Burst, int]] = []
        self._counter = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._last_slot = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- sockets ---------------------------------------------------------------------------
    def _channel(self, family: int) -> tuple[_Channel, int]:
        channels = self._channels.setdefault(family, [])
        for channel in channels:
            seq = channel.allocate()
            if seq is not None:
                return channel, seq
        channel = _Channel(family, self._running_loop(), self.stats)
        channels.append(channel)
        seq = channel.allocate()
        assert seq is not None
        return channel, seq

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the engine's first burst (the engine is used from that loop only)."""
        assert self._loop is not None, "the engine's loop is set by its first burst"
        return self._loop

    def mode(self, family: int = socket.AF_INET) -> str:
        """The socket kind in use for ``family``: raw or dgram (unprivileged ICMP)."""
        channels = self._channels.get(family)
        return channels[0].mode if channels else socket_mode(family)

    def close(self) -> None:
        """Close the sockets and stop the timer."""
        if self._timer:
            self._timer.cancel()
        for channels in self._channels.values():
            for channel in channels:
                channel.close()
        self._channels.clear()

    # -- the sender ------------------------------------------------------------------------
    def _arm(self) -> None:
        if not self._queue:
            return
        when = self._queue[0][0]
        if self.gap > 0:
            when = max(when, self._last_slot + self.gap)
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._running_loop().call_at(when, self._send_due)

    def _send_due(self) -> None:
        self._timer = None
        loop, queue, gap = self._running_loop(), self._queue, self.gap
        now = loop.time()
        since_drain = 0
        touched: set[_Channel] = set()
        while queue:
            due = queue[0][0]
            # a late wake-up catches up on the slots it missed (so the average pace holds),
            # but never by more than MAX_DEBT seconds' worth at once
            slot = max(due, self._last_slot + gap, now - self.MAX_DEBT) if gap > 0 else due
            if slot > now:
                break
            _, _, burst, index = heapq.heappop(queue)
            if burst.done.done():  # cancelled
                continue
            self._last_slot = slot
            channel = self._send(burst, index)
            if channel is not None:
                touched.add(channel)
            since_drain += 1
            if since_drain >= self.DRAIN_EVERY:
                since_drain = 0
                for ch in touched:
                    ch._readable()
                now = loop.time()
        self._arm()

    def _send(self, burst: _Burst, index: int) -> "_Channel | None":
        channel, seq = self._channel(burst.family)
        burst.mode = channel.mode
        channel.set_options(burst.ttl, burst.dont_fragment)
        if channel.raw:
            packet = _packet(burst.family, channel.ident, seq, burst.payload)
        else:  # the kernel sets id and checksum of datagram ICMP sockets
            packet = struct.pack("!BBHHH", _ICMP_ECHO[burst.family], 0, 0, 0, seq) + burst.payload
        channel.pending[seq] = (burst, index)
        burst.used.append((channel, seq))
        burst.unsent -= 1
        sent_ns, sent_mono = time.time_ns(), time.monotonic_ns()
        try:
            channel.sock.sendto(packet, burst.dest)
        except OSError as exc:
            del channel.pending[seq]
            self.stats.send_errors += 1
            burst.send_errors.append(exc.strerror or str(exc))
        else:
            burst.sent_at[index] = sent_ns
            burst.sent_mono[index] = sent_mono
            burst.waiting += 1
            self.stats.sent += 1
        if burst.unsent == 0:
            if burst.waiting == 0:
                burst.finish()
            else:
                burst.deadline = self._running_loop().call_later(burst.timeout, burst.finish)
        return channel

    # -- one burst ------------------------------------------------------------------------
    async def burst(self, address: str, settings: IcmpSettings, *, target_id: str = "") -> IcmpResult:
        """Send one burst to ``address`` (an IP literal or a host name) and collect replies.

        Never raises for an unreachable or unresolvable target; raises
        ProbeSetupError only when this host cannot send ICMP at all."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        started_wall = time.time()
        t0 = time.perf_counter()
        resolve_time = None

        def result(ok: bool, reason: str | None, family: int = socket.AF_INET, **extra: Any) -> IcmpResult:
            return IcmpResult(
                probe="icmp", target=target_id, address=address, started=started_wall,
                duration=time.perf_counter() - t0, ok=ok, reason=reason, family=family,
                resolve_time=resolve_time, **extra,
            )

        try:
            ip = ipaddress.ip_address(address.strip("[]"))
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            ip_text = str(ip)
        except ValueError:
            r0 = time.perf_counter()
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(address, None, type=socket.SOCK_RAW), timeout=settings.dns_timeout
                )
            except asyncio.TimeoutError:
                resolve_time = time.perf_counter() - r0
                return result(False, f"DNS resolution of {address} timed out after {settings.dns_timeout:g}s")
            except (socket.gaierror, UnicodeError) as exc:
                resolve_time = time.perf_counter() - r0
                return result(False, f"DNS resolution of {address} failed: {exc}")
            resolve_time = time.perf_counter() - r0
            family, ip_text = infos[0][0], str(infos[0][4][0])
        if is_ipv6_address(ip_text):
            family = socket.AF_INET6
        # open the socket now, so that a missing privilege is raised here, not in the timer callback
        if not self._channels.get(family):
            self._channel(family)

        token = os.urandom(min(8, settings.payload_size))
        payload = token + bytes(i & 0xFF for i in range(settings.payload_size - len(token)))
        dest = (ip_text, 0) if family == socket.AF_INET else (ip_text, 0, 0, 0)
        # replies of scoped IPv6 addresses come back without the scope suffix
        burst = _Burst(ip_text.split("%")[0], dest, family, payload, token, settings, loop.create_future())
        start = loop.time()
        for index in range(settings.count):
            self._counter += 1
            heapq.heappush(self._queue, (start + index * settings.spacing, self._counter, burst, index))
        self._arm()
        try:
            await burst.done
        finally:
            burst.finish()  # a cancelled burst leaves its queued packets unsent
            if burst.deadline is not None:
                burst.deadline.cancel()
            for channel, seq in burst.used:
                if channel.pending.get(seq, (None,))[0] is burst:
                    del channel.pending[seq]

        rtts = tuple(
            (r if r is not None and r >= 0 else None) for r, s in zip(burst.rtts, burst.sent_at) if s is not None
        )
        sent = len(rtts)
        received = sum(1 for r in rtts if r is not None)
        extra = dict(
            sent=sent, received=received, duplicates=burst.duplicates, late=burst.late, rtts=rtts,
            resolved_address=ip_text, socket_mode=burst.mode,
        )
        if sent == 0:
            why = burst.send_errors[0] if burst.send_errors else "unknown"
            return result(False, f"no echo request could be sent: {why}", family, **extra)
        if received == 0:
            reason = f"no reply to {sent} echo requests within {settings.timeout:g}s"
            if burst.late:
                reason += f" ({burst.late} late)"
            return result(False, reason, family, **extra)
        return result(True, None, family, **extra)


async def ping_burst(address: str, settings: IcmpSettings, *, target_id: str = "",
                     engine: IcmpEngine | None = None) -> IcmpResult:
    """One burst; with no engine given, a temporary one is opened and closed around it."""
    if engine is not None:
        return await engine.burst(address, settings, target_id=target_id)
    own = IcmpEngine()
    try:
        return await own.burst(address, settings, target_id=target_id)
    finally:
        own.close()


def settings_from(config: Any) -> IcmpSettings:
    """IcmpSettings from an IcmpProbeConfig (or as given)."""
    if isinstance(config, IcmpSettings):
        return config
    return IcmpSettings(
        count=config.count, spacing=config.spacing, timeout=config.timeout,
        payload_size=config.payload_size, ttl=config.ttl, dont_fragment=config.dont_fragment,
    )


async def icmp_probe(target_id: str, address: str, settings: IcmpProbeConfig | IcmpSettings, *,
                     context: Any = None) -> IcmpResult:
    """The registered ``icmp`` probe. ``settings`` is an IcmpProbeConfig or IcmpSettings;
    ``context.icmp_engine`` (a shared IcmpEngine) is used when given."""
    engine = getattr(context, "icmp_engine", None)
    return await ping_burst(address, settings_from(settings), target_id=target_id, engine=engine)
