"""A corpus of broken configs (tests/configs/broken/): each must fail `slawatch check-config` with exit 2 and a
message naming its YAML path (the file's first line: `# expect: ...`), within a time and memory cap, and never
with a traceback. It includes an alias bomb, 5,000-deep nesting, non-UTF-8 text, a binary secret file,
duplicate keys, non-finite durations and invalid addresses."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SLAWATCH

CORPUS = sorted((Path(__file__).parent / "configs" / "broken").glob("*.yaml"))
MEMORY_CAP = 1 << 30  # 1 GiB of address space
CPU_CAP = 20  # seconds


def _caps() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_CAP, CPU_CAP))


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_config_is_a_clear_error(path: Path):
    expected = path.read_bytes().split(b"\n", 1)[0].decode().removeprefix("# expect: ")
    r = subprocess.run(SLAWATCH + ["check-config", "-c", str(path)], cwd=REPO, capture_output=True, text=True,
                       timeout=60, preexec_fn=_caps, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert expected in r.stderr, r.stderr
