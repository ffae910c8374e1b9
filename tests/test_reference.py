"""``config/reference.yaml`` documents every key of the config models: a walk over the models (pydantic's field
list, through lists, mappings, optionals and the sinks' and probes' settings) finds each key in the reference
under its own section, written out or commented (``# key: ...`` shows an optional key with an example)."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from monitor.config.models import Config

REFERENCE = Path(__file__).resolve().parent.parent / "config" / "reference.yaml"
_KEY = re.compile(r"^(?P<lead>[\s#-]*)(?P<key>[a-z_][a-z0-9_]*):(?:\s|$)")
_ITEM = re.compile(r"^(?P<lead>[\s#]*-\s*)\{")  # a list item written as a flow mapping: - {a: 1, b: 2}
_FLOW = re.compile(r"[{,]\s*(?P<key>[a-z_][a-z0-9_]*):")


def reference_keys(text: str) -> set[tuple[str, ...]]:
    """Every key of the reference with the keys it sits under (its ancestors, outermost first)."""
    found: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []  # (column, key) of the keys the current line may sit under
    for line in text.splitlines():
        m = _KEY.match(line)
        if not m:
            item = _ITEM.match(line)
            if item:  # its keys sit under the list's key
                while stack and stack[-1][0] >= len(item.group("lead")):
                    stack.pop()
                path = tuple(k for _, k in stack)
                found.update(path + (f.group("key"),) for f in _FLOW.finditer(line[item.end() - 1:]))
            continue
        # a commented key ("# key:", an optional one) is at the level its "# " stands in for
        column, key = len(m.group("lead")) - (2 if "#" in m.group("lead") else 0), m.group("key")
        while stack and stack[-1][0] >= column:
            stack.pop()
        path = tuple(k for _, k in stack)
        found.add(path + (key,))
        for flow in _FLOW.finditer(line[m.end():]):  # {cert_file: ..., key_file: ...} on the same line
            found.add(path + (key, flow.group("key")))
        stack.append((column, key))
    return found


def _models(annotation) -> list[type[BaseModel]]:
    """The models a field's annotation holds, through Optional, list, dict, Annotated and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict, set, frozenset) or origin is not None:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def model_keys(model: type[BaseModel], parent: str | None = None, seen=None) -> list[tuple[str | None, str]]:
    """(the key a model sits under, a field's key) for every field reachable from ``model``."""
    seen = set() if seen is None else seen
    out = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        out.append((parent, key))
        for sub in _models(info.annotation):
            if (sub, key) not in seen:
                seen.add((sub, key))
                out.extend(model_keys(sub, key, seen))
    return out


def test_the_reference_documents_every_key_of_the_config():
    documented = reference_keys(REFERENCE.read_text())

    def present(parent: str | None, key: str) -> bool:
        names = {key, f"{key}_file"}  # a secret may be documented by its file form
        return any(path[-1] in names and (parent is None and len(path) == 1 or parent in path[:-1])
                   for path in documented)

    missing = sorted({f"{parent or '(top)'}.{key}" for parent, key in model_keys(Config) if not present(parent, key)})
    assert missing == [], f"{len(missing)} keys of the config models are not in config/reference.yaml: {missing}"


def test_the_walk_finds_what_it_must():  # noqa: D103
    """The checker itself: nested, listed, commented and flow-style keys are found under their section."""
    keys = reference_keys("a:\n  b: 1\n  # c: {d: 1, e: 2}\nl:\n  - f: 1\n    g: 2\n  - {i: 1, j: 2}\nz: 1\n")
    assert {("a",), ("a", "b"), ("a", "c"), ("a", "c", "d"), ("a", "c", "e"), ("l", "f"), ("l", "g"), ("l", "i"),
            ("l", "j"), ("z",)} <= keys
    assert ("a", "c", "d") in reference_keys("a:\n  b: 1\n  # c:\n  #   d: 1\n") and ("a", "b", "c") not in keys
    pairs = model_keys(Config)
    assert len({p for p, _ in pairs}) >= 40  # the walk reaches the probes' and sinks' settings
    assert ("targets", "address") in pairs and ("icmp", "count") in pairs and (None, "storage") in pairs
