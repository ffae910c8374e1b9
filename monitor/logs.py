"""Logging set-up: human-readable on a terminal, JSON lines under systemd or when configured."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

from monitor.secrets import redact

__all__ = ["iso", "setup_logging", "JsonFormatter", "Redactor", "config_secrets", "add_secrets", "RateLimited"]



def iso(ts: float | None) -> str:
    """Unix seconds as an ISO 8601 UTC time to the millisecond, for log lines (``2026-12-07T21:35:41.636Z``)."""
    if ts is None:
        return "-"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

def config_secrets(config) -> list[str]:
    """Every secret value in a config (pydantic SecretStr anywhere in the model)."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, SecretStr):
            value = node.get_secret_value()
            if len(value) >= 3:
                found.append(value)
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(config)
    return sorted(set(found), key=len, reverse=True)


class Redactor(logging.Filter):
    """Replaces secret values in every record (message, arguments and exception text) by ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret, in every form an upstream may echo it, replaced by ``***``."""
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record's message and arguments of secrets; never drops a record."""
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def add_secrets(secrets: list[str]) -> None:
    """Redact these too from now on (a reload's new config: its secrets before anything about it is logged)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, Redactor):
                f.secrets = sorted(set(f.secrets) | set(secrets), key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (ts, level, logger, msg), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON object per line (time in UTC, level, logger, message, exception)."""
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "auto", levels: Mapping[str, str] | None = None,
                  secrets: list[str] | None = None) -> None:
    """Configure the root logger: level, text or JSON, per-logger levels, and the secrets to redact."""
    if fmt == "auto":
        fmt = "json" if os.environ.get("JOURNAL_STREAM") or not sys.stderr.isatty() else "text"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(Redactor(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request URL at info
    for name, component_level in (levels or {}).items():
        logging.getLogger(name).setLevel(component_level.upper())


class RateLimited:
    """Says a repeated condition once, then at most every ``every`` seconds (monotonic clock)."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self._last: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """Whether ``key`` may be logged now (once per ``every`` seconds)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= self.every:
            self._last[key] = now
            return True
        return False

    def clear(self, key: str) -> bool:
        """Forget ``key``; True when it had been said (so its end is worth saying too)."""
        return self._last.pop(key, None) is not None
