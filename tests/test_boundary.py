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


def _live_writes(path: Path) -> list[str]:
    """Assignments to a field of a target's live state (``live.x = ...``, ``live.x += ...``) or of the LiveState
    (``self.live.x = ...``)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for leaf in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if not isinstance(leaf, ast.Attribute):
                    continue
                owner = leaf.value
                if isinstance(owner, ast.Name) and owner.id == "live":
                    out.append(f"line {leaf.lineno}: live.{leaf.attr}")
                elif isinstance(owner, ast.Attribute) and owner.attr == "live":
                    out.append(f"line {leaf.lineno}: .live.{leaf.attr}")
    return out


#: the LiveState's shared figures, each written by the one stage that produces it (monitor.service)
STAGE_FIGURES = {
    "monitor/measure/probing.py": {"contracts", "target_kinds", "site_units", "owned"},
    "monitor/measure/trapstage.py": {"traps"},
    "monitor/tickets/stage.py": {"ticket_counts", "open_outage_tickets", "outbox_pending", "delivery_failures"},
    "monitor/sla/stage.py": {"sla_time", "response_met"},
    "monitor/tickets/requests/stage.py": {"requests_open", "requests_next_breach", "request_breaches",
                                           "request_sources_read"},
}


def test_live_state_has_one_writer():
    """A target's live state is written only through its own methods (monitor/measure/live.py), which the producer of
    each figure calls (the cycle, ingestion, the daemon); the LiveState's shared figures only by the stage that
    produces them (STAGE_FIGURES) or the daemon (the cluster), and no figure by two stages."""
    found = {}
    for path in sorted([*(REPO / "monitor").rglob("*.py"), *(REPO / "probes").rglob("*.py")]):
        rel = str(path.relative_to(REPO))
        writes = [w for w in _live_writes(path)
                  if not (rel == "monitor/daemon.py" and w.split(": ")[1].startswith(".live."))
                  and w.split(": ")[1].rsplit(".", 1)[1] not in STAGE_FIGURES.get(rel, ())]
        if writes and rel != "monitor/measure/live.py":
            found[rel] = writes
    assert found == {}
    owners = [f for figures in STAGE_FIGURES.values() for f in figures]
    assert len(owners) == len(set(owners))  # one writer each
