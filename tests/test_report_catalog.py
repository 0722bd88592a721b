"""The catalog for humans and machines: --mlbatch-list-checks (table, and JSON with --mlbatch-json) and
docs/checks.md, generated from the registry (this test fails when the file is stale)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from pytest_mlbatch.engine.registry import PERMISSION_RE, load_checks
from pytest_mlbatch.output.catalog import REGENERATE, catalog, main, read_only_policy, render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "checks.md"
METADATA_KEYS = {"id", "slug", "title", "severity", "area", "resource", "permissions", "rationale", "remediation",
                 "fixer", "fix_permissions", "run_permissions"}


def test_docs_checks_md_is_generated_from_the_registry() -> None:
    current = DOCS.read_text(encoding="utf-8") if DOCS.is_file() else ""
    expected = render_markdown()
    diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/checks.md",
                                        "generated", n=1))
    assert current == expected, f"docs/checks.md is stale: run `{REGENERATE}` and commit it\n{diff[:3000]}"
    for check in load_checks():
        assert f"### {check.id}\n" in current and check.remediation.split()[0] in current


def test_list_checks_as_json_and_as_a_table(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mlbatch-list-checks", "--mlbatch-json", "out/catalog.json")
    assert result.ret == 0
    data = json.loads((pytester.path / "out" / "catalog.json").read_text())
    assert (data["version"], data["tool"]) == (1, "pytest-mlbatch")
    ids = [c["id"] for c in data["checks"]]
    assert ids == load_checks().ids() and {"ENV001", "KEY001", "KEY002"} <= set(ids)
    for row in data["checks"]:
        assert set(row) == METADATA_KEYS, row["id"]
        assert all(PERMISSION_RE.match(p) for p in row["permissions"] + row["fix_permissions"])
    key001 = next(c for c in data["checks"] if c["id"] == "KEY001")
    assert key001["fixer"] and key001["fix_permissions"] == ["ec2:ImportKeyPair", "ec2:CreateTags"]
    result.stdout.fnmatch_lines([f"wrote {len(ids)} checks to */out/catalog.json"])

    result = pytester.runpytest("--mlbatch-list-checks")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["ENV001  critical  AWS credentials resolve and STS answers  [fix: —]",
                                 "KEY001  high      The EC2 key pair exists in the region  [fix: generate the key*",
                                 f"{len(ids)} checks; details (why, what to do, permissions, fixes): "
                                 "python -m pytest_mlbatch.output.catalog"])
    assert "collected" not in result.stdout.str()  # it lists and exits: nothing is collected or run
    assert "docs/" not in result.stdout.str()  # no path that exists only in a checkout


def test_the_details_pointer_works_outside_the_checkout(tmp_path) -> None:
    """The command --mlbatch-list-checks points at prints the whole catalog from the installed package."""
    import subprocess
    import sys

    from pytest_mlbatch.output.catalog import DETAILS, render_markdown

    argv = [sys.executable, *DETAILS.split()[1:]]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_markdown() and "### KEY001" in done.stdout


def test_generator_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "checks.md"
    path.write_text("# Checks\n\nedited by hand\n")
    assert main(["--check", str(path)]) == 1
    assert f"is stale: run `{REGENERATE}`" in capsys.readouterr().err
    assert main(["--write", str(path)]) == 0
    assert main(["--check", str(path)]) == 0
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == catalog()


def test_read_only_policy_lists_every_read_permission() -> None:
    rows = catalog()["checks"]
    actions = read_only_policy(rows)["Statement"][0]["Action"]
    assert actions == sorted({p for c in rows for p in c["permissions"]})
    assert "sts:GetCallerIdentity" in actions and "ec2:ImportKeyPair" not in actions
