"""PostgreSQL high availability with real parts (#33): Patroni with etcd, two PostgreSQL instances with
synchronous replication, slawatch on a DSN that lists both with target_session_attrs=read-write. The
primary is SIGKILLed: Patroni promotes the standby, slawatch reconnects to it, its spool drains in order,
and nothing that was acknowledged before the kill is lost."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import REPO, SLAWATCH, free_port, needs_root, wait_for
from daemonconfig import daemon_yaml
from procs import spawn, stop

pytestmark = [needs_root, pytest.mark.slow]

def test_a_patroni_failover_loses_nothing_acknowledged_and_the_backlog_drains(tmp_path, icmp_mode):
    from patroni import PatroniCluster, patroni_available

    from monitor.errors import StoreError
    from monitor.store.postgres import PostgresStore

    ok, why = patroni_available()
    if not ok:
        pytest.skip(why)
    pg = PatroniCluster(ttl=10)
    proc = None
    try:
        conf = tmp_path / "c.yaml"
        spool = tmp_path / "spool"
        conf.write_text(daemon_yaml(f"{{backend: postgresql, dsn: '{pg.dsn()}', flush_interval: 200ms, "
                                    f"connect_timeout: 2s, spool_dir: '{spool}'}}",
                                    f'{{listen: "127.0.0.1:{free_port()}"}}'))
        log = open(tmp_path / "d.log", "w+")
        proc = spawn(SLAWATCH + ["run", "-c", str(conf)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)

        def starts(target: str, since: float = 0.0) -> list[float] | None:
            try:
                store = PostgresStore(pg.dsn(), pool_size=1, connect_timeout=2)
                try:
                    return [c.started for c in store.cycles(target, since, float("inf"))]
                finally:
                    store.close()
            except StoreError:
                return None

        wait_for("cycles stored", lambda: len(starts("lo1") or []) >= 5, timeout=60)
        old = pg.primary()
        acknowledged = {t: starts(t) for t in ("lo1", "lo2")}  # committed on the primary, so on the sync standby
        pg.kill(old)
        killed = time.time()
        new = pg.wait_primary(timeout=90, other_than=old)
        promoted = time.time() - killed
        wait_for("cycles after the failover", lambda: any(s > killed + 2 for s in starts("lo1", killed) or []),
                 timeout=60)
        wait_for("the spool drained", lambda: not list(spool.glob("*.batch")), timeout=60)
        drained = time.time() - killed
        time.sleep(2)
        for t, before in acknowledged.items():
            now = starts(t)
            assert now is not None and set(before) <= set(now), f"{t}: acknowledged cycles lost in the failover"
            assert len(now) == len(set(now)), f"{t}: a cycle written twice"
            window = [s for s in now if s >= before[0]]
            gaps = [b - a for a, b in zip(window, window[1:])]
            assert max(gaps) < 2.5, (t, max(gaps))  # the failover's cycles were kept (spooled) and written
        assert proc.poll() is None
    finally:
        if proc is not None:
            stop(proc, timeout=30)
        pg.close()
    print(f"Patroni failover: {old} -> {new}; new primary {promoted:.1f} s after the kill, slawatch's backlog "
          f"written {drained:.1f} s after it")
