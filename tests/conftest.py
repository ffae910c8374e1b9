"""Shared fixtures. Network traffic goes only to loopback or to namespaces the tests create."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLAWATCH = [sys.executable, "-m", "monitor.cli"]
# large configs' parsed YAML is cached per user (monitor.config.parse_cache): the tests and the daemons they start
# keep theirs in a directory of this run, never in the home directory
if "SLAWATCH_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["SLAWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="slawatch-test-cache-")


# ---------------------------------------------------------------------------- no process left behind
import procs as _procs  # noqa: E402

_procs.become_subreaper()
#: what tests left running (killed at once): the run fails at its end if this is not empty
LEFT_BEHIND: list[str] = []
#: seconds a test's processes get to exit after its teardown before they count as left behind
EXIT_GRACE = 15.0


def _wait_gone(before: dict, grace: float, everything: bool = False) -> list:
    import time

    deadline = time.monotonic() + grace
    while True:
        _procs.reap()
        now = _procs.descendants()
        new = [p for k, p in (now if everything else _procs.test_owned(now)).items()
               if k not in before and not _procs.interpreters_own(p)]
        if not new or time.monotonic() >= deadline:
            return new
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_process_left_behind(request):
    """Every process a test starts (and every worker of it) is gone when the test and its fixtures are done.

    Processes of wider-scoped fixtures (the run's PostgreSQL, a module's Request Tracker) exist before this
    fixture starts and are not counted. A process left behind is killed with its group and fails the test."""
    before = _procs.descendants()
    yield
    left = _wait_gone(before, EXIT_GRACE)
    if left:
        _procs.kill_groups(left)
        lines = [str(p) for p in left]
        LEFT_BEHIND.extend(f"{request.node.nodeid}: {line}" for line in lines)
        pytest.fail("processes left running after the test (killed now):\n  " + "\n  ".join(lines), pytrace=False)


class _WiderScopes:
    """Processes a module- or session-scoped fixture starts (even when a test asks for it lazily) live as long
    as that fixture: they do not count against the test during which they started. A plugin of its own, not a
    conftest hook: pytest calls a session fixture's hooks at the root, where this conftest is not consulted."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            return (yield)
        before = _procs.descendants()
        try:
            return (yield)
        finally:
            _procs.LONG_LIVED.update(k for k in _procs.descendants() if k not in before)


def pytest_configure(config):
    config.pluginmanager.register(_WiderScopes(), "slawatch-wider-scopes")


def pytest_sessionfinish(session, exitstatus):
    """At the end of the run (every fixture torn down): nothing the run started may still be running."""
    left = _wait_gone({}, EXIT_GRACE, everything=True)
    if left:
        _procs.kill_groups(left)
        LEFT_BEHIND.extend(f"(end of run): {p}" for p in left)
    if LEFT_BEHIND:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "processes left running by the tests (the run fails):\n  " + "\n  ".join(LEFT_BEHIND), red=True)
        if session.exitstatus == 0:
            session.exitstatus = 1


def wait_for(what: str, fn, timeout: float = 40.0, step: float = 0.3):
    """Poll ``fn`` until it returns something true (OSError counts as not yet); fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = fn()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def write_config(tmp_path):
    """Write dedented YAML to a file in tmp_path and return its path."""

    def write(text: str, name: str = "slawatch.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(scope="session")
def icmp_mode() -> str:
    """'dgram' or 'raw' when this process may send ICMP; skips the test otherwise."""
    from monitor.errors import ProbeSetupError
    from probes.icmp import socket_mode

    try:
        return socket_mode(socket.AF_INET)
    except ProbeSetupError as exc:
        pytest.skip(f"ICMP not permitted here ({exc}); run scripts/dev-setup or as root")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces / nftables); CI runs as root")


@pytest.fixture(scope="module")
def netlab():
    """A NetLab for the module; skipped with the reason when namespaces cannot be made."""
    from netlab import NetLab, can_build_netlab

    ok, why = can_build_netlab()
    if not ok:
        pytest.skip(why)
    lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def smtp_server(tmp_path):
    pytest.importorskip("aiosmtpd")
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"slawatch" and auth_data.password == b"s3cret-smtp"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    yield port, cert, received
    controller.stop()


# --------------------------------------------------------------------------- stores
#: the backend of tests that are not parametrized over every store: SLAWATCH_TEST_STORE=postgresql runs them on
#: PostgreSQL (a throwaway cluster the tests start), the default is SQLite
TEST_STORE = os.environ.get("SLAWATCH_TEST_STORE", "sqlite")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the whole run (initdb in a temp dir), or a skip saying why not."""
    from pgcluster import PgCluster, pg_bindir

    if pg_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing in CI (scripts/dev-setup installs postgresql)")
        pytest.skip("PostgreSQL server binaries not installed (scripts/dev-setup installs postgresql)")
    cluster = PgCluster(shared=True)
    try:
        yield cluster
    finally:
        cluster.close()


class StoreMaker:
    """Makes stores of one backend: each call a new, empty, migrated store (a new database on PostgreSQL)."""

    def __init__(self, backend: str, tmp_path: Path, request):
        self.backend = backend
        self.tmp_path = tmp_path
        self.request = request
        self.made: list = []
        self.last_location: str | None = None

    def location(self, name: str = "s") -> str:
        """A new empty store's location: a SQLite path or a PostgreSQL DSN."""
        if self.backend == "postgresql":
            return self.request.getfixturevalue("pg_cluster").create_db()
        return str(self.tmp_path / f"{name}-{len(self.made)}.db")

    def yaml(self, location: str | None = None, **extra) -> str:
        """The ``storage:`` mapping (flow style) for a config that uses this backend."""
        location = location or self.location()
        self.last_location = location
        opts = "".join(f", {k}: {v}" for k, v in extra.items())
        if self.backend == "postgresql":
            return f"{{backend: postgresql, dsn: '{location}'{opts}}}"
        return f"{{path: {location}{opts}}}"

    def open(self, location: str, migrate: bool = True):
        from monitor.store import open_url

        store = open_url(location if self.backend == "postgresql" else f"sqlite:{location}", migrate=migrate)
        self.made.append(store)
        return store

    def __call__(self, name: str = "s"):
        return self.open(self.location(name))

    def peek(self, location, fn):
        """``fn(store)`` on a store a daemon writes (or wrote), read-only where the backend allows it.
        None while the store does not exist or is not migrated yet."""
        from monitor.errors import StoreError
        from monitor.store import SqliteStore

        try:
            if self.backend == "postgresql":
                from monitor.store.postgres import PostgresStore

                store = PostgresStore(str(location), pool_size=1)
            else:
                if not Path(location).exists():
                    return None
                store = SqliteStore(location, readonly=True)
        except StoreError:
            return None
        try:
            return fn(store)
        except StoreError:
            return None
        finally:
            store.close()

    def close(self) -> None:
        for store in self.made:
            try:
                store.close()
            except Exception:
                pass


@pytest.fixture
def stores(tmp_path, request):
    """A StoreMaker of SLAWATCH_TEST_STORE's backend (SQLite by default)."""
    maker = StoreMaker(TEST_STORE, tmp_path, request)
    yield maker
    maker.close()


@pytest.fixture(params=BACKENDS)
def every_store(tmp_path, request):
    """A StoreMaker for each backend in turn: the contract suite runs over every store."""
    maker = StoreMaker(request.param, tmp_path, request)
    yield maker
    maker.close()


@pytest.fixture
def cluster_db(pg_cluster, icmp_mode):
    """A fresh database on the run's PostgreSQL for a cluster test: (dsn, an open store)."""
    from monitor.store.postgres import PostgresStore

    dsn = pg_cluster.create_db()
    store = PostgresStore(dsn)
    store.migrate()
    yield dsn, store
    store.close()
