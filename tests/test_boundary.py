"""The storage boundary is sealed: no SQL, connection, cursor or store internals outside monitor/store/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|BEGIN|COMMIT|PRAGMA|WITH)\b[\s\S]*\b"
                 r"(FROM|INTO|SET|TABLE|INDEX|TRANSACTION|user_version|AS)\b", re.IGNORECASE)
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "psycopg2"}
INTERNALS = {"_db", "_lock", "_pool", "_conn", "_read", "_tx", "execute", "executemany", "cursor", "transaction"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in DRIVERS:
            out.append(f"imports from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in INTERNALS:
            out.append(f"line {node.lineno}: uses .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            out.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return out


def test_nothing_outside_the_store_touches_sql_or_a_connection():
    found = {}
    for path in sorted([*(REPO / "monitor").rglob("*.py"), *(REPO / "probes").rglob("*.py")]):
        if (REPO / "monitor" / "store") in path.parents:
            continue
        problems = _problems(path)
        if problems:
            found[str(path.relative_to(REPO))] = problems
    assert found == {}


def test_the_rule_catches_a_leak(tmp_path):
    leak = tmp_path / "leak.py"
    leak.write_text("import sqlite3\n\ndef f(store):\n    with store._lock:\n"
                    "        return store._db.execute('SELECT id FROM tickets WHERE state = ?', ('open',))\n")
    assert len(_problems(leak)) == 5
