"""The cache of large configs' parsed YAML (monitor.config.parse_cache): used when intact, never stale, never
a source of errors, and holding nothing the file does not say (no environment value, no secret file)."""

from __future__ import annotations

import hashlib
import marshal
import os
import stat

import pytest

from monitor.config import parse_cache
from monitor.config.loader import load_config_text, parse_yaml
from monitor.errors import ConfigError


def big_config(n: int = 4000, extra: str = "") -> str:
    targets = "\n".join(f"  - {{id: t{i:05d}, contract: c1, kind: internet, address: 127.0.{i // 250}.{i % 250 + 1}}}"
                        for i in range(n))
    return ("ticket_sinks:\n  - {name: rt, type: rt, url: 'http://127.0.0.1:9/', token: '${SW_TEST_TOKEN}', queue: NOC}\n"
            "contracts:\n  - {id: c1, customer: A, provider: B, objectives: {availability: 99.9%}}\n"
            f"{extra}targets:\n{targets}\n")


def token_of(config) -> str:
    token = config.ticket_sinks[0].token
    return token.get_secret_value() if hasattr(token, "get_secret_value") else token


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("SLAWATCH_CACHE_DIR", str(directory))
    return directory


def entries(directory):
    return sorted(directory.glob("config-*.marshal"))


def test_a_large_config_is_parsed_once_then_read_from_the_cache(cache):
    text = big_config()
    assert len(text) >= parse_cache.MIN_BYTES
    first = parse_yaml(text, "c.yaml")
    [entry] = entries(cache)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert entry.name == f"config-{hashlib.sha256(text.encode()).hexdigest()}.marshal"
    # prove the second parse reads the entry: replace its tree by another one with a valid checksum
    payload = marshal.dumps({"from": "cache"})
    entry.write_bytes(b"slawatch-yaml-1\n" + hashlib.sha256(payload).digest() + payload)
    assert parse_yaml(text, "c.yaml") == {"from": "cache"}
    # a damaged entry (checksum wrong) is parsed again as if there were none
    data = bytearray(entry.read_bytes())
    data[-2] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert parse_yaml(text, "c.yaml") == first


def test_the_cache_holds_no_environment_value_and_no_secret(cache, monkeypatch):
    monkeypatch.setenv("SW_TEST_TOKEN", "s3cret-from-env")
    config = load_config_text(big_config(), "c.yaml", ".")
    assert token_of(config) == "s3cret-from-env"
    [entry] = entries(cache)
    assert b"s3cret-from-env" not in entry.read_bytes() and b"${SW_TEST_TOKEN}" in entry.read_bytes()
    monkeypatch.setenv("SW_TEST_TOKEN", "rotated")  # from the cache, the environment is read again
    assert token_of(load_config_text(big_config(), "c.yaml", ".")) == "rotated"


def test_an_edited_file_is_never_served_stale_and_old_entries_are_pruned(cache):
    for i in range(parse_cache.KEEP + 3):
        text = big_config(extra=f"# edit {i}\n")
        assert parse_yaml(text, "c.yaml")["targets"][0]["id"] == "t00000"
    assert len(entries(cache)) == parse_cache.KEEP
    edited = big_config().replace("t00000", "renamed")
    assert parse_yaml(edited, "c.yaml")["targets"][0]["id"] == "renamed"


def test_small_configs_bad_configs_and_dates_are_not_cached(cache):
    parse_yaml("contracts: []\ntargets: []\n", "small.yaml")
    with pytest.raises(ConfigError, match="duplicate key"):
        parse_yaml(big_config() + "targets: []\n", "dup.yaml")
    dated = big_config(extra="# a YAML timestamp marshal cannot hold\nx-date: 2026-01-01\n")
    assert parse_yaml(dated, "d.yaml")["x-date"].year == 2026
    assert entries(cache) == []


def test_a_cache_others_can_write_is_not_trusted_and_an_unusable_one_is_no_error(cache, tmp_path, monkeypatch):
    text = big_config()
    first = parse_yaml(text, "c.yaml")
    [entry] = entries(cache)
    payload = marshal.dumps({"from": "planted"})
    entry.write_bytes(b"slawatch-yaml-1\n" + hashlib.sha256(payload).digest() + payload)
    os.chmod(cache, 0o777)
    assert parse_yaml(text, "c.yaml") == first
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("SLAWATCH_CACHE_DIR", str(blocked / "sub"))
    assert parse_yaml(text, "c.yaml") == first
    monkeypatch.setenv("SLAWATCH_CACHE_DIR", "")
    assert parse_cache.cache_dir() is None and parse_yaml(text, "c.yaml") == first
