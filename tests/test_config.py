"""Every config error class, with its exact message, and the things a valid config expresses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError

BASE = """\
contracts:
  - id: c1
    customer: ACME
    provider: ExampleTel
    objectives: {availability: 99.9%}
targets:
  - id: t1
    contract: c1
    kind: internet
    address: 127.0.0.1
"""


def errors_of(write_config, text: str) -> list[str]:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    return info.value.problems


def test_example_config_is_valid():
    from conftest import REPO

    config = load_config(REPO / "config" / "example.yaml")
    assert config.summary().startswith("2 contracts, 4 targets, 4 probes")
    # example.yaml must only target loopback
    import ipaddress

    for t in config.targets:
        assert ipaddress.ip_address(t.address).is_loopback, t.address
    assert config.exporter.listen.startswith("127.0.0.1:")


def test_reference_config_is_valid(monkeypatch):
    from conftest import REPO

    monkeypatch.setenv("SLAWATCH_RT_TOKEN", "rt-secret")
    monkeypatch.setenv("SLAWATCH_SMTP_PASSWORD", "smtp-secret")
    monkeypatch.setenv("SLAWATCH_JIRA_TOKEN", "jira-secret")
    monkeypatch.setenv("SLAWATCH_SNOW_PASSWORD", "snow-secret")
    monkeypatch.setenv("SLAWATCH_WEBHOOK_SECRET", "hook-secret")
    monkeypatch.setenv("SNMP_COMMUNITY", "public-ish")
    monkeypatch.setenv("SNMP_TRAP_COMMUNITY", "trap-ish")
    monkeypatch.setenv("SNMP_AUTH_KEY", "authkey123")
    monkeypatch.setenv("SNMP_PRIV_KEY", "privkey123")
    monkeypatch.setenv("SLAWATCH_PORTAL_SECRET", "p" * 40)
    from monitor.portal.auth import hash_password

    monkeypatch.setenv("SLAWATCH_PORTAL_NOC_HASH", hash_password("a long portal password"))
    config = load_config(REPO / "config" / "reference.yaml")
    assert config.contracts and config.targets and config.ticket_sinks
    # every probe kind is documented with its settings
    documented = {name for t in config.targets for name in t.probes.enabled()}
    assert documented == {"icmp", "snmp", "sip", "http", "tcp", "dns", "smtp", "websocket"}
    portal = config.target("portal")
    assert portal.probes.http.expect_json.path == "checks[0].ok" and portal.probes.tcp.dialogue[1].expect == "^221"
    assert portal.probes.dns.expect_answers == ["^127\\."]


def test_the_reference_documents_every_key_of_the_config_models():
    """config/reference.yaml says it documents every key: walk every model reachable from Config (sections,
    contracts, targets, each probe's settings, each sink's, nested ones) and find each field as a YAML key in
    it, written out or commented. A new field without its line in the reference fails here."""
    import re
    import typing

    from pydantic import BaseModel

    from conftest import REPO
    from monitor.config.models import Config

    text = (REPO / "config" / "reference.yaml").read_text()
    seen: set[type] = set()
    missing: list[str] = []

    def models_in(tp) -> list[type]:
        if typing.get_origin(tp) is typing.Annotated:
            return models_in(typing.get_args(tp)[0])
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return [tp]
        return [m for arg in typing.get_args(tp) for m in models_in(arg)]

    def walk(model: type, path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            key = field.alias or name
            if not re.search(rf"(^|[\s{{,#]){re.escape(key)}\s*:", text, re.M):
                missing.append(f"{path}.{key} ({model.__name__})")
            for sub in models_in(field.annotation):
                walk(sub, f"{path}.{key}")

    walk(Config, "")
    assert len(seen) > 40  # the walk reached the probes' and sinks' settings
    assert missing == [], missing


def test_minimal_config_and_defaults(write_config):
    config = load_config(write_config(BASE))
    t = config.targets[0]
    assert t.interval == 30.0 and t.failure_threshold == 3 and t.recovery_threshold == 2
    assert t.probes.icmp.count == 3 and t.probes.snmp is None
    assert config.storage.path == "var/slawatch.db"
    assert config.exporter.listen == "127.0.0.1:9842"
    assert config.contracts[0].objectives.availability == Decimal("99.9")
    assert config.contracts[0].unknown_time == "exclude"


def test_defaults_are_inherited_and_overridden(write_config):
    text = BASE + """\
  - id: t2
    contract: c1
    kind: voice
    address: 127.0.0.2
    interval: 5s
    probes: {icmp: {count: 50}}
defaults:
  targets:
    interval: 10s
    probes: {icmp: {spacing: 20ms}}
  contracts:
    timezone: America/New_York
"""
    config = load_config(write_config(text))
    t1, t2 = config.targets
    assert t1.interval == 10 and t2.interval == 5
    assert t1.probes.icmp.spacing == pytest.approx(0.02) and t1.probes.icmp.count == 3
    assert t2.probes.icmp.spacing == pytest.approx(0.02) and t2.probes.icmp.count == 50
    assert config.contracts[0].timezone == "America/New_York"


# --------------------------------------------------------------------------- one test per error class

CASES = [
    ("targets[0].interval: must be a duration like 30s (got 'often')", ("address: 127.0.0.1", "address: 127.0.0.1\n    interval: often")),
    ("targets[0].intervall: unknown key", ("address: 127.0.0.1", "address: 127.0.0.1\n    intervall: 30s")),
    ("targets[0].kind: must be one of internet, voice, support (got 'fiber')", ("kind: internet", "kind: fiber")),
    ("targets[0].kind: required key is missing", ("    kind: internet\n", "")),
    ("targets[0].contract: no such contract (known: c1) (got 'c2')", ("contract: c1", "contract: c2")),
    ("contracts[0].objectives.availability: must be a percentage between 0% and 100% (got '101%')", ("99.9%", "101%")),
    ("contracts[0].objectives.availability: must be a percentage like 99.9% (got 'high')", ("99.9%", "high")),
    ("contracts[0].timezone: must be an IANA time zone like Europe/Berlin (got 'Mars/Olympus')", ("provider: ExampleTel", "provider: ExampleTel\n    timezone: Mars/Olympus")),
    ("targets[0].failure_threshold: must be at least 1 (got 0)", ("address: 127.0.0.1", "address: 127.0.0.1\n    failure_threshold: 0")),
    ("targets[0].failure_threshold: must be a whole number (got 'three')", ("address: 127.0.0.1", "address: 127.0.0.1\n    failure_threshold: three")),
    ("targets[0].id: must be an id of letters, digits, '.', '_', ':' or '-' (at most 128 characters) (got 'bad id!')", ("id: t1", "id: 'bad id!'")),
    ("contracts[0].currency: must be an ISO 4217 currency code like EUR (got 'euro')", ("provider: ExampleTel", "provider: ExampleTel\n    currency: euro")),
    ("contracts[0].monthly_fee: must be an amount like 1200.00 (got 'lots')", ("provider: ExampleTel", "provider: ExampleTel\n    monthly_fee: lots")),
    ("exporter.listen: must be host:port like 127.0.0.1:9842 (got 'localhost')", ("contracts:", "exporter: {listen: localhost}\ncontracts:")),
    ("(top level).colour: unknown key", ("contracts:", "colour: blue\ncontracts:")),
]


@pytest.mark.parametrize("expected,edit", CASES, ids=[c[0].split(":")[0] + ":" + c[0].split(":")[1][:25] for c in CASES])
def test_error_class(write_config, expected, edit):
    old, new = edit
    assert old in BASE
    problems = errors_of(write_config, BASE.replace(old, new, 1))
    assert problems == [expected.replace("(top level).colour", "colour")]


def test_snmp_version_error_matches_design_card(write_config):
    text = BASE.replace("address: 127.0.0.1", "address: 127.0.0.1\n    probes: {snmp: {version: 4, community: x}}")
    assert errors_of(write_config, text) == ["targets[0].probes.snmp.version: must be one of 1, 2c, 3 (got '4')"]


def test_snmp_credentials_required(write_config):
    text = BASE.replace("address: 127.0.0.1", "address: 127.0.0.1\n    probes: {snmp: {version: 3}}")
    assert errors_of(write_config, text) == ["targets[0].probes.snmp: SNMP v3 needs user"]
    text = BASE.replace("address: 127.0.0.1", "address: 127.0.0.1\n    probes: {snmp: {version: 2c}}")
    assert errors_of(write_config, text) == ["targets[0].probes.snmp: SNMP v2c needs community (or community_file)"]


def test_all_errors_reported_at_once(write_config):
    text = BASE.replace("kind: internet", "kind: fiber").replace("99.9%", "101%") + "  - id: t1\n    contract: zz\n    kind: voice\n    address: 127.0.0.9\n    interval: often\n"
    problems = errors_of(write_config, text)
    assert problems == [
        "contracts[0].objectives.availability: must be a percentage between 0% and 100% (got '101%')",
        "targets[0].kind: must be one of internet, voice, support (got 'fiber')",
        "targets[1].contract: no such contract (known: c1) (got 'zz')",
        "targets[1].id: duplicate id, already used by targets[0] (got 't1')",
        "targets[1].interval: must be a duration like 30s (got 'often')",
    ]


def test_error_from_defaults_is_blamed_on_defaults(write_config):
    text = BASE + "defaults:\n  targets: {interval: often}\n"
    assert errors_of(write_config, text) == ["defaults.targets.interval: must be a duration like 30s (got 'often')"]


def test_unknown_defaults_section(write_config):
    assert errors_of(write_config, BASE + "defaults:\n  sinks: {}\n") == [
        "defaults.sinks: unknown key (defaults has targets and contracts)"
    ]


def test_yaml_syntax_error_names_line(write_config):
    problems = errors_of(write_config, BASE + "  - {id: t9, contract: c1\n")
    assert len(problems) == 1 and problems[0].startswith("line 12, column 1: YAML syntax error:")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == ["(file): cannot read: No such file or directory"]


# --------------------------------------------------------------------------- secrets

SINK = """
ticket_sinks:
  - name: rt-noc
    type: rt
    url: http://127.0.0.1:8080/
    {secret}
"""


def test_secret_from_environment(write_config, monkeypatch):
    monkeypatch.setenv("T_RT_TOKEN", "s3cr3t-env")
    config = load_config(write_config(BASE + SINK.format(secret="token: ${T_RT_TOKEN}")))
    token = config.ticket_sinks[0].token
    assert token.get_secret_value() == "s3cr3t-env"
    assert "s3cr3t-env" not in repr(config) and "s3cr3t-env" not in str(token)


def test_secret_from_file(write_config, tmp_path):
    (tmp_path / "rt.token").write_text("s3cr3t-file\n")
    config = load_config(write_config(BASE + SINK.format(secret="token_file: rt.token")))
    assert config.ticket_sinks[0].token.get_secret_value() == "s3cr3t-file"


def test_secret_errors_never_echo_the_secret(write_config, monkeypatch):
    problems = errors_of(write_config, BASE + SINK.format(secret="token_file: /nonexistent/rt.token"))
    assert problems == ["ticket_sinks[0].token_file: cannot read secret file: No such file or directory (got '/nonexistent/rt.token')"]
    assert errors_of(write_config, BASE + SINK.format(secret="token: ${T_UNSET_VAR_XYZ}")) == [
        "ticket_sinks[0].token: environment variable T_UNSET_VAR_XYZ is not set"
    ]
    monkeypatch.setenv("T_COMMUNITY", "hunter2-community")
    text = BASE.replace("address: 127.0.0.1", "address: 127.0.0.1\n    probes: {snmp: {version: 2c, community: [\"${T_COMMUNITY}\"]}}")
    problems = errors_of(write_config, text)
    assert problems == ["targets[0].probes.snmp.community: must be a string"]
    assert "hunter2" not in "\n".join(problems)


def test_secret_both_forms_is_an_error(write_config, tmp_path):
    (tmp_path / "t").write_text("x")
    problems = errors_of(write_config, BASE + SINK.format(secret="token: a\n    token_file: t"))
    assert problems == ["ticket_sinks[0].token_file: give either token or token_file, not both"]


# --------------------------------------------------------------------------- ticket sinks and maintenance


def test_invalid_ticket_sink_is_fatal(write_config):
    text = BASE + "ticket_sinks:\n  - {name: x, type: pager, url: http://127.0.0.1/}\n  - {name: y, type: webhook}\n"
    assert errors_of(write_config, text) == [
        "ticket_sinks[0].type: must be one of rt, alertmanager, webhook, email, jira, servicenow (got 'pager')",
        "ticket_sinks[1].url: required key is missing",
    ]


def test_escalation_must_name_known_sinks(write_config):
    text = BASE.replace(
        "objectives: {availability: 99.9%}",
        "objectives: {availability: 99.9%}\n    escalation: [{tier: 1, sinks: [noc]}]",
    )
    assert errors_of(write_config, text) == [
        "contracts[0].escalation[0].sinks[0]: no such ticket sink (known: none defined) (got 'noc')"
    ]


def test_maintenance_windows(write_config):
    text = BASE.replace(
        "objectives: {availability: 99.9%}",
        """objectives: {availability: 99.9%}
    maintenance:
      - {name: once, start: 2026-11-01T02:00:00, duration: 2h}
      - {name: weekly, weekly: {days: [sun], at: "02:00"}, duration: 1h}
      - {name: monthly, monthly: {day: 1, at: 03:30}, duration: 30m}
      - {name: cron, cron: "0 4 * * 6", duration: 15m}""",
    )
    config = load_config(write_config(text))
    windows = config.contracts[0].maintenance
    assert [w.name for w in windows] == ["once", "weekly", "monthly", "cron"]
    assert windows[2].monthly.at == "03:30"

    bad = BASE.replace(
        "objectives: {availability: 99.9%}",
        """objectives: {availability: 99.9%}
    maintenance:
      - {name: a, weekly: {days: [sun], at: "02:00"}}
      - {name: b, cron: "not a cron", duration: 1h}
      - {name: c, start: 2026-11-01T02:00:00}""",
    )
    problems = errors_of(write_config, bad)
    assert problems[0] == "contracts[0].maintenance[0]: a recurring window needs duration"
    assert problems[1].startswith("contracts[0].maintenance[1]: cron must be a 5-field crontab like '0 2 * * sun'")
    assert problems[2] == "contracts[0].maintenance[2]: a one-off window needs end or duration (one of them)"


@pytest.mark.parametrize("patch, expected", [
    ({"credit_tiers": [{"below": "99%", "credit": "10%"}, {"below": "95%", "credit": "5%"}]},
     "contracts[0].credit_tiers: tiers 0 and 1 are inverted: worse availability (below 95 %) earns a smaller credit"),
    ({"credit_tiers": [{"below": "99.95%", "credit": "5%"}]},
     "contracts[0].credit_tiers: tier 0 (below 99.95 %) is above the availability objective (99.9 %)"),
    ({"objectives": {"availability": "0%"}}, "contracts[0].objectives.availability: must be above 0 %"),
    ({"objectives": {"availability": "100.5%"}}, "contracts[0].objectives.availability: must be a percentage"),
    ({"currency": "ABC"}, "contracts[0].currency: is not an ISO 4217 currency code (got 'ABC')"),
    ({"in_service": "2026-11-15T10:00:00", "out_of_service": "2026-11-01T00:00:00"},
     "contracts[0]: out_of_service must be after in_service"),
    ({"maintenance": [{"name": "n", "weekly": {"days": ["sat"], "at": "23:00", "until": "01:00"}}]},
     "contracts[0].maintenance[0].weekly: until 01:00 is before at 23:00: a window across midnight needs overnight: true"),
    ({"maintenance": [{"name": "n", "weekly": {"days": ["sat"], "at": "02:00", "until": "04:00"}, "duration": "1h"}]},
     "contracts[0].maintenance[0]: give duration or until, not both"),
])
def test_billing_config_errors_name_their_path(patch, expected):
    """Issue #18's bad input: each a config error with its YAML path."""
    from monitor.config import parse_config

    raw = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"},
                          **patch}], "targets": []}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("text", ["127.0.0.1", "0.0.0.0", "01.2.3.4", "1.2.3", "1.2.3.04", "256.1.1.1", "1.2.3.4 ",
                                  "1.2.3.4.5", "0x1.2.3.4", "\u0661.\u0662.\u0663.\u0664", "::1", "::", "fe80::1",
                                  "::ffff:1.2.3.4", "::FFFF:1.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8",
                                  "1:2:3:4:5:6:7:8:9", "[::1]", "", "abcd", "a\x00b", "localhost"])
def test_ip_version_accepts_what_ipaddress_accepts(text):
    """The config's fast IP-literal check (inet_pton) against the standard library's ipaddress."""
    import ipaddress

    from probes.settings import ip_version

    try:
        expected: int | None = ipaddress.ip_address(text).version
    except ValueError:
        expected = None
    assert ip_version(text) == expected
