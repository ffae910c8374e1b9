"""A userspace ICMP echo responder for test hosts in network namespaces.

Run inside a namespace whose kernel ignores echo requests
(``net.ipv4.icmp_echo_ignore_all=1``). It answers IPv4 echo requests for any
local address, applying the rule of the request's destination address:

    {"default": {...}, "addresses": {"198.18.0.5": {"delay_ms": 20, "jitter_ms": 5,
                                                   "loss": 0.1, "duplicate": 0, "blackout": false}}}

* delay_ms   the reply leaves this long after the request arrived (kernel timestamp)
* jitter_ms  uniform in [-jitter, +jitter] around the delay (never below 0)
* loss       probability that a request gets no reply
* duplicate  extra copies of each reply
* blackout   no reply at all

SIGHUP reloads the rules file and prints "reloaded". It prints "ready" once it listens.
Standalone on purpose: it imports nothing from slawatch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import heapq
import socket
import struct
import sys
import threading
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def reply_packet(src: bytes, dst: bytes, icmp: bytes) -> bytes:
    body = b"\x00\x00\x00\x00" + icmp[4:]  # type 0 (echo reply), code 0, checksum 0, same id/seq/payload
    csum = checksum(body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    # IP header; the kernel fills in total length, id and header checksum for IP_HDRINCL
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, socket.IPPROTO_ICMP, 0, src, dst)
    return header + body


class Responder:
    def __init__(self, rules_path: str):
        self.rules_path = rules_path
        self.rules: dict = {}
        self.load()
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.rx.setblocking(False)
        self.rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.tx.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.tx.setblocking(False)
        self.random = random.Random()
        # delayed replies leave from a thread that sleeps precisely (asyncio's epoll timeouts
        # are rounded up to whole milliseconds, which would add up to 1 ms to every delay)
        self.queue: list[tuple[float, int, bytes, str]] = []
        self.counter = 0
        self.cond = threading.Condition()
        threading.Thread(target=self.sender, daemon=True).start()

    def load(self) -> None:
        with open(self.rules_path) as fh:
            self.rules = json.load(fh)

    def rule_for(self, address: str) -> dict:
        return self.rules.get("addresses", {}).get(address) or self.rules.get("default", {})

    def readable(self) -> None:
        while True:
            try:
                data, anc, _flags, _addr = self.rx.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            recv_wall = time.time()
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("@qq", cdata[:16])
                    recv_wall = sec + nsec / 1e9
            ihl = (data[0] & 0x0F) * 4
            if len(data) < ihl + 8 or data[ihl] != 8:  # echo request only
                continue
            src, dst = data[12:16], data[16:20]
            rule = self.rule_for(socket.inet_ntoa(dst))
            if rule.get("blackout") or self.random.random() < float(rule.get("loss", 0.0)):
                continue
            delay = float(rule.get("delay_ms", 0.0)) / 1000.0
            jitter = float(rule.get("jitter_ms", 0.0)) / 1000.0
            if jitter:
                delay = max(0.0, delay + self.random.uniform(-jitter, jitter))
            packet = reply_packet(dst, src, data[ihl:])
            copies = 1 + int(rule.get("duplicate", 0))
            # aim at the kernel arrival time plus the delay, not at "now" plus the delay
            at = recv_wall + delay
            with self.cond:
                for _ in range(copies):
                    self.counter += 1
                    heapq.heappush(self.queue, (at, self.counter, packet, socket.inet_ntoa(src)))
                self.cond.notify()

    def sender(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                at, _, packet, dest = self.queue[0]
                wait = at - time.time()
                if wait > 0.002:
                    self.cond.wait(timeout=wait - 0.002)
                    continue
                heapq.heappop(self.queue)
            if wait > 0:
                time.sleep(wait)
            try:
                self.tx.sendto(packet, (dest, 0))
            except OSError as exc:
                print(f"send failed: {exc}", file=sys.stderr, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", required=True)
    args = parser.parse_args()
    responder = Responder(args.rules)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        responder.load()
        print("reloaded", flush=True)

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_reader(responder.rx.fileno(), responder.readable)
    print("ready", flush=True)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
