"""Storage behind a Protocol: SQLite (the embedded default) and PostgreSQL (shared by several nodes).

Everything that reads or writes stored evidence goes through :class:`Store`;
no SQL, connection or cursor exists outside this package.

May import (checked: pyproject.toml's import-linter layers): ``monitor.config`` and the bottom layer
(``monitor.errors``, ``events``); ``monitor.sla.rollup`` for the rollup blobs it encodes (an ignored import in
the contract, to move below the store).
"""

from __future__ import annotations

from typing import Any

from monitor.store.base import (TABLES, Batch, CycleRecord, Delivered, OutageRecord, OutboxItem, RunRecord, StateRecord, Store,
                   StoreInfo, Ticket, TicketTx, UnknownRecord)
from monitor.store.schema import SCHEMA_VERSION
from monitor.store.sqlite import SqliteStore

__all__ = ["Store", "TicketTx", "Batch", "UnknownRecord", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord",
           "Ticket", "OutboxItem", "Delivered", "StoreInfo", "TABLES", "SqliteStore", "SCHEMA_VERSION", "open_store",
           "open_url"]


def open_store(storage_config: Any, *, readonly: bool = False, migrate: bool = True) -> Store:
    """The store a StorageConfig describes; migrated to this version's schema unless ``readonly``."""
    store: Store
    if storage_config.backend == "postgresql":
        from monitor.store.postgres import PostgresStore

        store = PostgresStore(storage_config.dsn.get_secret_value(), pool_size=storage_config.pool_size,
                              connect_timeout=storage_config.connect_timeout, readonly=readonly)
    else:
        store = SqliteStore(storage_config.path, readonly=readonly)
    if migrate and not readonly:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def open_url(url: str, *, migrate: bool = False) -> Store:
    """A store named on the command line: ``sqlite:PATH`` (or a plain path) or a ``postgresql://`` URI."""
    if url.startswith(("postgresql://", "postgres://")) or ("=" in url and not url.startswith("sqlite:")):
        from monitor.store.postgres import PostgresStore

        store: Store = PostgresStore(url)
    else:
        store = SqliteStore(url[len("sqlite:"):] if url.startswith("sqlite:") else url)
    if migrate:
        store.migrate()
    return store
