"""A store's schema as data, to compare two ways of making it: SQLite's tables (columns with type, NOT NULL,
default and key), indexes (columns, uniqueness, partial) and WITHOUT ROWID; PostgreSQL's columns, constraints,
index definitions, partitioning, sequences and column comments. Names only, no data."""

from __future__ import annotations

import re
import sqlite3


def sqlite_schema(path: str) -> dict:
    db = sqlite3.connect(path)
    try:
        out: dict = {}
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            cols = [list(r[1:]) for r in db.execute(f"PRAGMA table_info({name})")]
            indexes = {}
            for _, iname, unique, origin, partial in db.execute(f"PRAGMA index_list({name})"):
                icols = [r[2] for r in db.execute(f"PRAGMA index_info({iname})")]
                where = None
                if partial:
                    isql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (iname,)).fetchone()[0]
                    where = " ".join(isql.split(" WHERE ", 1)[1].split())
                key = iname if origin == "c" else f"{origin}:{','.join(icols)}"
                indexes[key] = [icols, bool(unique), where]
            fks = [list(r[2:5]) for r in db.execute(f"PRAGMA foreign_key_list({name})")]
            out[name] = {"columns": cols, "indexes": dict(sorted(indexes.items())), "foreign_keys": sorted(fks),
                         "without_rowid": bool(re.search(r"WITHOUT\s+ROWID", sql, re.I))}
        return out
    finally:
        db.close()


def postgres_schema(conn) -> dict:
    """``conn``: a psycopg connection to the store's database."""
    out: dict = {}
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1")]
    for t in tables:
        cols = [list(r) for r in conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default, col_description(%s::regclass, ordinal_position)"
            " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (t, t))]
        cons = sorted([r[0], r[1]] for r in conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass", (t,)))
        idx = sorted([r[0], r[1]] for r in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = %s", (t,)))
        part = conn.execute("SELECT pg_get_partkeydef(%s::regclass)", (t,)).fetchone()[0]
        opts = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (t,)).fetchone()[0]
        out[t] = {"columns": cols, "constraints": cons, "indexes": idx, "partition": part, "options": opts}
    out["sequences"] = sorted(r[0] for r in conn.execute(
        "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'"))
    return out
