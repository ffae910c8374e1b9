"""``MIB::name`` OIDs: resolve names to numeric OIDs with MIB modules compiled by pysmi.

Modules come from the directories given (the config's ``mib_dirs`` first, so a user's copy wins),
then from the modules slawatch ships in ``monitor/mibs/`` (SNMPv2-SMI/TC/CONF, SNMPv2-MIB,
IF-MIB, IANAifType-MIB and the RFC 1155/1212/1213/1215 set; see ``scripts/fetch-mibs``).
A directory may hold MIB sources (any file name pysmi recognises: ``IF-MIB``, ``IF-MIB.txt``,
``IF-MIB.mib``, ``IF-MIB.my``) or modules already compiled to pysmi's JSON (``IF-MIB.json``,
e.g. from ``mibdump --destination-format json``).

Only the modules a config names are compiled, once per resolver, into a temporary directory:
about a second for IF-MIB and everything it imports.

Accepted forms: ``1.3.6.1.2.1.1.3.0`` (numeric, a leading dot allowed), ``SNMPv2-MIB::sysUpTime``,
and ``SNMPv2-MIB::sysUpTime.0`` (a name followed by a numeric instance suffix).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from monitor.errors import SlawatchError

__all__ = ["MibError", "MibResolver", "SHIPPED_MIBS", "is_numeric_oid"]

SHIPPED_MIBS = Path(__file__).resolve().parent.parent / "mibs"
_NUMERIC = re.compile(r"^\.?[0-2](\.(0|[1-9][0-9]*))+$")
_NAMED = re.compile(r"^(?P<module>[A-Za-z][A-Za-z0-9-]*)::(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<suffix>(\.[0-9]+)*)$")


class MibError(SlawatchError):
    """A ``MIB::name`` that cannot be resolved: the module is missing or does not compile, or has no such name."""


def is_numeric_oid(text: str) -> bool:
    """Whether ``text`` is a dotted numeric OID."""
    return bool(_NUMERIC.match(text))


class MibResolver:
    """Compiles the modules it is asked about (with their imports) and answers name -> numeric OID."""

    def __init__(self, directories: list[Path] | tuple[Path, ...] = ()):
        self.directories = [Path(d) for d in directories] + [SHIPPED_MIBS]
        self._modules: dict[str, dict] = {}
        self._failed: dict[str, str] = {}
        self._out: tempfile.TemporaryDirectory | None = None

    def _compiled_dir(self) -> Path:
        if self._out is None:
            self._out = tempfile.TemporaryDirectory(prefix="slawatch-mibs-")
        return Path(self._out.name)

    def _load(self, module: str) -> dict:
        if module in self._modules:
            return self._modules[module]
        if module in self._failed:
            raise MibError(self._failed[module])
        for directory in self.directories:  # already compiled by the user
            compiled = directory / f"{module}.json"
            if compiled.is_file():
                try:
                    self._modules[module] = json.loads(compiled.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    self._failed[module] = f"cannot read {compiled}: {exc}"
                    raise MibError(self._failed[module]) from None
                return self._modules[module]
        self._compile(module)
        return self._modules[module]

    def _compile(self, module: str) -> None:
        import logging

        from pysmi.codegen import JsonCodeGen
        from pysmi.compiler import MibCompiler
        from pysmi.parser import SmiStarParser
        from pysmi.reader import FileReader
        from pysmi.searcher import AnyFileSearcher
        from pysmi.writer import FileWriter

        logging.getLogger("pysmi").setLevel(logging.CRITICAL)
        out = self._compiled_dir()
        compiler = MibCompiler(SmiStarParser(), JsonCodeGen(), FileWriter(str(out)).set_options(suffix=".json"))
        compiler.add_sources(*(FileReader(str(d)).set_options(fuzzyMatching=True) for d in self.directories if d.is_dir()))
        compiler.add_searchers(AnyFileSearcher(str(out)).set_options(exts=[".json"]))
        try:
            status = compiler.compile(module)
        except Exception as exc:  # pysmi raises its own errors for broken sources
            status = {module: f"failed ({exc})"}
        done = out / f"{module}.json"
        if not done.is_file():
            missing = sorted(name for name, state in status.items() if str(state) == "missing")
            where = ", ".join(str(d) for d in self.directories)
            if missing == [module]:
                reason = f"MIB module {module} not found (looked in {where})"
            elif missing:
                reason = f"MIB module {module} imports {', '.join(missing)}, not found (looked in {where})"
            else:
                reason = f"MIB module {module} does not compile: {status.get(module)}"
            self._failed[module] = reason
            raise MibError(reason)
        self._modules[module] = json.loads(done.read_text(encoding="utf-8"))

    def resolve(self, text: str) -> str:
        """The numeric OID (no leading dot) of ``text``; raises :class:`MibError` saying what is wrong."""
        text = text.strip()
        if is_numeric_oid(text):
            return text.lstrip(".")
        match = _NAMED.match(text)
        if not match:
            raise MibError("not an OID: write it numerically (1.3.6.1.2.1.1.3.0) or as MIB::name[.index]")
        module, name, suffix = match.group("module", "name", "suffix")
        symbols = self._load(module)
        symbol = symbols.get(name)
        if not isinstance(symbol, dict) or "oid" not in symbol:
            import difflib

            close = difflib.get_close_matches(name, [s for s, v in symbols.items() if isinstance(v, dict) and "oid" in v],
                                              n=3, cutoff=0.75)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise MibError(f"{module} has no object named {name}{hint}")
        return symbol["oid"] + suffix

    def close(self) -> None:
        """Remove the temporary files of compiled MIBs."""
        if self._out is not None:
            self._out.cleanup()
            self._out = None
