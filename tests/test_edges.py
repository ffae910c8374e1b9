"""Evidence exact at its edges (issue #31): a figure exactly at an objective meets it, everywhere it is judged.

Each objective is tried at the value exactly at it, just below and just above: the per-cycle judgement, the voice
sample the rollups keep, the month's figures and the credit. The figures are the contract's own arithmetic."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from monitor.config import parse_config
from monitor.exact import at_least, at_most, exact
from monitor.measure.ingest import voice_sample
from monitor.sla.availability import Availability
from monitor.sla.credits import compliance
from monitor.sla.monthly import _objective_figures
from monitor.sla.rollup import Rollup
from probes.base import Samples, judge


def contract_config(objectives: dict, tiers: list | None = None, kind: str = "internet"):
    contract = {"id": "c1", "customer": "A", "provider": "B", "timezone": "UTC", "objectives": objectives}
    if tiers:
        contract["credit_tiers"] = tiers
    return parse_config({"contracts": [contract],
                         "targets": [{"id": "t1", "contract": "c1", "kind": kind, "address": "127.0.0.1"}]})


def test_exact_reads_a_float_as_the_decimal_it_prints():
    assert exact(0.15) == Fraction(3, 20) and exact(Decimal("0.7")) == Fraction(7, 10)
    assert exact(0.7000000000000001) > Fraction(7, 10)  # a float that is not 0.7 stays above it
    assert at_most(0.15, 0.15) and not at_most(0.150001, 0.15) and at_most(0.149999, 0.15)
    assert at_least(4.0, 4.0) and not at_least(3.9999, 4.0)
    assert not at_most(float("inf"), 1.0) and at_least(float("inf"), 1.0)


@pytest.mark.parametrize("lost,met", [(6, True), (7, True), (8, False)])
def test_loss_at_the_objective_is_met_per_cycle(lost, met):
    """7 of 1,000 echoes is 0.7000000000000001 % in binary floats: it was judged above ``loss: 0.7%``."""
    config = contract_config({"availability": "99%", "loss": "0.7%"})
    samples = Samples(sent=1000, received=1000 - lost, loss=(1000 - lost and lost / 1000), rtt=0.01)
    assert judge(samples, config.contracts[0].objectives)["loss"] is met
    assert samples.loss_exact == Fraction(lost, 1000)


@pytest.mark.parametrize("name,field,limit,values", [
    ("latency", "rtt", {"percentile": 95, "max": "150ms"}, (0.149, 0.15, 0.151)),
    ("jitter", "jitter", "20ms", (0.0199, 0.02, 0.0201)),
    ("response_time", "response", {"percentile": 95, "max": "300ms"}, (0.299, 0.3, 0.301)),
    ("one_way_delay", "rtt", "75ms", (0.149, 0.15, 0.151)),  # half the RTT
])
def test_each_upper_objective_met_at_and_below_missed_above(name, field, limit, values):
    config = contract_config({"availability": "99%", name: limit})
    below, at, above = (judge(Samples(**{field: v}), config.contracts[0].objectives)[name] for v in values)
    assert (below, at, above) == (True, True, False)


def test_certificate_days_at_the_minimum_are_met():
    config = contract_config({"availability": "99%", "tls_expiry_min": "14d"})
    obj = config.contracts[0].objectives
    assert [judge(Samples(tls_days_left=d), obj)["tls_expiry"] for d in (13.999, 14.0, 14.001)] == [False, True, True]


def test_mos_at_the_objective_is_not_below_it():
    """The voice sample's MOS is judged with the same rule: exactly at ``mos`` is not below it."""
    from monitor.sla.emodel import voice_quality

    config = contract_config({"availability": "99%"}, kind="voice")
    v = config.contracts[0].voice
    q = voice_quality(0.02, 0.002, 0.0, codec=v.codec, codec_delay_s=v.codec_delay,
                      jitter_buffer_factor=v.jitter_buffer_factor, advantage=v.advantage)
    for objective, below in ((q.mos, False), (q.mos + 1e-9, True), (q.mos - 1e-9, False)):
        config = contract_config({"availability": "99%", "mos": round(objective, 12)}, kind="voice")
        sample = voice_sample(Samples(sent=10, received=10, rtt=0.02, jitter=0.002, loss=0.0), config.contracts[0])
        assert sample is not None
        assert sample.below_mos is (not at_least(q.mos, round(objective, 12))), objective
        assert sample.below_mos is below or round(objective, 12) != objective


def test_a_month_losing_exactly_the_objective_pays_no_credit():
    """Every burst of the month loses exactly 7 of 1,000 under ``loss: 0.7%`` with a loss credit tier: the loss
    is met, compliance is 100 %, no tier applies (it paid 20.00 and counted the month as missed)."""
    from monitor.sla.credits import tier_for

    config = contract_config({"availability": "99%", "loss": "0.7%"},
                             tiers=[{"objective": "loss", "below": "99%", "credit": "20%"}])
    contract, target = config.contracts[0], config.targets[0]
    r = Rollup()
    rtts = [0.01] * 993
    for _ in range(500):
        sample = voice_sample(Samples(sent=1000, received=993, rtts=tuple(rtts), rtt=0.01, loss=0.007), contract,
                              voice=False)
        r.add_cycle("good", False, 1000, 993, rtts, None, sample)
    figures = _objective_figures(contract, target, r, Availability(0, 1, 0, 0, 0, 0, "exclude", ()))
    assert figures["loss"]["met"] is True
    assert compliance("loss", contract, None, r) == 100
    assert tier_for(compliance("loss", contract, None, r), contract.credit_tiers, "loss") is None


@pytest.mark.parametrize("name,limit,value,met", [
    ("latency", {"percentile": 50, "max": "10ms"}, None, True),
    ("jitter", "2ms", 0.002, True),
    ("jitter", "2ms", 0.0020001, False),
])
def test_monthly_figures_meet_at_the_objective(name, limit, value, met):
    config = contract_config({"availability": "99%", name: limit})
    contract, target = config.contracts[0], config.targets[0]
    r = Rollup()
    for _ in range(10):
        r.add_cycle("good", False, 3, 3, [0.01] * 3, value, voice_sample(Samples(sent=3, received=3, rtts=(0.01,) * 3,
                                                                                  rtt=0.01, loss=0.0, jitter=value),
                                                                          contract, voice=False))
    figures = _objective_figures(contract, target, r, Availability(0, 1, 0, 0, 0, 0, "exclude", ()))
    assert figures[name]["met"] is met, figures[name]


# ------------------------------------------------------------------ the interval rule and the scheduler agree
SMALLEST = """\
storage: {{path: {db}, flush_interval: 200ms}}
exporter: {{enabled: false}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
targets:
  - {{id: t1, contract: c1, kind: internet, address: {address}, interval: {interval}, failure_threshold: 2,
      recovery_threshold: 2, probes: {{icmp: {{count: 3, spacing: 200ms, timeout: 1s}}}}}}
"""


def test_the_smallest_accepted_interval_is_refused_one_step_below(tmp_path):
    """3 echoes 200 ms apart with a 1 s timeout take 1.4 s when nothing answers: 1.4 s (accepted before, and it
    overran in every outage) is refused with the margin in words; 1.45 s is the smallest accepted."""
    from conftest import REPO, SLAWATCH
    import subprocess

    for interval, ok in (("1400ms", False), ("1449ms", False), ("1450ms", True)):
        path = tmp_path / f"{interval}.yaml"
        path.write_text(SMALLEST.format(db=tmp_path / "s.db", address="127.0.0.1", interval=interval))
        r = subprocess.run(SLAWATCH + ["check-config", "-c", str(path)], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode == 0) is ok, (interval, r.stdout, r.stderr)
        if not ok:
            assert "targets[0].interval" in r.stderr + r.stdout and "at least 1.45 s" in r.stderr + r.stdout, r.stderr
            assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_blackout_at_the_smallest_accepted_interval_is_all_downtime(tmp_path, netlab, icmp_mode):
    """A namespace host blacked out for 20 s, probed at the smallest interval check-config accepts: every cycle
    of the blackout takes the probes' whole worst case, yet no slot is lost to an overrun, the outage covers
    the blackout, and none of it is unknown time (10.8 s of a 20 s blackout was, at 1.4 s)."""
    import signal
    import subprocess
    import time

    from conftest import REPO, SLAWATCH, wait_for
    from monitor.store import SqliteStore
    from procs import spawn, stop

    host = netlab.add_host("smallest")
    db = tmp_path / "s.db"
    interval = 1.45
    path = tmp_path / "c.yaml"
    path.write_text(SMALLEST.format(db=db, address=host.address(), interval="1450ms"))
    log = open(tmp_path / "daemon.log", "w+")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    blackout = 20.0
    try:
        def store_peek(fn):
            if not db.exists():
                return None
            s = SqliteStore(db, readonly=True)
            try:
                return fn(s)
            except Exception:
                return None
            finally:
                s.close()

        wait_for("up", lambda: store_peek(lambda s: (st := s.state("t1")) is not None and st.state == "up"),
                 timeout=30)
        host.cut()
        cut = time.time()
        time.sleep(blackout)
        host.restore()
        back = time.time()
        wait_for("the outage ends", lambda: store_peek(
            lambda s: [o for o in s.outages("t1") if o.kind == "down" and o.end is not None]), timeout=30)
        assert stop(proc, timeout=30, sig=signal.SIGTERM) == 0
    finally:
        stop(proc)
        host.restore()
    store = SqliteStore(db)
    try:
        [outage] = [o for o in store.outages("t1") if o.kind == "down"]
        cycles = store.cycles("t1", cut - 5, back + 5)
        bad = [c for c in cycles if c.verdict == "bad"]
        assert bad and max(c.duration for c in bad) >= 1.4  # the blackout's cycles took the whole worst case
        starts = [c.started for c in cycles]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert max(gaps) < 1.5 * interval, gaps  # no slot skipped
        assert not [u for u in store.unknown_intervals("t1", cut - 5, back + 5)], "unknown time in the blackout"
        # the outage runs from the first bad cycle to the first good one: the blackout within one interval each side
        assert cut - interval <= outage.start <= cut + interval, (outage.start - cut)
        assert back - interval <= outage.end <= back + 2 * interval, (outage.end - back)
        assert outage.end - outage.start >= blackout - 2 * interval
    finally:
        store.close()


# ------------------------------------------------------------------ a cycle's evidence covers its own slot
def test_coverage_after_the_last_cycle_is_unknown_from_the_end_of_its_slot():
    from monitor.sla.timeline import coverage_gaps

    last = 1_800_000_000.0
    # a report 2.74 s after the last cycle of a 2 s target: 0.74 s without evidence (it counted as up)
    assert coverage_gaps(last - 100, last, 2.0, 0, int((last + 2.74) * 1000)) == [
        (0, int((last - 100) * 1000)), (int((last + 2) * 1000), int((last + 2.74) * 1000))]
    # within the cycle's own slot nothing is unknown
    assert coverage_gaps(last - 100, last, 2.0, 0, int((last + 1.9) * 1000)) == [(0, int((last - 100) * 1000))]


def test_a_stopped_daemons_month_counts_the_time_after_its_last_slot_as_unknown(tmp_path, request):
    """A day of 5-minute cycles, then the daemon stops: a report 411 s (1.37 intervals) after the last cycle
    counts 111 s unknown (it counted them as up: unknown began only at 1.5 intervals)."""
    import test_ingest_month as m

    from conftest import StoreMaker
    from monitor.measure.live import TargetLive
    from monitor.measure.state import TargetTracker
    from monitor.sla.monthly import compute_month, load_month

    config = parse_config(m.CONFIG)
    maker = StoreMaker("sqlite", tmp_path, request)
    try:
        store = maker()
        live = TargetLive("t1", "c1", "internet", TargetTracker("t1", failure_threshold=3, recovery_threshold=1))
        start, end = m.ts(2026, 11, 1), m.ts(2026, 11, 2)
        m.feed(store, config, start, end, live)
        last = end - m.STEP
        now = last + 411
        [c1] = compute_month(config, load_month(store, config, "2026-11"), int(now * 1000))
        a = c1.targets[0].availability
        # before the first cycle: nothing; after the last one's slot (last + 300 s) to now: 111 s. The rest of the
        # month has not happened yet: the figure ends at now (#27), it is neither unknown nor up
        assert a.unknown_ms == 111_000 and a.end_ms == int(now * 1000), a
        assert a.downtime_ms == 0
    finally:
        maker.close()


# ------------------------------------------------------------------ a diagnostic signal never ends the daemon
@pytest.mark.slow
def test_500_sigusr1_while_the_exporter_is_scraped(tmp_path):
    """A client scrapes ``/-/healthy`` and ``/metrics`` in a loop while the daemon gets 500 SIGUSR1, one every
    10 ms: it keeps running and answering, dumps its stacks at most once a second, and stops cleanly (it died
    of SIGSEGV after 8 to 29 signals under faulthandler)."""
    import json
    import signal
    import subprocess
    import threading
    import time
    import urllib.request

    from conftest import REPO, SLAWATCH, free_port, wait_for
    from procs import spawn, stop

    port = free_port()
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
storage: {{path: {tmp_path / 's.db'}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
logging: {{format: json}}
contracts:
  - {{id: c1, customer: ACME, provider: ExampleTel, objectives: {{availability: 99.9%}}}}
targets:
  - {{id: lo1, contract: c1, kind: internet, address: 127.0.0.1, interval: 1s,
      probes: {{icmp: {{count: 2, spacing: 10ms, timeout: 300ms}}}}}}
""")
    log = open(tmp_path / "d.log", "w+")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    done = threading.Event()
    answers = {"ok": 0, "failed": 0}

    def scrape_loop():
        while not done.is_set():
            for route in ("/-/healthy", "/metrics"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5) as r:
                        r.read()
                    answers["ok"] += 1
                except OSError:
                    answers["failed"] += 1

    try:
        wait_for("the exporter", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2))
        client = threading.Thread(target=scrape_loop, daemon=True)
        client.start()
        t0 = time.monotonic()
        for _ in range(500):
            proc.send_signal(signal.SIGUSR1)
            time.sleep(0.01)
            assert proc.poll() is None, f"the daemon died (exit {proc.returncode})"
        elapsed = time.monotonic() - t0
        time.sleep(1.5)
        done.set()
        client.join(10)
        assert proc.poll() is None, f"the daemon died (exit {proc.returncode})"
        assert answers["ok"] > 50 and answers["failed"] == 0, answers
        assert stop(proc, timeout=30) == 0
    finally:
        done.set()
        stop(proc)
    log.seek(0)
    lines = [json.loads(x) for x in log.read().splitlines() if x.startswith("{")]
    dumps = [x for x in lines if x["msg"].startswith("stack dump on SIGUSR1")]
    assert 1 <= len(dumps) <= elapsed + 3, len(dumps)  # at most one a second
    assert any("not dumped" in x["msg"] for x in dumps)
    assert "thread MainThread" in dumps[0]["msg"]
    assert lines[-1]["msg"] == "stopped cleanly"


# ------------------------------------------------------------------ secrets in every form an upstream echoes
@pytest.mark.parametrize("form", [
    lambda s: s,
    lambda s: "Basic " + __import__("base64").b64encode(f"u:{s}".encode()).decode(),
    lambda s: "Basic " + __import__("base64").b64encode(f"noc-user:{s}".encode()).decode().rstrip("="),
    lambda s: __import__("base64").urlsafe_b64encode(f"xx{s}yy".encode()).decode(),
    lambda s: "Bearer " + s,
    lambda s: "?token=" + __import__("urllib.parse").parse.quote(s, safe=""),
    lambda s: "?token=" + "".join(f"%{b:02X}" for b in s.encode()),  # every byte escaped
    lambda s: __import__("json").dumps({"token": s}),
    lambda s: s.encode().hex(),
], ids=["raw", "basic", "basic-unpadded", "b64url-inside", "bearer", "url", "url-all", "json", "hex"])
def test_redact_finds_every_form(form):
    from monitor.secrets import redact

    secret = "SEC-JIRATOK-b5c6"
    text = f"invalid credentials: {form(secret)} (HTTP 401)"
    out = redact(text, [secret])
    assert "***" in out and "invalid credentials:" in out and "(HTTP 401)" in out, out
    assert secret not in out and form(secret) not in out, out


def test_redact_leaves_other_text_alone():
    from monitor.secrets import redact

    text = "GET /rest/api/2/issue?jql=labels%3Dslawatch 100% of 3 echoes; id dGhpcyBpcyBmaW5l"
    assert redact(text, ["SEC-JIRATOK-b5c6"]) == text


# ------------------------------------------------------------------ messages: one line naming the key
def _listeners(tmp_path, exporter: str, traps: str) -> str:
    from daemonconfig import daemon_yaml

    return daemon_yaml(f"{{path: {tmp_path / 's.db'}}}", f'{{listen: "{exporter}"}}',
                       extra=f'traps: {{listen: "{traps}"}}\n')


@pytest.mark.parametrize("key", ["exporter.listen", "traps.listen"])
def test_a_taken_listen_address_is_one_line_naming_the_key(tmp_path, key):
    """The exporter's TCP port or the trap receiver's UDP port already taken: one line naming the key and the
    address, exit 2, before anything else starts (a 30-line traceback for the exporter; a trap receiver that
    never received anything, for the traps)."""
    import socket
    import subprocess

    from conftest import REPO, SLAWATCH, free_port

    kind = socket.SOCK_STREAM if key == "exporter.listen" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        exporter = port if key == "exporter.listen" else free_port()
        traps = port if key == "traps.listen" else free_port()
        path = tmp_path / "c.yaml"
        path.write_text(_listeners(tmp_path, f"127.0.0.1:{exporter}", f"127.0.0.1:{traps}"))
        r = subprocess.run(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip() == (f"slawatch: error: {key}: cannot listen on 127.0.0.1:{port}: the address is already "
                                "in use (another slawatch, or another program, listens there)"), r.stderr


def test_a_multi_host_dsn_without_read_write_is_refused_without_its_password():
    """#33: a DSN listing a Patroni cluster's hosts must ask for the primary (target_session_attrs=read-write),
    or a failover leaves slawatch on a read-only standby; the error names the hosts, never the password."""
    from monitor.errors import ConfigError

    base = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
            "targets": [{"id": "t1", "contract": "c1", "kind": "internet", "address": "127.0.0.1"}]}
    bad = "postgresql://slawatch:s3cret@db1:5432,db2:5432/slawatch"
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "storage": {"backend": "postgresql", "dsn": bad}})
    assert "storage.dsn: lists 2 hosts (db1, db2)" in str(info.value) and "s3cret" not in str(info.value)
    for ok in (bad + "?target_session_attrs=read-write", "host=db1,db2 dbname=x target_session_attrs=primary",
               "postgresql://slawatch:s3cret@db1/slawatch"):
        parse_config({**base, "storage": {"backend": "postgresql", "dsn": ok}})


@pytest.mark.parametrize("key", ["exporter.listen", "traps.listen"])
def test_a_listen_address_this_host_does_not_have_is_one_line(tmp_path, key):
    """An address no interface here has (a typo, a moved host): one line naming the key, exit 2."""
    import subprocess

    from conftest import REPO, SLAWATCH, free_port

    other = "192.0.2.7:9842"  # TEST-NET-1: on no interface of this machine, never sent to
    exporter = other if key == "exporter.listen" else f"127.0.0.1:{free_port()}"
    traps = other if key == "traps.listen" else f"127.0.0.1:{free_port()}"
    path = tmp_path / "c.yaml"
    path.write_text(_listeners(tmp_path, exporter, traps))
    r = subprocess.run(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"slawatch: error: {key}: cannot listen on {other}: no interface of this host has that address"), r.stderr
