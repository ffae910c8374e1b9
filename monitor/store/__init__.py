"""Storage behind a Protocol; SQLite is the embedded default."""

from .base import Batch, CycleRecord, OutageRecord, RunRecord, StateRecord, Store, UnknownRecord
from .sqlite import SCHEMA_VERSION, SqliteStore

__all__ = ["Store", "Batch", "UnknownRecord", "CycleRecord", "StateRecord", "OutageRecord", "RunRecord", "SqliteStore", "SCHEMA_VERSION", "open_store"]


def open_store(storage_config, *, readonly: bool = False) -> Store:
    """The store a StorageConfig describes (only 'sqlite' for now)."""
    store = SqliteStore(storage_config.path, readonly=readonly)
    if not readonly:
        store.migrate()
    return store
