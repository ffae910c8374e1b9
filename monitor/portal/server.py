"""``slawatch portal``: the portal served by uvicorn on the config's ``portal.listen`` (loopback by default),
over TLS when ``portal.tls`` is set, on the daemon's store opened read-only. The socket is bound here first, so
an address in use is a one-line error naming ``portal.listen``, never a traceback."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from monitor.errors import ConfigError, SlawatchError, StoreError

__all__ = ["serve", "bind"]

log = logging.getLogger("slawatch.portal")


def bind(listen: str, source: str = "<config>") -> socket.socket:
    """A listening TCP socket on ``host:port`` (``[v6]:port`` for IPv6)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(source, [f"portal.listen: cannot listen on {listen}: {exc.strerror or exc}"]) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: Any, source: str = "<config>") -> int:
    """Run the portal until SIGTERM or SIGINT; returns the exit code."""
    import uvicorn

    from monitor.portal.app import build_app
    from monitor.store import open_store

    if config.portal is None:
        raise ConfigError(source, ["portal: not configured (users, tokens and session_secret; see "
                                   "config/reference.yaml)"])
    sock = bind(config.portal.listen, source)
    try:
        store = open_store(config.storage, readonly=True)
        store.schema_version()
    except (StoreError, OSError) as exc:
        sock.close()
        raise SlawatchError(f"the portal cannot read the store: {exc}") from None
    tls = config.portal.tls
    kwargs: dict[str, Any] = {}
    if tls is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            store.close()
            raise ConfigError(source, [f"portal.tls: cannot load {tls.cert_file} / {tls.key_file}: {exc}"]) from None
        kwargs = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    app = build_app(config, store, secure_cookies=tls is not None)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, server_header=False,
                                           limit_concurrency=256, timeout_keep_alive=5,
                                           timeout_graceful_shutdown=5, **kwargs))
    log.warning("portal listening on %s (%s)", config.portal.listen, "https" if tls else "http")
    # uvicorn stops on SIGTERM, then raises it again for the handler it found: ours ends the run cleanly (exit 0)
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    log.warning("portal stopped")
    return 0
