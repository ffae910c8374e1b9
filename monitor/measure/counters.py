"""Interface utilization from SNMP counter deltas over the real elapsed time.

* A 32-bit counter (Counter32) that goes backwards without a reboot wrapped: add 2**32.
* A 64-bit counter (Counter64) does not wrap in practice: going backwards means the agent reset it
  (a reboot), so the interval is a gap, not a spike.
* A reboot (sysUpTime went backwards) makes the interval a gap for every counter.
* A missing sample is a gap.
* A 32-bit counter sampled further apart than it can wrap at the interface's speed may have wrapped
  more than once: that interval is a gap too (at 1 Gbit/s, 2**32 octets take 34 s).
"""

from __future__ import annotations

__all__ = ["counter_delta", "utilization", "rebooted", "interface_speed_mbps", "octet_counter"]


def rebooted(previous_uptime: int | None, uptime: int | None) -> bool:
    """sysUpTime (TimeTicks) going backwards means the agent restarted."""
    return previous_uptime is not None and uptime is not None and uptime < previous_uptime


def counter_delta(previous: int | None, current: int | None, bits: int, reboot: bool = False) -> int | None:
    """Increase of an SNMP counter between two samples across one wrap of ``bits``; None for a gap (reboot, reset)."""
    if previous is None or current is None or reboot:
        return None
    if current >= previous:
        return current - previous
    if bits == 32:
        return current + 2**32 - previous
    return None  # a 64-bit counter reset


def utilization(previous: int | None, current: int | None, elapsed_s: float, speed_mbps: float | None, bits: int = 64,
                reboot: bool = False) -> float | None:
    """Share of the interface's speed used between two octet-counter samples; None for a gap."""
    delta = counter_delta(previous, current, bits, reboot)
    if delta is None or not speed_mbps or elapsed_s <= 0:
        return None
    if bits == 32 and elapsed_s * speed_mbps * 1e6 / 8 >= 2**32:
        return None  # could have wrapped more than once: ambiguous
    return delta * 8 / (elapsed_s * speed_mbps * 1e6)


def interface_speed_mbps(cols: dict) -> float | None:
    """ifHighSpeed (Mbit/s) where the agent has it, else ifSpeed (bit/s, which tops out at 4.29 Gbit/s)."""
    if cols.get("ifHighSpeed"):
        return cols["ifHighSpeed"]
    if cols.get("ifSpeed"):
        return cols["ifSpeed"] / 1e6
    return None


def octet_counter(cols: dict, direction: str) -> tuple[str, int] | None:
    """(column, bits) of the octet counter to use: the 64-bit ifHC one when the agent has it, else the 32-bit one."""
    hc, legacy = ("ifHCInOctets", "ifInOctets") if direction == "in" else ("ifHCOutOctets", "ifOutOctets")
    if cols.get(hc) is not None:
        return hc, 64
    if cols.get(legacy) is not None:
        return legacy, 32
    return None
