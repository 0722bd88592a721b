"""The code stays typed (mypy strict) and linted (ruff), and README's test command is the one CI runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} missing under CI")
        pytest.skip(f"{module} not installed")


def test_ruff_clean() -> None:
    _tool("ruff")
    ruff = shutil.which("ruff") or f"{sys.executable} -m ruff"
    result = subprocess.run([*ruff.split(), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean() -> None:
    _tool("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "README must give the test command after <!-- test-command -->"
    command = m.group(1).strip().splitlines()[-1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


def test_every_module_says_what_it_is_for() -> None:
    for folder in ("pytest_mlbatch", "checks"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert text.startswith('"""'), f"{path} has no module docstring"
