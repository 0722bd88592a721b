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


def _readme_block(marker: str) -> str:
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, f"README must give a command after <!-- {marker} -->"
    return m.group(1).strip()


def _apt_packages(text: str) -> set[str]:
    found: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&\n]+)", text.replace("\\\n", " ")):
        words = m.group(1).split()
        found |= {w for w in words if not w.startswith("-") and not w.startswith(">")}
    return found


def test_readme_setup_lists_every_package_ci_installs() -> None:
    """A fresh machine set up by README has everything .ci/run installs (htpasswd was missing: 14 errors)."""
    ci = (ROOT / ".ci" / "run").read_text()
    setup = _readme_block("setup-command")
    assert _apt_packages(ci) == _apt_packages(setup) >= {"docker.io", "docker-registry", "apache2-utils"}


def test_readme_and_ci_install_the_pinned_toolchain() -> None:
    """Both install with constraints.txt, which pins every package of the test toolchain to one version."""
    ci = (ROOT / ".ci" / "run").read_text()
    setup = _readme_block("setup-command")
    assert "pip install -c constraints.txt -e '.[test]'" in setup
    assert re.search(r"pip install -q -c constraints\.txt -e \"\.\[test\]\"", ci)
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not pinned to one version"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    # the test extra and the runtime dependencies are all pinned
    assert {"boto3", "botocore", "moto", "pytest", "pytest-xdist", "hypothesis", "xmlschema", "mypy", "ruff",
            "docker", "jsonschema", "junit-xml", "pyyaml", "cryptography", "types-pyyaml", "build", "setuptools",
            "wheel"} <= set(pins)
    assert pins["boto3"] == pins["botocore"]
