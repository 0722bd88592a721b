"""CI gating on real moto runs: --mlbatch-fail-on, checks.skip, checks.severity and checks.exempt (with expiry).

Real failures used: KEY001 (high) when the key pair does not exist; ENV001 (critical) when the config names another
account than the credentials'; KEY002 (medium) when the key pair exists but the private key file does not; ENV002
(critical) on a region AWS does not have.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from backends import Aws
from report_helpers import validate_report

from pytest_mlbatch.analysis import keys

KEY = {"name": "ml-batch-key", "private_key_file": "keys/ml.pem"}
OTHER_ACCOUNT = "210987654321"


def config(*, account: str | None = None, **checks: Any) -> dict[str, Any]:
    """The key pair does not exist (KEY001 fails; KEY002 defers to it); with `account`, ENV001 fails too."""
    cfg: dict[str, Any] = {"version": 1, "region": "us-east-1", "key_pair": dict(KEY)}
    if account:
        cfg["account_id"] = account
    if checks:
        cfg["checks"] = checks
    return cfg


def import_key_pair(aws: Aws) -> None:
    """The key pair exists, but its private key file does not: KEY002 fails."""
    aws.client("ec2").import_key_pair(KeyName=KEY["name"], PublicKeyMaterial=keys.public_openssh(keys.generate("rsa")))


def junit_cases(path: Any) -> dict[str, ET.Element]:
    """pytest's --junitxml testcases by check id."""
    root = ET.parse(path).getroot()
    return {case.get("name", "").split("[")[0]: case for case in root.iter("testcase")}


def props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_fail_on_critical_reports_failures_as_xfail_and_passes(preflight, aws: Aws,
                                                              pytester: pytest.Pytester) -> None:
    # KEY001 (high) is the only check evaluated beyond ENV: below the gate, so the run passes only with the opt-in
    result, report = preflight.run(config(), "--mlbatch-fail-on", "critical", "--junitxml", "pytest.xml",
                                   "--mlbatch-allow-unchecked")
    assert result.ret == 0
    validate_report(report)
    result.assert_outcomes(passed=2, skipped=report["summary"]["skipped"], xfailed=1)
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "failed" and row["below_threshold"] is True
    assert report["gate"] == "passed" and report["summary"]["below_fail_on"] == 1
    # pytest's own JUnit shows it as skipped (xfail) with the reason, never as passed
    cases = junit_cases(pytester.path / "pytest.xml")
    skipped = cases["KEY001"].find("skipped")
    assert skipped is not None and skipped.get("type") == "pytest.xfail"
    assert "high is below --mlbatch-fail-on critical" in skipped.get("message", "")
    assert "does not exist in us-east-1" in skipped.get("message", "")
    assert cases["KEY001"].find("failure") is None
    assert props(cases["KEY001"]) == {"check_id": "KEY001", "severity": "high", "resource": "ml-batch-key",
                                      "target": "us-east-1"}
    result.stdout.fnmatch_lines([
        "  (high)   KEY001 ml-batch-key — key pair 'ml-batch-key' does not exist in us-east-1 → Create *",
        "nothing at or above --mlbatch-fail-on critical was checked beyond credentials and region (* skipped; -rs "
        "shows why): the run passes (--mlbatch-allow-unchecked) (1 below it*does not count)"])


def test_fail_on_high_gates_on_the_critical_failure_only(preflight, aws: Aws) -> None:
    import_key_pair(aws)
    result, report = preflight.run(config(account=OTHER_ACCOUNT), "--mlbatch-fail-on", "high")
    assert result.ret == 1 and report["gate"] == "failed"
    result.assert_outcomes(failed=1, passed=2, skipped=report["summary"]["skipped"], xfailed=1)
    assert preflight.result(report, "ENV001")["below_threshold"] is False
    row = preflight.result(report, "KEY002")
    assert row["outcome"] == "failed" and row["below_threshold"] is True
    result.stdout.fnmatch_lines(
        ["1 problem at or above --mlbatch-fail-on high or not evaluated: the run fails (1 below it*"])


def test_fail_on_from_ini_and_bad_value(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmlbatch_fail_on = critical\nmlbatch_allow_unchecked = true\n")
    result, report = preflight.run(config())
    assert result.ret == 0 and report["fail_on"] == "critical"
    pytester.makeini("[pytest]\nmlbatch_fail_on = severe\n")
    result, report = preflight.run(None)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and report == {}
    assert "'severe' is not one of critical, high, medium, low" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_checks_skip_and_severity_override(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    cfg = config(account=OTHER_ACCOUNT, skip=["KEY001"], severity={"ENV001": "low"})
    result, report = preflight.run(cfg, "--mlbatch-fail-on", "medium", "--junitxml", "pytest.xml",
                                   "--mlbatch-allow-unchecked")
    assert result.ret == 0
    validate_report(report)
    result.assert_outcomes(passed=1, skipped=report["summary"]["skipped"], xfailed=1)
    assert preflight.result(report, "KEY002")["outcome"] == "skipped"
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "skipped" and row["message"] == "skipped by config (checks.skip)"
    row = preflight.result(report, "ENV001")
    assert row["severity"] == "low" and row["outcome"] == "failed" and row["below_threshold"] is True
    assert row["message"] == f"credentials are for account {aws.account}, config expects {OTHER_ACCOUNT}"
    cases = junit_cases(pytester.path / "pytest.xml")
    assert props(cases["ENV001"])["severity"] == "low"
    skipped = cases["KEY001"].find("skipped")
    assert skipped is not None and "skipped by config (checks.skip)" in skipped.get("message", "")


def test_exemption_covers_one_check_on_one_resource_until_its_date(preflight, aws: Aws) -> None:
    exempt = [
        {"check": "KEY001", "resource": "ml-batch-key", "until": "2099-12-31", "reason": "key rotation, ticket 42"},
        {"check": "ENV001", "resource": "eu-west-1", "until": "2099-12-31", "reason": "another target"},
    ]
    result, report = preflight.run(config(account=OTHER_ACCOUNT, exempt=exempt))
    validate_report(report)
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "skipped"
    assert row["message"] == "exempted until 2099-12-31: key rotation, ticket 42"
    # the exemption of ENV001 on another resource does not exempt ENV001 on this one
    assert preflight.result(report, "ENV001")["outcome"] == "failed"
    assert result.ret == 1
    assert [(e["check"], e["status"], e["results"]) for e in report["exemptions"]] == [
        ("KEY001", "active", 1), ("ENV001", "unused", 0)]
    result.stdout.fnmatch_lines([
        "exemption KEY001 ml-batch-key: exempted until 2099-12-31 (key rotation, ticket 42)",
        "exemption ENV001 eu-west-1: exemption (until 2099-12-31) matched no result (another target)",
    ])


def test_expired_exemption_stops_exempting_and_says_so(preflight, aws: Aws) -> None:
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    exempt = [{"check": "KEY001", "resource": "ml-batch-key", "until": yesterday, "reason": "ticket 7"}]
    result, report = preflight.run(config(exempt=exempt))
    assert result.ret == 1
    validate_report(report)
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "failed"
    assert row["message"] == (f"key pair 'ml-batch-key' does not exist in us-east-1 "
                              f"[exemption expired on {yesterday} (ticket 7)]")
    assert row["notes"] == [f"exemption expired on {yesterday} (ticket 7)"]
    assert report["exemptions"][0]["status"] == "expired"
    result.stdout.fnmatch_lines([f"*KEY001 ml-batch-key — *exemption expired on {yesterday} (ticket 7)* → *",
                                 f"exemption KEY001 ml-batch-key: exemption EXPIRED on {yesterday}: the check "
                                 "counts again (ticket 7)"])


def test_env_check_exemption_and_severity(preflight, aws: Aws) -> None:
    """ENV002 fails for real on a region AWS does not have; an exemption or a lower severity lets CI pass."""
    base = {"version": 1, "region": "zz-north-9"}
    result, report = preflight.run({**base, "checks": {"severity": {"ENV002": "low"}}}, "--mlbatch-fail-on", "high",
                                   "--mlbatch-allow-unchecked")
    assert result.ret == 0
    row = preflight.result(report, "ENV002")
    assert row["message"] == "'zz-north-9' (from config region) is not a known AWS region"
    assert row["severity"] == "low" and row["outcome"] == "failed" and row["below_threshold"] is True
    result.assert_outcomes(passed=1, xfailed=1, skipped=report["summary"]["skipped"])

    exempt = [{"check": "ENV002", "resource": "zz-north-9", "until": "2099-01-01", "reason": "local test region"}]
    result, report = preflight.run({**base, "checks": {"exempt": exempt}}, "--mlbatch-allow-unchecked")
    assert result.ret == 0
    assert preflight.result(report, "ENV002")["message"] == "exempted until 2099-01-01: local test region"
