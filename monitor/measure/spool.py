"""The writer's spool: batches the store could not take, on local disk, so a crash or a restart during a
database outage loses nothing (as a Zabbix proxy's buffer or Prometheus's remote-write WAL).

One file per batch, ``<sequence>-<cycles>-<id>.batch``, written to a temporary name, fsynced, renamed and the
directory fsynced: a file is either whole or absent. Replayed oldest first; each batch carries an id and the
store applies an id once (``applied_batches``), so a crash between a batch's commit and the removal of its file
never writes it twice. Bounded by ``max_bytes``: past it the writer keeps what is new in memory, with the
memory backlog's own bound and unknown-time accounting.

The directory is the daemon's own (mode 0700, owned by its user): a file in it is loaded with ``pickle``, so a
directory others can write to is refused.

May import: monitor.errors, monitor.store (its records).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
import stat
import threading
import uuid
from pathlib import Path

from monitor.errors import StoreError
from monitor.store.base import Batch, Fence

__all__ = ["Spool", "SpoolError"]

#: the format of a spool file's pickle; another one is not replayed (a downgrade says so)
FORMAT = 1
_NAME = re.compile(r"^(\d{12})-(\d+)-([0-9a-f]{32})\.batch$")


def _fields(path: Path) -> tuple[int, int]:
    """A spool file's sequence number and cycle count, from its name."""
    m = _NAME.match(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class SpoolError(StoreError):
    """The spool directory cannot be used (not ours, not writable) or a file in it is unreadable."""


class Spool:
    """Batches on local disk, oldest first."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        #: put runs in one thread while the replay reads and removes in another
        self._mutex = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = self.dir.stat()
        except OSError as exc:
            raise SpoolError(f"storage.spool_dir {self.dir}: {exc.strerror}") from None
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SpoolError(f"storage.spool_dir {self.dir}: must be owned by this user and writable by nobody else "
                             f"(chmod 700): its files are loaded as this daemon's own")
        try:  # one daemon a spool: a second one on the same directory would replay the first one's batches
            self._held = open(self.dir / ".lock", "a")
            fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SpoolError(f"storage.spool_dir {self.dir}: in use by another slawatch (each daemon needs its own)") \
                from None
        for tmp in self.dir.glob("*.tmp"):  # a write a crash cut short: never renamed, never acknowledged
            tmp.unlink(missing_ok=True)
        self._files: list[Path] = sorted(p for p in self.dir.iterdir() if _NAME.match(p.name))
        fields = [_fields(p) for p in self._files]
        self._seq: int = fields[-1][0] + 1 if fields else 0
        self.bytes: int = sum(p.stat().st_size for p in self._files)
        self.cycles: int = sum(cycles for _seq, cycles in fields)

    def __len__(self) -> int:
        return len(self._files)

    def put(self, batch: Batch, fence: Fence | None) -> bool:
        """Append ``batch`` (measured under ``fence``) durably; False when the spool is full or the disk fails
        (the caller keeps it in memory)."""
        if batch.id is None:
            batch.id = uuid.uuid4().hex
        data = pickle.dumps((FORMAT, fence, batch), protocol=pickle.HIGHEST_PROTOCOL)
        with self._mutex:
            if self.bytes + len(data) > self.max_bytes:
                return False
            seq = self._seq
        final = self.dir / f"{seq:012d}-{len(batch.cycles)}-{batch.id}.batch"
        tmp = final.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        with self._mutex:
            self._seq = seq + 1
            self._files.append(final)
            self.bytes += len(data)
            self.cycles += len(batch.cycles)
        return True

    def oldest(self) -> tuple[Path, Fence | None, Batch] | None:
        """The oldest batch and the fence it was measured under, or None when the spool is empty."""
        with self._mutex:
            if not self._files:
                return None
            path = self._files[0]
        try:
            fmt, fence, batch = pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise SpoolError(f"spool file {path}: unreadable ({type(exc).__name__}); move it away to go on") from None
        if fmt != FORMAT:
            raise SpoolError(f"spool file {path}: format {fmt}, this slawatch reads {FORMAT}")
        return path, fence, batch

    def remove(self, path: Path) -> None:
        """Forget a batch the store has (or refused for good)."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            size = 0
        with self._mutex:
            self._files.remove(path)
            self.bytes -= size
            self.cycles -= _fields(path)[1]
