"""ICMP echo probe: one burst of N echo requests per cycle, every RTT kept.

Design (see issue #3 for the measurements behind it):

* Each burst uses its own **unprivileged ICMP datagram socket**
  (``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)``, allowed by
  ``net.ipv4.ping_group_range``). The kernel demultiplexes replies to the
  socket that sent the request, so a busy host never makes one burst read
  another's replies. When that is not allowed, a raw socket (needs
  CAP_NET_RAW) is the fallback; it filters by ICMP id and a payload token.
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
import ipaddress
import os
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from icmplib import is_ipv6_address

from monitor.errors import ProbeSetupError

from .base import ProbeResult

__all__ = [
    "IcmpResult",
    "IcmpSettings",
    "icmp_probe",
    "ping_burst",
    "ipdv_jitter",
    "rfc3550_jitter_update",
    "check_icmp_permission",
    "socket_mode",
]

_ICMP_ECHO = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ICMP_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
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
    count: int = 3
    spacing: float = 0.2
    timeout: float = 1.0
    payload_size: int = 56
    ttl: int | None = None
    dont_fragment: bool = False
    dns_timeout: float = 2.0


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

    @property
    def good_rtts(self) -> list[float]:
        return [r for r in self.rtts if r is not None]

    @property
    def loss(self) -> float | None:
        """Loss ratio 0..1; None when nothing was sent (undefined, never 0)."""
        return None if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def rtt_min(self) -> float | None:
        good = self.good_rtts
        return min(good) if good else None

    @property
    def rtt_max(self) -> float | None:
        good = self.good_rtts
        return max(good) if good else None

    @property
    def rtt_avg(self) -> float | None:
        good = self.good_rtts
        return statistics.fmean(good) if good else None

    @property
    def rtt_median(self) -> float | None:
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

    def to_dict(self) -> dict[str, Any]:
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
    errors = []
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


# --------------------------------------------------------------------------- the burst


@dataclass(slots=True)
class _Burst:
    family: int
    ident: int
    token: bytes
    raw: bool
    sent_at: dict[int, int] = field(default_factory=dict)  # seq -> send time ns
    rtts: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    late: int = 0
    timeout_ns: int = 0
    all_in: asyncio.Event | None = None
    expected: int = 0

    def on_datagram(self, data: bytes, recv_ns: int) -> None:
        if self.raw and self.family == socket.AF_INET:
            if len(data) < 20:
                return
            data = data[(data[0] & 0x0F) * 4 :]
        if len(data) < 8:
            return
        kind, _code, _csum, ident, seq = struct.unpack_from("!BBHHH", data)
        if kind != _ICMP_REPLY[self.family]:
            return
        if self.raw and ident != self.ident:
            return
        if self.token and data[8 : 8 + len(self.token)] != self.token:
            return
        sent = self.sent_at.get(seq)
        if sent is None:
            return
        if seq in self.rtts:
            self.duplicates += 1
            return
        rtt_ns = recv_ns - sent
        if rtt_ns > self.timeout_ns:
            self.late += 1
            # mark as handled so that a second late copy counts as a duplicate
            self.rtts[seq] = -1.0
            return
        self.rtts[seq] = max(rtt_ns, 0) / 1e9
        if self.all_in is not None and len(self.rtts) >= self.expected:
            self.all_in.set()


async def ping_burst(
    address: str,
    settings: IcmpSettings,
    *,
    target_id: str = "",
    shown_address: str | None = None,
) -> IcmpResult:
    """Send one burst to ``address`` (an IP literal or a host name) and collect replies.

    Never raises for an unreachable or unresolvable target; raises
    ProbeSetupError only when this host cannot send ICMP at all."""
    started_wall = time.time()
    t0 = time.perf_counter()
    shown = shown_address or address
    resolve_time = None

    def failed(reason: str, family: int = socket.AF_INET, **extra: Any) -> IcmpResult:
        return IcmpResult(
            probe="icmp",
            target=target_id,
            address=shown,
            started=started_wall,
            duration=time.perf_counter() - t0,
            ok=False,
            reason=reason,
            family=family,
            resolve_time=resolve_time,
            **extra,
        )

    # --- resolve
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        ip_text = str(ip)
    except ValueError:
        loop = asyncio.get_running_loop()
        r0 = time.perf_counter()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(address, None, type=socket.SOCK_RAW), timeout=settings.dns_timeout
            )
        except asyncio.TimeoutError:
            resolve_time = time.perf_counter() - r0
            return failed(f"DNS resolution of {address} timed out after {settings.dns_timeout:g}s")
        except (socket.gaierror, UnicodeError) as exc:
            resolve_time = time.perf_counter() - r0
            return failed(f"DNS resolution of {address} failed: {exc}")
        resolve_time = time.perf_counter() - r0
        family, ip_text = infos[0][0], infos[0][4][0]
    if is_ipv6_address(ip_text):
        family = socket.AF_INET6

    sock, mode = _open_socket(family)
    raw = mode == "raw"
    token = os.urandom(min(8, settings.payload_size))
    payload = token + bytes((i & 0xFF for i in range(settings.payload_size - len(token))))
    burst = _Burst(
        family=family,
        ident=int.from_bytes(os.urandom(2), "big"),
        token=token,
        raw=raw,
        timeout_ns=int(settings.timeout * 1e9),
        all_in=asyncio.Event(),
        expected=settings.count,
    )
    loop = asyncio.get_running_loop()
    send_errors: list[str] = []
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if settings.ttl is not None:
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, settings.ttl)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, settings.ttl)
        if settings.dont_fragment:
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_DO)

        def readable() -> None:
            while True:
                try:
                    data, anc, _flags, _addr = sock.recvmsg(65535, 64)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                recv_ns = _kernel_time(anc) or time.time_ns()
                burst.on_datagram(data, recv_ns)

        loop.add_reader(sock.fileno(), readable)
        dest = (ip_text, 0) if family == socket.AF_INET else (ip_text, 0, 0, 0)
        start = loop.time()
        for seq in range(settings.count):
            delay = start + seq * settings.spacing - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = _packet(family, burst.ident, seq, payload)
            sent_ns = time.time_ns()
            try:
                sock.sendto(packet, dest)
            except OSError as exc:
                send_errors.append(exc.strerror or str(exc))
                continue
            burst.sent_at[seq] = sent_ns
        burst.expected = len(burst.sent_at)
        if burst.sent_at and len(burst.rtts) < burst.expected:
            last_sent = max(burst.sent_at.values())
            remaining = settings.timeout - (time.time_ns() - last_sent) / 1e9
            if remaining > 0:
                try:
                    await asyncio.wait_for(burst.all_in.wait(), timeout=remaining)
                except asyncio.TimeoutError:
                    pass
    finally:
        try:
            loop.remove_reader(sock.fileno())
        finally:
            sock.close()

    sent = len(burst.sent_at)
    rtts = tuple(
        (burst.rtts[s] if burst.rtts.get(s, -1.0) >= 0 else None) if s in burst.sent_at else None
        for s in range(settings.count)
        if s in burst.sent_at
    )
    received = sum(1 for r in rtts if r is not None)
    extra = dict(
        sent=sent,
        received=received,
        duplicates=burst.duplicates,
        late=burst.late,
        rtts=rtts,
        resolved_address=ip_text,
        socket_mode=mode,
    )
    if sent == 0:
        return failed(f"no echo request could be sent: {send_errors[0] if send_errors else 'unknown'}", family, **extra)
    if received == 0:
        reason = f"no reply to {sent} echo requests within {settings.timeout:g}s"
        if burst.late:
            reason += f" ({burst.late} late)"
        return failed(reason, family, **extra)
    return IcmpResult(
        probe="icmp",
        target=target_id,
        address=shown,
        started=started_wall,
        duration=time.perf_counter() - t0,
        ok=True,
        reason=None,
        family=family,
        resolve_time=resolve_time,
        **extra,
    )


async def icmp_probe(target_id: str, address: str, settings: Any) -> IcmpResult:
    """The registered ``icmp`` probe. ``settings`` is an IcmpProbeConfig or IcmpSettings."""
    if not isinstance(settings, IcmpSettings):
        settings = IcmpSettings(
            count=settings.count,
            spacing=settings.spacing,
            timeout=settings.timeout,
            payload_size=settings.payload_size,
            ttl=settings.ttl,
            dont_fragment=settings.dont_fragment,
        )
    return await ping_burst(address, settings, target_id=target_id)
