"""Load a YAML config file into :class:`~monitor.config.models.Config`.

Every problem is collected before anything is reported, and each is written
as ``<yaml path>: <message> (got <value>)``. Secret values are never echoed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from probes.snmp import SHIPPED_PROFILES

from monitor.config import parse_cache
from monitor.errors import ConfigError
from monitor.config.mibnames import MibError, MibResolver, is_numeric_oid
from monitor.config.models import Config

__all__ = ["load_config", "load_config_text", "read_config_text", "parse_yaml", "config_warnings", "inline_secrets",
           "parse_config", "check_names", "RESOLVE_TIMEOUT", "SECRET_KEYS", "BUILTIN_SNMP_PROFILES"]

#: keys whose values are secrets: never echoed, and loadable from ``<key>_file``
SECRET_KEYS = frozenset(
    {"community", "auth_key", "priv_key", "password", "token", "hmac_secret", "reload_token", "dsn", "password_hash",
     "session_secret"}
)
#: SNMP profiles shipped with slawatch (config/snmp-profiles.yaml)
BUILTIN_SNMP_PROFILES = frozenset(SHIPPED_PROFILES)

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's mark for an error in a mapping's key (the key is the part before)
            out += " (the key)"
        else:
            text = str(part)
            # a key with spaces, dots or control characters is quoted, so the path stays one readable line
            if not text or not all(c.isalnum() or c in "_-" for c in text):
                text = repr(text)
            out += ("." if out else "") + text
    return out or "(top level)"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[tuple, str]] = []

    def add(self, loc: tuple, message: str, value: Any = ..., secret: bool = False) -> None:
        if value is not ... and not secret and not isinstance(value, dict):
            message = f"{message} (got {_shown(value)})"
        self.items.append((tuple(loc), message))

    def formatted(self) -> list[str]:
        seen: list[str] = []
        order = {"version": 0, "storage": 1, "exporter": 2, "logging": 3, "reports": 3, "defaults": 4, "contracts": 5,
                 "targets": 6, "ticket_sinks": 7, "snmp_profiles": 8}

        def key(item: tuple[tuple, str]) -> tuple:
            loc = item[0]
            head = (order.get(loc[0], 9),) if loc else (-1,)
            return head + tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in loc[1:3])

        for loc, msg in sorted(self.items, key=key):
            line = f"{_path(loc)}: {msg}"
            if line not in seen:
                seen.append(line)
        return seen


# --------------------------------------------------------------------------- pre-pass


def _resolve_secrets_and_env(node: Any, loc: tuple, problems: _Problems, base_dir: Path) -> Any:
    """Expand ``${ENV}`` in strings and turn ``<secret>_file: PATH`` into ``<secret>: contents``."""
    if isinstance(node, dict):
        out: dict = {}
        for key, value in node.items():
            key_loc = loc + (key,)
            if isinstance(key, str) and key.endswith("_file") and key[:-5] in SECRET_KEYS:
                secret_key = key[:-5]
                if secret_key in node:
                    problems.add(key_loc, f"give either {secret_key} or {key}, not both")
                    continue
                expanded = _resolve_secrets_and_env(value, key_loc, problems, base_dir)
                if not isinstance(expanded, str):
                    problems.add(key_loc, "must be a file path", expanded)
                    continue
                path = Path(expanded)
                if not path.is_absolute():
                    path = base_dir / path
                out[secret_key] = ""  # placeholder while a problem is reported (once)
                try:
                    with path.open("rb") as f:
                        data = f.read(65537)
                except OSError as exc:
                    problems.add(key_loc, f"cannot read secret file: {exc.strerror}", str(path))
                    continue
                if len(data) > 65536:
                    problems.add(key_loc, "secret file larger than 64 KB", str(path))
                    continue
                try:
                    out[secret_key] = data.decode("utf-8").strip()
                except UnicodeDecodeError as exc:  # never shown: it is a secret
                    problems.add(key_loc, f"secret file is not UTF-8 text (a bad byte at offset {exc.start})", str(path))
                continue
            out[key] = _resolve_secrets_and_env(value, key_loc, problems, base_dir)
        return out
    if isinstance(node, list):
        return [_resolve_secrets_and_env(v, loc + (i,), problems, base_dir) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.add(loc, f"environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_RE.sub(sub, node)
    return node


def _copy(value: Any) -> Any:
    """A copy of YAML data (mappings, lists, scalars): deepcopy's memo is not needed for trees and costs 3x."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = {k: _copy(v) for k, v in base.items() if k not in override}
        for key, value in override.items():
            merged[key] = _deep_merge(base[key], value) if key in base else _copy(value)
        return merged
    return _copy(override)


_DEFAULTS_FOR = {"targets": "targets", "contracts": "contracts"}


def _apply_defaults(raw: dict, problems: _Problems) -> dict:
    defaults = raw.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        problems.add(("defaults",), "must be a mapping", defaults)
        return raw
    for key in defaults:
        if key not in _DEFAULTS_FOR:
            problems.add(("defaults", key), "unknown key (defaults has targets and contracts)")
    for section in _DEFAULTS_FOR:
        section_defaults = defaults.get(section)
        if section_defaults is None:
            continue
        if not isinstance(section_defaults, dict):
            problems.add(("defaults", section), "must be a mapping", section_defaults)
            continue
        items = raw.get(section)
        if isinstance(items, list):
            raw[section] = [
                _deep_merge(section_defaults, item) if isinstance(item, dict) else item for item in items
            ]
    raw["__defaults__"] = defaults
    return raw


# --------------------------------------------------------------------------- pydantic errors


def _literal_choices(expected: str) -> str:
    parts = re.split(r", | or ", expected)
    return ", ".join(p.strip().strip("'") for p in parts)


#: pydantic error type -> (the user's message, from the error's context; whether to show the input)
_MESSAGES: dict[str, tuple[Any, bool]] = {
    "missing": (lambda ctx: "required key is missing", False),
    "extra_forbidden": (lambda ctx: "unknown key", False),
    "literal_error": (lambda ctx: f"must be one of {_literal_choices(ctx.get('expected', ''))}", True),
    "union_tag_invalid": (lambda ctx: f"must be one of {_literal_choices(ctx.get('expected_tags', ''))}", True),
    "union_tag_not_found": (lambda ctx: f"needs key '{ctx.get('discriminator', 'type').strip(chr(39))}'", False),
    "int_parsing": (lambda ctx: "must be a whole number", True),
    "int_type": (lambda ctx: "must be a whole number", True),
    "int_from_float": (lambda ctx: "must be a whole number", True),
    "finite_number": (lambda ctx: "must be a finite number (not .nan or .inf)", True),
    "float_parsing": (lambda ctx: "must be a number", True),
    "float_type": (lambda ctx: "must be a number", True),
    "decimal_parsing": (lambda ctx: "must be a number", True),
    "decimal_type": (lambda ctx: "must be a number", True),
    "bool_parsing": (lambda ctx: "must be true or false", True),
    "bool_type": (lambda ctx: "must be true or false", True),
    "greater_than_equal": (lambda ctx: f"must be at least {ctx['ge']}", True),
    "greater_than": (lambda ctx: f"must be greater than {ctx['gt']}", True),
    "less_than_equal": (lambda ctx: f"must be at most {ctx['le']}", True),
    "less_than": (lambda ctx: f"must be less than {ctx['lt']}", True),
    "string_type": (lambda ctx: "must be a string", True),
    "string_too_short": (lambda ctx: "must not be empty", True),
    "string_too_long": (lambda ctx: f"must be at most {ctx.get('max_length')} characters", True),
    "list_type": (lambda ctx: "must be a list", True),
    "tuple_type": (lambda ctx: "must be a list", True),
    "too_short": (lambda ctx: f"must have at least {ctx.get('min_length')} item(s)", True),
    "dict_type": (lambda ctx: "must be a mapping", True),
    "model_type": (lambda ctx: "must be a mapping", True),
    "model_attributes_type": (lambda ctx: "must be a mapping", True),
}


def _message(err: Mapping[str, Any]) -> tuple[str, bool]:
    """The user's message for one pydantic error, and whether to show the input."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "slawatch":
        return err["msg"], True
    known = _MESSAGES.get(kind)
    if known is not None:
        return known[0](ctx), known[1]
    if kind.startswith("url"):
        return "must be a URL like https://host:port/path", True
    if kind.startswith("datetime") or kind.startswith("date"):
        return "must be a date-time like 2026-11-01T02:00:00", True
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), True
    return str(err["msg"]), True


def _walk(raw: Any, loc: tuple) -> tuple[tuple, Any, bool]:
    """Follow ``loc`` through the raw data, dropping pydantic's union-tag parts.

    Returns the cleaned location, the raw value found there (or ...), and
    whether the path ends at a secret key."""
    cleaned: list = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            cleaned.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            cleaned.append(part)
        elif isinstance(node, dict) and node.get("type") == part:
            continue  # discriminated-union tag
        elif isinstance(part, str) and (part.startswith("function-") or part in ("str", "int", "float")):
            continue
        else:
            cleaned.append(part)
            node = ...
    secret = any(isinstance(p, str) and p in SECRET_KEYS for p in cleaned)
    return tuple(cleaned), node, secret


def _blame_defaults(loc: tuple, original: dict) -> tuple:
    """An error under targets[i].key whose key came from ``defaults`` is reported there."""
    if len(loc) >= 3 and loc[0] in _DEFAULTS_FOR and isinstance(loc[1], int):
        items = original.get(loc[0])
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        node: Any = item
        for part in loc[2:]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                defaults = (original.get("defaults") or {}).get(_DEFAULTS_FOR[loc[0]]) or {}
                probe: Any = defaults
                for p in loc[2:]:
                    if isinstance(probe, dict) and p in probe:
                        probe = probe[p]
                    else:
                        return loc
                return ("defaults", _DEFAULTS_FOR[loc[0]]) + loc[2:]
    return loc


# --------------------------------------------------------------------------- cross references


def _ids(items: Any, section: str, key: str, problems: _Problems) -> set[str]:
    seen: dict[str, int] = {}
    if not isinstance(items, list):
        return set()
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get(key), (str, int)):
            ident = str(item[key])
            if ident in seen:
                problems.add((section, i, key), f"duplicate {key}, already used by {section}[{seen[ident]}]", ident)
            else:
                seen[ident] = i
    return set(seen)


def _cross_check(raw: dict, problems: _Problems) -> None:
    """References between sections: every one checked, every problem reported with its YAML path."""
    contracts = _ids(raw.get("contracts"), "contracts", "id", problems)
    _ids(raw.get("targets"), "targets", "id", problems)
    sinks = _ids(raw.get("ticket_sinks"), "ticket_sinks", "name", problems)
    profiles = _check_profiles(raw, problems)
    for i, target in enumerate(raw.get("targets") or []):
        if isinstance(target, dict):
            _check_target_refs(i, target, contracts, profiles, problems)
    _check_cluster(raw, problems)
    _check_sink_refs(raw, sinks, problems)
    _check_request_sources(raw, contracts, problems)
    _check_portal(raw, contracts, problems)


def _check_portal(raw: dict, contracts: set, problems: _Problems) -> None:
    """The portal's users and tokens name contracts that exist, and each name once."""
    portal = raw.get("portal")
    if not isinstance(portal, dict):
        return
    for part in ("users", "tokens"):
        seen: dict[str, int] = {}
        for i, entry in enumerate(portal.get(part) or []):
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            if isinstance(name, str) and name in seen:
                problems.add(("portal", part, i, "name"), f"duplicate name, already used by portal.{part}[{seen[name]}]",
                             name)
            elif isinstance(name, str):
                seen[name] = i
            if not isinstance(entry.get("contracts"), list):
                continue
            for j, ref in enumerate(entry["contracts"]):
                if isinstance(ref, str) and ref not in contracts:
                    known = ", ".join(sorted(contracts)) or "none defined"
                    problems.add(("portal", part, i, "contracts", j), f"no such contract (known: {known})", ref)


def _check_request_sources(raw: dict, contracts: set, problems: _Problems) -> None:
    """A request source's queues name contracts that exist; a queue belongs to one contract (a queue read by
    two sources is two contracts' at once)."""
    seen: dict[str, int] = {}
    targets = {c.get("id"): c.get("response_targets") for c in raw.get("contracts") or [] if isinstance(c, dict)}
    for i, source in enumerate(raw.get("request_sources") or []):
        if not isinstance(source, dict) or not isinstance(source.get("queues"), dict):
            continue
        domains = source.get("requestor_domains")
        for domain, other in domains.items() if isinstance(domains, dict) else ():
            if isinstance(other, str) and other not in contracts:
                known = ", ".join(sorted(contracts)) or "none defined"
                problems.add(("request_sources", i, "requestor_domains", domain), f"no such contract (known: {known})",
                             other)
        mapped = source.get("severity_from_priority")
        severities = ["critical", "major"] if not isinstance(mapped, dict) else [str(k) for k in mapped]
        for queue, contract in source["queues"].items():
            if isinstance(contract, str) and contract not in contracts:
                known = ", ".join(sorted(contracts)) or "none defined"
                problems.add(("request_sources", i, "queues", queue), f"no such contract (known: {known})", contract)
            given = targets.get(contract) if isinstance(contract, str) else None
            if isinstance(given, dict) and given:  # no targets at all: requests are counted, never judged
                missing = [s for s in severities + ["minor"] if s not in given]
                if missing:
                    problems.add(("request_sources", i, "queues", queue),
                                 f"contract {contract} has no response_targets for {', '.join(missing)}: its "
                                 "requests of that severity could not be judged", contract)
            key = f"{source.get('url')}|{queue}"
            if key in seen:
                problems.add(("request_sources", i, "queues", queue),
                             f"this queue is already read by request_sources[{seen[key]}]: a queue belongs to one "
                             "contract")
            seen[key] = i


def _check_profiles(raw: dict, problems: _Problems) -> set[str]:
    profiles = set(BUILTIN_SNMP_PROFILES)
    if isinstance(raw.get("snmp_profiles"), dict):
        profiles |= set(raw["snmp_profiles"])
        for name in raw["snmp_profiles"]:
            if name in BUILTIN_SNMP_PROFILES:
                problems.add(("snmp_profiles", name), "a shipped profile has this name (config/snmp-profiles.yaml); "
                             "choose another")
    return profiles


def _check_target_refs(i: int, target: dict, contracts: set, profiles: set[str], problems: _Problems) -> None:
    ref = target.get("contract")
    if isinstance(ref, str) and ref not in contracts:
        known = ", ".join(sorted(contracts)) or "none defined"
        problems.add(("targets", i, "contract"), f"no such contract (known: {known})", ref)
    snmp = (target.get("probes") or {}).get("snmp") if isinstance(target.get("probes"), dict) else None
    if isinstance(snmp, dict) and isinstance(snmp.get("profiles"), list):
        for j, name in enumerate(snmp["profiles"]):
            if isinstance(name, str) and name not in profiles:
                problems.add(("targets", i, "probes", "snmp", "profiles", j),
                             f"no such SNMP profile (known: {', '.join(sorted(profiles))})", name)


def _check_cluster(raw: dict, problems: _Problems) -> None:
    if not isinstance(raw.get("cluster"), dict):
        for i, target in enumerate(raw.get("targets") or []):
            if isinstance(target, dict) and isinstance(target.get("vantage"), dict):
                problems.add(("targets", i, "vantage"), "vantage sites need a cluster section (cluster: {node, site})")
        return
    storage = raw.get("storage")
    if not isinstance(storage, dict):
        storage = {}
    if storage.get("backend", "sqlite") != "postgresql":
        problems.add(("cluster",), "a cluster needs the postgresql store (storage.backend: postgresql; got "
                     f"{storage.get('backend', 'sqlite')!r})")


def _check_sink_refs(raw: dict, sinks: set, problems: _Problems) -> None:
    reports = raw.get("reports")
    if isinstance(reports, dict) and isinstance(reports.get("mail_sink"), str):
        kinds = {s.get("name"): s.get("type") for s in raw.get("ticket_sinks") or [] if isinstance(s, dict)}
        if kinds.get(reports["mail_sink"]) != "email":
            problems.add(("reports", "mail_sink"), "must name an email ticket sink", reports["mail_sink"])
    for i, contract in enumerate(raw.get("contracts") or []):
        for part in ("escalation", "request_escalation"):
            if not isinstance(contract, dict) or not isinstance(contract.get(part), list):
                continue
            for j, tier in enumerate(contract[part]):
                if not (isinstance(tier, dict) and isinstance(tier.get("sinks"), list)):
                    continue
                for k, name in enumerate(tier["sinks"]):
                    if isinstance(name, str) and name not in sinks:
                        known = ", ".join(sorted(sinks)) or "none defined"
                        problems.add(("contracts", i, part, j, "sinks", k),
                                     f"no such ticket sink (known: {known})", name)


def _resolve_oids(raw: dict, problems: _Problems, base_dir: Path) -> None:
    """Every OID a profile or the trap receiver names: numeric as written, or ``MIB::name`` resolved to numeric."""
    places: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # (YAML path, the mapping holding the OID)
    profiles = raw.get("snmp_profiles")
    for name, profile in profiles.items() if isinstance(profiles, dict) else ():
        for part in ("scalars", "tables"):
            if isinstance(profile, dict) and isinstance(profile.get(part), dict):
                places += [(("snmp_profiles", name, part, key), profile[part]) for key in profile[part]]
    traps = raw.get("traps")
    if isinstance(traps, dict) and isinstance(traps.get("oids"), dict):
        places += [(("traps", "oids", key), traps["oids"]) for key in traps["oids"]]
    dirs = raw.get("mib_dirs")
    if not isinstance(dirs, list):
        dirs = []
    for i, d in enumerate(dirs):
        if isinstance(d, str) and not (base_dir / d).is_dir():
            problems.add(("mib_dirs", i), "not a directory", d)
    resolver = None  # pysmi only when a name needs it
    try:
        for loc, holder in places:
            value = holder[loc[-1]]
            if not isinstance(value, str):
                continue  # the model reports the type
            if is_numeric_oid(value.strip()):
                holder[loc[-1]] = value.strip().lstrip(".")
                continue
            if resolver is None:
                resolver = MibResolver([base_dir / d for d in dirs if isinstance(d, str)])
            try:
                holder[loc[-1]] = resolver.resolve(value)
            except MibError as exc:
                problems.add(loc, str(exc), value)
    finally:
        if resolver is not None:
            resolver.close()


# --------------------------------------------------------------------------- entry points


def parse_config(raw: Any, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML data. Raises ConfigError listing every problem."""
    problems = _Problems()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"(top level): must be a mapping (got {_shown(raw)})"])
    original = raw
    resolved = _resolve_secrets_and_env(raw, (), problems, base_dir or Path.cwd())
    merged = _apply_defaults(resolved, problems)
    merged.pop("__defaults__", None)
    _cross_check(merged, problems)
    _resolve_oids(merged, problems, base_dir or Path.cwd())
    config: Config | None = None
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            # a model's own check names the key it is about in its context (``at``): the error goes there
            at = (err.get("ctx") or {}).get("at")
            loc, _raw_value, secret = _walk(merged, tuple(err["loc"]) + ((at,) if at else ()))
            message, show = _message(err)
            value = err.get("input", ...)
            if err["type"] == "union_tag_invalid":
                loc, value = loc + ("type",), (err.get("ctx") or {}).get("tag", ...)
            problems.add(_blame_defaults(loc, original), message, value if show else ..., secret=secret)
    if problems.items:
        raise ConfigError(source, problems.formatted())
    assert config is not None
    return config


#: a config file larger than this is refused unread (the largest real ones are a few MB)
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: values a config may hold once YAML aliases are expanded, and how deep it may nest
MAX_VALUES = 2_000_000
MAX_DEPTH = 64


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a config file. Raises ConfigError listing every problem."""
    path = Path(path)
    return load_config_text(read_config_text(path), str(path), path.parent)


def read_config_text(path: str | os.PathLike) -> str:
    """A config file's text: at most MAX_CONFIG_BYTES, strict UTF-8; ConfigError otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            # in 1 MiB reads: f.read(MAX + 1) would allocate the whole 64 MiB up front for any config
            chunks, size = [], 0
            while size <= MAX_CONFIG_BYTES and (chunk := f.read(1 << 20)):
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
    except OSError as exc:
        raise ConfigError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), [f"(file): larger than {MAX_CONFIG_BYTES // 2**20} MB; not a config"])
    return decode_text(data, str(path))


def decode_text(data: bytes, source: str, what: str = "(file)") -> str:
    """UTF-8, strictly: a clear error naming the first bad byte (and never the text around it)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(source, [f"{what}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, "
                                   f"offset {exc.start}); save it as UTF-8"]) from None


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML has it (10,000 targets parse in 0.3 s instead of 3 s), refusing duplicate
    keys (YAML says keys are unique; PyYAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str":
                key = key_node.value  # the common case, without constructing the key twice
            else:
                key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1}): keys must be unique",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _bounded(value: Any, source: str) -> None:
    """Refuse a config whose aliases expand past MAX_VALUES values, or that nests deeper than MAX_DEPTH: every
    later pass walks it as a tree, and YAML aliases make a graph that can expand exponentially ('billion
    laughs'). Each node is sized once (by identity), so this pass is linear in the YAML's own size."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(value, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(source, [f"(file): nested deeper than {MAX_DEPTH} levels; not a config"])
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            sizes[id(node)] = total
            if total > MAX_VALUES:
                raise ConfigError(source, [f"(file): expands to more than {MAX_VALUES:,} values (aliases of "
                                           "aliases?); not a config"])
            continue
        if id(node) in sizes:
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text with the strict, bounded loader (duplicate keys, alias expansion and depth refused); a large
    config's tree comes from :mod:`monitor.config.parse_cache` when it was parsed before."""
    cached = parse_cache.load(text)
    if cached is not None:
        return cached
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError(source, [f"{where}: {kind}: {problem}"]) from None
    except RecursionError:
        raise ConfigError(source, [f"(file): nested deeper than {MAX_DEPTH} levels; not a config"]) from None
    if isinstance(value, (dict, list)):
        _bounded(value, source)
        parse_cache.store(text, value)
    return value


def load_config_text(text: str, source: str, base_dir: str | os.PathLike) -> Config:
    """Validate a config given as YAML text (a file's, or one a cluster node published); ``base_dir`` resolves
    relative ``*_file`` paths. An empty one (or comments only) is an error: it would monitor nothing."""
    raw = parse_yaml(text, source)
    if raw is None or raw == {}:
        raise ConfigError(source, ["(file): the config is empty: it needs contracts and targets "
                                   "(config/example.yaml is a start)"])
    config = parse_config(raw, source=source, base_dir=Path(base_dir))
    problems = check_names(config)
    if problems:
        raise ConfigError(source, problems)
    return config


#: how long the loader waits for all of a config's host names together
RESOLVE_TIMEOUT = 10.0


def check_names(config: Config, timeout: float = RESOLVE_TIMEOUT) -> list[str]:
    """Every target's host name (``resolve: at_load``, the default) resolves now, looked up in parallel within
    ``timeout`` seconds in all; one problem per name that does not, with the resolver's reason."""
    import socket
    from concurrent.futures import ThreadPoolExecutor, wait

    from monitor.config.models import is_ip

    names: dict[str, list[int]] = {}
    for i, t in enumerate(config.targets):
        if t.resolve == "at_load" and not is_ip(t.address):
            names.setdefault(t.address, []).append(i)
    if not names:
        return []

    def lookup(name: str) -> None:
        socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)

    pool = ThreadPoolExecutor(max_workers=min(32, len(names)), thread_name_prefix="resolve")
    futures = {pool.submit(lookup, name): name for name in names}
    done, _ = wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)  # a resolver that hangs is not waited for
    problems = []
    hint = "; set resolve: at_runtime to resolve it only at each cycle"
    for future, name in futures.items():
        if future not in done:
            reason = f"did not resolve within {timeout:g} s"
        elif future.exception() is not None:
            exc = future.exception()
            reason = f"does not resolve ({exc.strerror if isinstance(exc, OSError) and exc.strerror else exc})"
        else:
            continue
        for i in names[name]:
            problems.append(f"targets[{i}].address: host name '{name}' {reason}{hint}")
    return sorted(problems, key=lambda p: int(p.split("]", 1)[0].split("[", 1)[1]))


def config_warnings(config: Config) -> list[str]:
    """What is valid but almost certainly not meant: said by check-config and logged at start and reload."""
    out = []
    used = {name for c in config.contracts for tier in c.escalation for name in tier.sinks}
    if config.reports is not None and config.reports.mail_sink:
        used.add(config.reports.mail_sink)
    for i, sink in enumerate(config.ticket_sinks):
        if sink.enabled and sink.name not in used:
            out.append(f"ticket_sinks[{i}] ({sink.name}): no contract's escalation uses it, so no ticket reaches it")
    if not config.targets:
        out.append("targets: none; nothing is probed")
    return out


def inline_secrets(text: str) -> list[str]:
    """The YAML paths of secrets written into the config as values (not ``${ENV}`` or ``<secret>_file``):
    such a config is not published to a cluster's database."""
    found: list[str] = []

    def walk(node: Any, loc: tuple) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_KEYS and isinstance(value, str) and not _ENV_RE.fullmatch(value.strip()):
                    found.append(_path(loc + (key,)))
                else:
                    walk(value, loc + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, loc + (i,))

    try:
        walk(parse_yaml(text, "<config>"), ())
    except ConfigError:
        return []
    return found
