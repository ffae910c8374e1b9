"""Copy everything from one store to another (``slawatch store copy``), table by table, ids kept.

The target must be empty unless ``overwrite`` is given, which empties it first. Rows travel in the
canonical form of :data:`~monitor.store.base.TABLES` (times as unix seconds, JSON as objects), so any
backend can be the source or the target. The counts of every table are compared afterwards.
"""

from __future__ import annotations

from typing import Callable

from monitor.errors import StoreError
from monitor.store.base import TABLES, Store

__all__ = ["copy_store", "CopyResult"]


class CopyResult:
    """What a copy moved: rows per table in the source and the target, and the months with rollups."""

    def __init__(self) -> None:
        self.source: dict[str, int] = {}
        self.target: dict[str, int] = {}
        self.months: list[str] = []

    @property
    def counts_match(self) -> bool:
        """Whether every table has as many rows at the destination as at the source."""
        return self.source == self.target


def copy_store(src: Store, dst: Store, *, overwrite: bool = False,
               progress: Callable[[int, int, str], None] | None = None, chunk: int = 5000) -> CopyResult:
    """Copy every table from one store to another (SQLite to PostgreSQL and back), with progress."""
    result = CopyResult()
    result.source = src.info().rows
    if not result.source:
        raise StoreError(f"the source store ({src.location}) is not at this slawatch's schema version; "
                         "run `slawatch store migrate` on it first")
    dst.migrate()
    existing = {t: n for t, n in dst.info().rows.items() if n}
    if existing:
        if not overwrite:
            listed = ", ".join(f"{t} {n}" for t, n in existing.items())
            raise StoreError(f"the target store ({dst.location}) is not empty ({listed} rows); "
                             "use --overwrite to empty it first")
        dst.clear()
    total = sum(result.source.values())
    done = 0
    months: set[str] = set()
    for table in TABLES:
        for rows in src.dump_table(table, chunk):
            dst.load_table(table, rows)
            if table == "rollups_monthly":
                months.update(r[1] for r in rows)
            done += len(rows)
            if progress:
                progress(done, total, table)
    dst.finish_load()
    if progress and done < total:  # the source shrank while it was read (a retention purge): finish the bar
        progress(total, total, "done")
    result.target = dst.info().rows
    result.months = sorted(months)
    return result
