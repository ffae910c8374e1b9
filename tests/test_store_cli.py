"""`slawatch store migrate|status|copy` and start-up against a bad PostgreSQL, as real subprocesses."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, SLAWATCH
from monitor.store import Batch, SqliteStore
from monitor.store.postgres import PostgresStore
from test_reports import scenario, ts
from test_store import store_a_ticket

CONFIG = """\
storage: {storage}
exporter: {{enabled: false}}
contracts:
  - id: c1
    customer: Reseller Alliance
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
    monthly_fee: "1200.00"
    currency: EUR
    credit_tiers: [{{below: 99.9%, credit: 5%}}]
targets:
  - {{id: t1, contract: c1, kind: internet, address: 127.0.0.1, interval: 30s}}
  - {{id: t2, contract: c1, kind: internet, address: 127.0.0.2, interval: 30s}}
"""


def run(*args, env=None):
    import os

    return subprocess.run(SLAWATCH + list(args), capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, **(env or {})})


class _Sqlite:
    backend = "sqlite"

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path

    def __call__(self):
        store = SqliteStore(self.tmp_path / "src.db")
        store.migrate()
        return store


def test_copy_sqlite_to_postgresql_and_back_verifies_counts_and_reports(tmp_path, pg_cluster):
    cfg, store = scenario(_Sqlite(tmp_path), targets=("t1", "t2"),
                          outages=[("t1", ts(2026, 11, 10), ts(2026, 11, 10, 3))],
                          unknown=[("t2", ts(2026, 11, 20), ts(2026, 11, 20, 1))])
    store_a_ticket(store)
    from monitor.sla.rollup import Rollup

    store.write(Batch(monthly={("t1", "2026-11"): Rollup(), ("t2", "2026-11"): Rollup()}))
    store.close()
    dsn = pg_cluster.create_db()
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(storage=f"{{path: {tmp_path / 'src.db'}}}"))

    r = run("store", "copy", "-c", str(conf), "--from", f"sqlite:{tmp_path / 'src.db'}", "--to", dsn)
    assert r.returncode == 0, r.stderr
    from monitor.store import TABLES

    assert f"verified: row counts of {len(TABLES)} tables match" in r.stderr and len(TABLES) == 15  # 13 + #28's 2
    assert "verified: the reports of 1 months are identical in both stores (2026-11)" in r.stderr
    assert "pg-test-s3cret" not in r.stderr + r.stdout

    # a non-empty target is refused, and nothing in it changes
    r = run("store", "copy", "-c", str(conf), "--from", f"sqlite:{tmp_path / 'src.db'}", "--to", dsn)
    assert r.returncode == 2 and "is not empty" in r.stderr and "--overwrite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "s3cret" not in r.stderr
    pg = PostgresStore(dsn)
    assert pg.info().rows["outages"] == 1 and pg.info().rows["tickets"] == 1
    pg.close()
    r = run("store", "copy", "-c", str(conf), "--from", f"sqlite:{tmp_path / 'src.db'}", "--to", dsn, "--overwrite")
    assert r.returncode == 0, r.stderr

    # and back into a new SQLite file: the same report again, and the id sequences moved past the copied ids
    r = run("store", "copy", "-c", str(conf), "--from", dsn, "--to", f"sqlite:{tmp_path / 'back.db'}")
    assert r.returncode == 0 and "identical in both stores" in r.stderr, r.stderr
    pg = PostgresStore(dsn)
    store_a_ticket_again = pg.begin_run(1.0, "x")
    assert store_a_ticket_again == 1  # runs were empty; tickets: next id after the copied one
    with pg.tickets_tx() as tx:
        assert tx.insert_ticket("u2", "k", "c1", [], "minor", "x", "y", 1.0, None) == 2
    pg.close()


def test_store_status_and_migrate_on_postgresql(tmp_path, pg_cluster):
    dsn = pg_cluster.create_db()
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(storage="{backend: postgresql, dsn: '${PG_DSN}'}"))
    env = {"PG_DSN": dsn}
    r = run("store", "status", "-c", str(conf), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["schema_version"] == 0
    r = run("store", "migrate", "-c", str(conf), env=env)
    from monitor.store import SCHEMA_VERSION

    assert r.returncode == 0 and f"schema version {SCHEMA_VERSION} (migrated from 0)" in r.stdout, r.stderr
    r = run("store", "migrate", "-c", str(conf), env=env)
    assert "(already current)" in r.stdout
    r = run("store", "status", "-c", str(conf), env=env)
    assert r.returncode == 0 and "backend   postgresql" in r.stdout and "current" in r.stdout
    assert "s3cret" not in r.stdout


@pytest.mark.parametrize("how, message", [
    ("password", "password authentication failed"),
    ("refused", "failed"),
    ("newer", "newer than this slawatch understands"),
])
def test_run_with_a_bad_database_exits_2_with_one_line_and_no_password(tmp_path, pg_cluster, how, message):
    dsn = pg_cluster.create_db()
    if how == "password":
        dsn = dsn.replace("pg-test-s3cret", "wrong-s3cret")
    elif how == "refused":
        dsn = dsn.replace(f":{pg_cluster.port}/", ":1/")
    else:
        store = PostgresStore(dsn)
        store.migrate()
        store.close()
        from monitor.store.schema import SCHEMA_VERSION, stored_version

        # what a newer slawatch records (monitor.store.schema)
        pg_cluster.sql(f"INSERT INTO slawatch_schema (version) VALUES ({stored_version(SCHEMA_VERSION + 1)})",
                       dsn.rsplit("/", 1)[1])
    secret = tmp_path / "dsn"
    secret.write_text(dsn)
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(storage=f"{{backend: postgresql, dsn_file: {secret}}}"))
    r = run("run", "-c", str(conf))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and message in lines[0] and "s3cret" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_postgresql_without_dsn_is_a_config_error(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text(CONFIG.format(storage="{backend: postgresql}"))
    r = run("check-config", "-c", str(conf))
    assert r.returncode == 2 and "storage: the postgresql backend needs dsn (or dsn_file)" in r.stderr
