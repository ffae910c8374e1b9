"""A content-addressed cache of large configs' parsed YAML, so that ``slawatch status`` and friends do not pay the
YAML parser on every run (issue #15: 10,000 targets are 0.7 MB of YAML, 0.37 s in libyaml and PyYAML's
resolver; the cached tree loads in 4 ms with :mod:`marshal`).

What is cached is exactly what the file says, as plain data (mappings, lists, text, numbers, booleans, nulls):
``${ENV}`` references and ``*_file`` secrets are resolved after the cache, so no environment value and no
secret file's contents are ever written to it. A tree marshal cannot hold (a YAML timestamp, binary) is simply
not cached. Entries are named by the SHA-256 of the text, so an edited file can never be served stale; each entry
carries the SHA-256 of its payload, and is read only from a directory and file the current user owns and no one
else may write. Any problem with the cache (no home directory, a read-only disk, a damaged entry) means parsing
as usual, never an error.

Where: ``$SLAWATCH_CACHE_DIR`` if set (empty turns the cache off), else ``$XDG_CACHE_HOME/slawatch``, else
``~/.cache/slawatch``. Only configs of at least :data:`MIN_BYTES` are cached, and the newest :data:`KEEP` entries
are kept.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MIN_BYTES", "KEEP", "cache_dir", "load", "store"]

#: smaller configs parse in a few milliseconds: not worth a file
MIN_BYTES = 256 * 1024
#: entries kept (one per config text seen recently)
KEEP = 8
_MAGIC = b"slawatch-yaml-1\n"


def cache_dir() -> Path | None:
    """The cache directory for this user, or None when there is none (off, or no home directory)."""
    configured = os.environ.get("SLAWATCH_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "slawatch"
    try:
        return Path.home() / ".cache" / "slawatch"
    except RuntimeError:  # no home directory (a system user)
        return None


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _entry(text: str) -> Path | None:
    directory = cache_dir()
    if directory is None or len(text) < MIN_BYTES:
        return None
    return directory / f"config-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}.marshal"


def load(text: str) -> Any | None:
    """The parsed tree of ``text`` if the cache holds it intact, else None."""
    path = _entry(text)
    if path is None:
        return None
    try:
        if not _private(os.stat(path.parent)):
            return None
        with open(path, "rb") as f:
            if not _private(os.fstat(f.fileno())):
                return None
            data = f.read()
        head = len(_MAGIC) + 32
        if data[: len(_MAGIC)] != _MAGIC or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC): head]:
            return None
        return marshal.loads(data[head:])
    except (OSError, ValueError, EOFError, TypeError):
        return None


def store(text: str, tree: Any) -> None:
    """Keep ``tree`` (parsed from ``text``) for next time; silently nothing if it cannot be kept."""
    path = _entry(text)
    if path is None:
        return
    try:
        payload = marshal.dumps(tree)
    except ValueError:  # a YAML timestamp, binary or set: parse it each time
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.stat(path.parent)):
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        entries = sorted(path.parent.glob("config-*.marshal"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return
