"""CLI exit codes and output, run as real subprocesses."""

from __future__ import annotations

import argparse
import os
import json
import subprocess

import pytest

from conftest import REPO, SLAWATCH

LOOPBACK = """\
storage: {{path: {db}}}
exporter: {{listen: "127.0.0.1:{port}"}}
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {{availability: 99.9%}}
targets:
  - id: lo1
    contract: c1
    kind: internet
    address: 127.0.0.1
    interval: 1s
    probes: {{icmp: {{count: 3, spacing: 10ms, timeout: 500ms}}}}
"""


def run(*args, **kw):
    return subprocess.run(SLAWATCH + list(args), capture_output=True, text=True, cwd=REPO, timeout=60, **kw)


@pytest.mark.parametrize("command", [[], ["check-config"], ["run"], ["probe"], ["status"], ["report"], ["tickets"],
                                     ["tickets", "list"], ["tickets", "ack"]])
def test_version_on_every_command(command):
    r = run(*command, "--version")
    assert r.returncode == 0 and r.stdout.strip() == "slawatch 0.1.0"


@pytest.mark.parametrize("command", [[], ["check-config"], ["run"], ["probe"], ["status"], ["report"], ["tickets"],
                                     ["tickets", "show"], ["tickets", "retry"]])
def test_help_on_every_command(command):
    r = run(*command, "--help")
    assert r.returncode == 0 and "usage: slawatch" in r.stdout


def test_check_config_ok():
    r = run("check-config", "-c", "config/example.yaml")
    assert r.returncode == 0
    assert r.stdout.strip() == "config/example.yaml: OK: 2 contracts, 4 targets, 4 probes, 0 ticket sinks"


def test_check_config_lists_every_error(write_config):
    path = write_config(LOOPBACK.format(db="x.db", port=1).replace("kind: internet", "kind: fiber").replace("interval: 1s", "interval: often"))
    r = run("check-config", "-c", str(path))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{path}: 2 errors in config",
        "  targets[0].interval: must be a duration like 30s (got 'often')",
        "  targets[0].kind: must be one of internet, voice, support (got 'fiber')",
    ]


def test_usage_error_exits_2():
    r = run("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_probe_loopback(write_config, tmp_path, icmp_mode):
    path = write_config(LOOPBACK.format(db=tmp_path / "s.db", port=1))
    r = run("probe", "-c", str(path), "lo1", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    icmp = data["results"][0]
    assert icmp["ok"] is True and icmp["sent"] == 3 and icmp["received"] == 3 and icmp["loss"] == 0.0
    assert len(icmp["rtts"]) == 3 and all(0 < x < 0.5 for x in icmp["rtts"])  # within the 500 ms timeout
    human = run("probe", "-c", str(path), "lo1")
    assert human.returncode == 0 and "lo1 icmp 127.0.0.1: OK" in human.stdout and "sent 3, received 3" in human.stdout


def test_probe_unknown_target(write_config):
    path = write_config(LOOPBACK.format(db="x.db", port=1))
    r = run("probe", "-c", str(path), "nope")
    assert r.returncode == 2 and "no target with id 'nope' (known: lo1)" in r.stderr


def test_status_before_any_run(write_config, tmp_path):
    path = write_config(LOOPBACK.format(db=tmp_path / "never.db", port=1))
    r = run("status", "-c", str(path))
    assert r.returncode == 2 and "does not exist yet" in r.stderr


def test_report_argument_errors(write_config, tmp_path):
    path = write_config(LOOPBACK.format(db=tmp_path / "s.db", port=1))
    r = run("report", "-c", str(path), "--month", "2026-13")
    assert r.returncode == 2 and "--month must be YYYY-MM (got '2026-13')" in r.stderr
    r = run("report", "-c", str(path), "--month", "2026-10", "--contract", "nope")
    assert r.returncode == 2 and "no contract with id 'nope' (known: c1)" in r.stderr
    r = run("report", "-c", str(path), "--month", "2026-10", "--format", "html")
    assert r.returncode == 2 and "--format html needs -o PATH" in r.stderr


@pytest.mark.parametrize("argv", [["tickets", "-c", "{c}", "list"], ["tickets", "list", "-c", "{c}"],
                                  ["store", "-c", "{c}", "status"], ["store", "status", "-c", "{c}"]])
def test_config_flag_works_before_and_after_the_action(write_config, tmp_path, argv):
    """#27: -c is listed by `slawatch tickets --help` and by `slawatch tickets list --help`; both places work (the
    action's unset -c used to reset the command's to the default /etc/slawatch/slawatch.yaml)."""
    path = write_config(LOOPBACK.format(db=tmp_path / "s.db", port=1))
    r = run(*[a.format(c=path) for a in argv], env={**os.environ, "SLAWATCH_CONFIG": "/nonexistent/slawatch.yaml"})
    assert r.returncode == 0 and "/nonexistent" not in r.stderr + r.stdout, r.stderr


def test_every_command_and_action_has_a_help_line_and_a_description():
    from monitor.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    assert helps.get(name), f"{path} {name}: no help line"
                    assert sub.description, f"{path} {name}: no description in its --help"
                    yield f"{path} {name}"
                    yield from walk(sub, f"{path} {name}")

    commands = list(walk(build_parser(), "slawatch"))
    assert "slawatch tickets list" in commands and len(commands) >= 17


def test_status_shows_the_freshest_rtt_whichever_probe_came_last(write_config, tmp_path):
    """#27: a target probed by ICMP and SNMP showed "- -" for RTT and loss when its last cycle was the SNMP one."""
    import time

    from monitor.store import Batch, CycleRecord, SqliteStore, StateRecord

    db = tmp_path / "s.db"
    path = write_config(LOOPBACK.format(db=db, port=1))
    now = time.time()
    store = SqliteStore(db)
    store.migrate()
    store.write(Batch(cycles=[CycleRecord("lo1", "icmp", now - 1.2, 0.05, True, "good", None, sent=4, received=3,
                                          rtt_median=0.0123),
                              CycleRecord("lo1", "snmp", now - 1.0, 0.02, True, "good", None)],
                      states={"lo1": StateRecord("lo1", "up", now - 60, now - 1.0, {"last_cycle": now - 1.0})}))
    store.close()
    r = run("status", "-c", str(path), "--json")
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["last_cycle"] == pytest.approx(now - 1.0) and row["rtt_median"] == 0.0123 and row["loss"] == 0.25, row
    text = run("status", "-c", str(path)).stdout
    assert "12.3" in text and "25" in text, text
