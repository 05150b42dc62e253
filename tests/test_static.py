"""The static checks run with the tests, so the README's one test command covers them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


class TestStatic:
    """mypy --strict holds for the package, the typing checks and the benchmarks (the tests are not
    type-checked); ruff's lint and format hold for all of it, tests and examples included."""

    def test_mypy_strict(self) -> None:
        """mypy (strict, from pyproject.toml) finds nothing in vidu_async, tests/typing/api.py and benchmarks."""
        result = _run(sys.executable, "-m", "mypy")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_ruff_check(self) -> None:
        """ruff's lint rules hold everywhere."""
        result = _run(sys.executable, "-m", "ruff", "check", "vidu_async", "tests", "examples", "benchmarks")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_ruff_format(self) -> None:
        """The code is formatted as ruff formats it."""
        result = _run(
            sys.executable, "-m", "ruff", "format", "--check", "vidu_async", "tests", "examples", "benchmarks"
        )
        assert result.returncode == 0, result.stdout + result.stderr
