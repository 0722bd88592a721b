"""Plugin behaviour through real pytest runs: items, node ids, selection, JUnit properties, outcomes, sandbox."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from backends import Aws

KEY_CONFIG = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-key"}}


def test_one_item_per_check_and_resource_with_readable_ids(preflight, aws: Aws) -> None:
    result = preflight.pytester.runpytest("--mlbatch", "--co", "-q") if preflight.write_config(KEY_CONFIG) else None
    assert result is not None
    result.stdout.fnmatch_lines(["mlbatch/us-east-1::ENV001[[]us-east-1[]]", "mlbatch/us-east-1::KEY001[[]ml-key[]]",
                                 "mlbatch/us-east-1::KEY002[[]ml-key[]]"])


def test_k_selects_one_check(preflight, aws: Aws) -> None:
    result, report = preflight.run(KEY_CONFIG, "-k", "KEY001")
    assert [r["check_id"] for r in report["results"]] == ["KEY001"]
    result.assert_outcomes(failed=1, deselected=len(report["results"]) and result.parseoutcomes()["deselected"])


def test_failure_shows_finding_and_remediation_not_traceback(preflight, aws: Aws) -> None:
    """pytest's FAILURES block (shown with --tb=short and the like; by default the preflight summary alone)."""
    result, _ = preflight.run(KEY_CONFIG, "-k", "KEY001", "--tb=short")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*KEY001 The EC2 key pair exists in the region [[]high[]] on ml-key*FAILED",
                                 "  finding: key pair 'ml-key' does not exist in us-east-1",
                                 "  fix: Create or import the key pair*"])
    assert "Traceback" not in result.stdout.str()
    assert "def key_pair_exists" not in result.stdout.str()


def test_junitxml_carries_properties(preflight, aws: Aws) -> None:
    preflight.run(KEY_CONFIG, "--junitxml", "junit.xml")
    tree = ET.parse(preflight.pytester.path / "junit.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "KEY001[ml-key]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["check_id"] == "KEY001" and props["severity"] == "high" and props["resource"] == "ml-key"
    assert case.find("failure") is not None


def test_unreachable_aws_is_error_never_pass(preflight, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    result, report = preflight.run(KEY_CONFIG)
    outcomes = preflight.outcomes(report)
    assert outcomes["ENV001[us-east-1]"] == "error"
    assert outcomes["KEY001[ml-key]"] == "error"
    assert "ec2:DescribeKeyPairs failed" in preflight.result(report, "KEY001")["message"]
    assert "passed" not in {v for k, v in outcomes.items() if not k.startswith("ENV002")}
    assert result.parseoutcomes()["errors"] >= 2  # pytest errors, so CI tells "could not check" from "failed"


def test_missing_credentials_fail_env001_and_skip_the_rest(preflight, aws: Aws,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _, report = preflight.run(KEY_CONFIG)
    env001 = preflight.result(report, "ENV001")
    assert env001["outcome"] == "failed" and "credentials" in env001["message"].lower()
    key001 = preflight.result(report, "KEY001")
    assert key001["outcome"] == "skipped" and "credentials not usable (see ENV001)" in key001["message"]


def test_missing_region_fails_env002(preflight, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    _, report = preflight.run({"version": 1, "key_pair": {"name": "k"}})
    assert preflight.result(report, "ENV002")["outcome"] == "failed"
    assert preflight.result(report, "KEY001")["outcome"] == "skipped"


def test_unknown_region_fails_env002(preflight, aws: Aws) -> None:
    _, report = preflight.run({"version": 1, "region": "us-east-9"})
    row = preflight.result(report, "ENV002")
    assert row["outcome"] == "failed" and "'us-east-9' (from config region) is not a known AWS region" in row["message"]


def test_cli_region_override(preflight, aws: Aws) -> None:
    _, report = preflight.run({"version": 1, "region": "us-east-9"}, "--aws-region", "eu-west-1")
    assert preflight.result(report, "ENV002")["message"] == "eu-west-1 (from --aws-region)"


def test_not_configured_checks_are_skipped_with_reason(preflight, aws: Aws) -> None:
    _, report = preflight.run({"version": 1, "region": "us-east-1"})
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "skipped" and row["message"].startswith("no key pair: set key_pair.name")


def test_preflight_alone_without_paths_and_with_tests_when_given(preflight, aws: Aws) -> None:
    preflight.pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    result, _ = preflight.run(KEY_CONFIG, "-k", "ENV001 or unit")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])
    result, _ = preflight.run(KEY_CONFIG, "-k", "ENV001 or unit", "test_unit.py")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes()["deselected"])


def test_without_mlbatch_no_items(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", mlbatch="region: us-east-1\n")
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest("--co", "-q")
    result.stdout.fnmatch_lines(["test_without_mlbatch_no_items.py::test_a", "1 test collected*"])
    assert "mlbatch/" not in result.stdout.str()


def test_list_checks(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mlbatch-list-checks")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["ENV001  critical  AWS credentials resolve and STS answers  [[]fix: —[]]",
                                 "KEY001  high      The EC2 key pair exists in the region  [[]fix: generate*"])
    result = pytester.runpytest("--mlbatch-list-checks", "--mlbatch-json", "c.json")
    data = json.loads((pytester.path / "c.json").read_text())
    assert {c["id"] for c in data["checks"]} >= {"ENV001", "KEY001", "KEY002"}


def test_sandbox_fix_repairs(pytester: pytest.Pytester) -> None:
    """The README's first command with --fix: an embedded moto (own process, so its state is its own). The plain first
    run, its failures and exit status, is tests/test_first_run.py's sandbox test."""
    result = pytester.runpytest_subprocess("--mlbatch-sandbox", "--fix", "--mlbatch-json", "r.json",
                                           "-p", "no:cacheprovider", "-k", "KEY")
    data = json.loads((pytester.path / "r.json").read_text())
    assert {r["check_id"]: r["outcome"] for r in data["results"]} == {"KEY001": "fixed", "KEY002": "passed"}
    assert result.ret == pytest.ExitCode.OK


def test_error_shows_the_reason_not_pytest_internals(preflight, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    result, _ = preflight.run(KEY_CONFIG, "-k", "KEY001", "--tb=short")
    result.stdout.fnmatch_lines(["*ERROR at setup of KEY001*",
                                 "KEY001 The EC2 key pair exists in the region [[]high[]] on ml-key*could not evaluate",
                                 "  finding: ec2:DescribeKeyPairs failed*",
                                 "ERROR mlbatch/us-east-1::KEY001[[]ml-key[]] - KEY001 The EC2 key pair*"])
    assert "CallInfo" not in result.stdout.str() and "runtest_hook" not in result.stdout.str()
