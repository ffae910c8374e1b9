"""The one exception tree of slawatch.

Every error slawatch raises on purpose derives from :class:`SlawatchError`.
Catching it is enough to handle any expected failure; anything else is a bug.

    SlawatchError
    ├── ConfigError          the config file is missing or invalid (all problems listed)
    ├── StoreError           the store cannot be opened, migrated or written
    │   └── FencedError      a cluster node's write refused: its lease is gone
    ├── ClusterError         the cluster cannot be joined (duplicate node name, no PostgreSQL)
    ├── ProbeSetupError      a probe cannot run at all on this host (privileges, sockets)
    ├── NotYetImplemented    a capability that is planned but not built yet
    ├── TargetNotFound       a command named a target id that is not in the config
    ├── MibError             (monitor.config.mibnames) a MIB::name that cannot be resolved
    └── WireError            (probes.snmp_wire) a datagram that is not an SNMP message;
                             caught inside the SNMP client, never raised to callers

A *failing target* is never an exception: probes return a result with
``ok=False`` and a reason.
"""

from __future__ import annotations

import errno

__all__ = [
    "SlawatchError",
    "ConfigError",
    "StoreError",
    "FencedError",
    "ClusterError",
    "ProbeSetupError",
    "ListenError",
    "NotYetImplemented",
    "TargetNotFound",
]


class SlawatchError(Exception):
    """Base class of every error slawatch raises deliberately."""

    #: process exit code the CLI uses for this error class
    exit_code = 1


class ConfigError(SlawatchError):
    """The configuration is invalid. ``problems`` lists every problem found,
    each formatted as ``<yaml path>: <message>``."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{source}: {n} error{'s' if n != 1 else ''} in config"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))


class StoreError(SlawatchError):
    """The store cannot be opened, migrated or written (a wrong DSN, a refused connection, bad credentials,
    a schema newer than this code, a non-empty copy target): exit 2, one line, never the password."""

    exit_code = 2


class FencedError(StoreError):
    """A cluster node's write was refused: its lease expired or another instance took its name. The batch is
    not written (another node owns those targets now); the node rejoins under a new epoch."""


class ClusterError(SlawatchError):
    """The cluster cannot be joined (a live node has the same name, the store is not PostgreSQL)."""

    exit_code = 2


class ListenError(SlawatchError):
    """A listener cannot bind its address (taken by another process, or not allowed): one line naming the
    config key and the address, exit 2."""

    exit_code = 2

    def __init__(self, key: str, address: str, exc: BaseException):
        cause = exc
        while cause.__cause__ is not None or cause.__context__ is not None:  # pysnmp wraps the OSError
            if isinstance(cause, OSError):
                break
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        if isinstance(cause, OSError) and cause.errno in (errno.EADDRINUSE,):
            why = "the address is already in use (another slawatch, or another program, listens there)"
        elif isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM):
            why = "not allowed (a port below 1024 needs CAP_NET_BIND_SERVICE)"
        elif isinstance(cause, OSError) and cause.errno == errno.EADDRNOTAVAIL:
            why = "no interface of this host has that address"
        else:
            why = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(f"{key}: cannot listen on {address}: {why}")
        self.key, self.address = key, address


class ProbeSetupError(SlawatchError):
    """A probe cannot run on this host at all (e.g. no ICMP socket allowed)."""


class NotYetImplemented(SlawatchError):
    """A planned capability that this version does not provide yet."""

    exit_code = 3


class TargetNotFound(SlawatchError):
    """A command referred to a target id that the config does not define."""

    exit_code = 2
