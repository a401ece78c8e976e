"""The style gates of STYLE.md run with the suite: ruff, and mypy --strict over the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_passes() -> None:
    r = _run("ruff", "check", "src", "tests", "scripts", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_passes() -> None:
    r = _run("mypy", "src/fleetwise")
    assert r.returncode == 0, r.stdout + r.stderr
