"""Processes the tests start, and proof that none is left behind.

Every peer and daemon a test starts runs in a process group of its own (:func:`spawn`), and is stopped with
the whole group (:func:`stop`): a server's workers go with it even when the server itself dies first (a
Kamailio TCP worker whose parent was killed once spun at 100 % of a core for 35 minutes).

The test run is the *child subreaper* of everything it starts (``PR_SET_CHILD_SUBREAPER``): a process whose
parent died is re-parented to pytest, not to init, so :func:`descendants` still finds it. ``conftest.py``
compares the descendants before and after every test and at the end of the run; what a test left running is
killed with its group and fails that test (and the run).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass

__all__ = ["spawn", "stop", "descendants", "become_subreaper", "Proc", "reap", "kill_groups", "outlives_test",
           "LONG_LIVED", "test_owned", "interpreters_own"]

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    pgid: int
    state: str
    start: int  # clock ticks after boot: with the pid, tells a process from a later one that reuses its pid
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} (group {self.pgid}, state {self.state}): {self.cmdline[:200]}"


def _read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    # the command name in parentheses may itself hold spaces and parentheses: split after the last ')'
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return Proc(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]), cmd or f"[{name}]")


def descendants(root: int | None = None) -> dict[tuple[int, int], Proc]:
    """Every live (not zombie) descendant of ``root`` (this process by default), keyed by (pid, start)."""
    root = os.getpid() if root is None else root
    procs = [p for p in (_read(int(d)) for d in os.listdir("/proc") if d.isdigit()) if p is not None]
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out: dict[tuple[int, int], Proc] = {}
    todo = [root]
    while todo:
        for p in children.get(todo.pop(), []):
            if p.state != "Z":
                out[(p.pid, p.start)] = p
            todo.append(p.pid)
    return out


#: processes (pid, start) that belong to a fixture wider than one test (the run's PostgreSQL, a module's lab
#: responder): they and everything under them may outlive the test during which they started
LONG_LIVED: set[tuple[int, int]] = set()


def outlives_test(proc: subprocess.Popen | int) -> subprocess.Popen | int:
    """Mark a process (or a pid) a test started for a wider-scoped fixture (stopped when that fixture ends)."""
    p = _read(proc if isinstance(proc, int) else proc.pid)
    if p is not None:
        LONG_LIVED.add((p.pid, p.start))
    return proc


def interpreters_own(p: Proc) -> bool:
    """multiprocessing's resource tracker: started by the first test that uses multiprocessing, it belongs to
    the test run's interpreter and ends with it."""
    return p.ppid == os.getpid() and "multiprocessing.resource_tracker" in p.cmdline


def test_owned(procs: dict[tuple[int, int], Proc]) -> dict[tuple[int, int], Proc]:
    """``procs`` without the long-lived ones and their descendants."""
    children: dict[int, list[tuple[int, int]]] = {}
    for k, p in procs.items():
        children.setdefault(p.ppid, []).append(k)
    skip = {k for k in LONG_LIVED if k in procs} | {k for k, p in procs.items() if interpreters_own(p)}
    todo = [k[0] for k in skip]
    while todo:
        for k in children.get(todo.pop(), []):
            if k not in skip:
                skip.add(k)
                todo.append(k[0])
    return {k: p for k, p in procs.items() if k not in skip}


def reap() -> None:
    """Collect adopted orphans that have exited (they become our zombies once we are their subreaper).

    Only processes that are neither a group leader nor in our own group: those are workers whose parent died,
    never a process a ``Popen`` waits for (that would lose its exit code)."""
    me, own = os.getpid(), os.getpgid(0)
    for p in list(descendants(me).values()) + _zombies(me):
        if p.ppid == me and p.state == "Z" and p.pgid not in (p.pid, own):
            try:
                os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _zombies(parent: int) -> list[Proc]:
    procs = (_read(int(d)) for d in os.listdir("/proc") if d.isdigit())
    return [p for p in procs if p is not None and p.ppid == parent and p.state == "Z"]


def kill_groups(procs: list[Proc]) -> None:
    """SIGKILL each process and its whole group (never our own group)."""
    own = os.getpgid(0)
    for p in procs:
        for fn, arg in ((os.killpg, p.pgid), (os.kill, p.pid)):
            if fn is os.killpg and arg == own:
                continue
            try:
                fn(arg, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` in a new session (and so a process group of its own, led by the process)."""
    kwargs.setdefault("start_new_session", True)
    return subprocess.Popen(cmd, **kwargs)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group of zombies answers too: only live members count
    return any(p.pgid == pgid and p.state != "Z" for p in descendants().values())


def stop(proc: subprocess.Popen | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop ``proc`` and every process of its group: ``sig`` first, SIGKILL after ``timeout`` seconds.

    Returns the process's exit code (None if there was no process). Only a process that leads its own group
    (started by :func:`spawn`) has its group signalled; any other is signalled alone."""
    if proc is None:
        return None
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    group = pgid if pgid == proc.pid else None
    send = (lambda s: os.killpg(group, s)) if group is not None else proc.send_signal
    if proc.poll() is None:
        try:
            send(sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            send(signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if group is not None:
        # the leader is gone; its workers may not be: give them the same time, then kill what is left
        deadline = time.monotonic() + timeout
        while _group_alive(group) and time.monotonic() < deadline:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            time.sleep(0.05)
            reap()
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap()
    return proc.returncode
