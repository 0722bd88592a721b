"""With the plugin installed but no --mlbatch, a pytest run imports no AWS, Docker, schema or YAML code."""

from __future__ import annotations

import json

import pytest

HEAVY = ("boto3", "botocore", "docker", "jsonschema", "yaml", "moto", "cryptography", "junit_xml")

CONFTEST = """
import atexit, json, os, sys

HEAVY = HEAVY_NAMES
STATE = {}

def pytest_configure(config):
    STATE["mlbatch"] = config.pluginmanager.has_plugin("mlbatch")

@atexit.register
def _dump():  # at the very end of the process, whatever pytest did
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    ours = sorted(m for m in sys.modules if m.startswith("pytest_mlbatch"))
    with open(os.path.join(os.path.dirname(__file__), "modules.json"), "w") as f:
        json.dump({"loaded": loaded, "mlbatch": STATE.get("mlbatch"), "ours": ours}, f)
"""


@pytest.fixture
def probe(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.replace("HEAVY_NAMES", repr(HEAVY)))
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    return pytester


def modules(pytester: pytest.Pytester) -> dict[str, object]:
    data: dict[str, object] = json.loads((pytester.path / "modules.json").read_text())
    return data


def test_plain_run_imports_nothing_heavy(probe: pytest.Pytester) -> None:
    result = probe.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    seen = modules(probe)
    assert seen["mlbatch"] is True  # the plugin is installed and loaded ...
    assert seen["ours"] == ["pytest_mlbatch", "pytest_mlbatch.plugin"]  # ... and only its entry point is imported
    assert seen["loaded"] == []


def test_collect_only_and_help_import_nothing_heavy(probe: pytest.Pytester) -> None:
    probe.runpytest_subprocess("--co", "-q").assert_outcomes()
    assert modules(probe)["loaded"] == []
    result = probe.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--mlbatch *"])
    assert modules(probe)["loaded"] == []


def test_the_probe_sees_heavy_imports_when_the_preflight_loads(probe: pytest.Pytester) -> None:
    """The same probe does see boto3 and friends once the preflight's code is loaded (so it can fail)."""
    probe.runpytest_subprocess("--mlbatch-list-checks")
    loaded = modules(probe)["loaded"]
    assert isinstance(loaded, list)
    assert "boto3" in loaded and "botocore" in loaded
