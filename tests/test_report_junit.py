"""--mlbatch-junit: one testsuite per (account, region, area), one testcase per check and resource, parsed back
and validated against the JUnit XSD Jenkins uses; the same report under pytest-xdist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, Aws
from report_helpers import case_outcome, junit_cases, junit_errors, validate_junit, validate_report

from pytest_mlbatch.analysis import keys
from pytest_mlbatch.output.report import junit_xml

TWO_REGIONS = {
    "version": 1,
    "key_pair": {"name": "ml-batch-key", "private_key_file": "ml.pem"},
    "targets": [{"region": "us-east-1"}, {"region": "eu-west-1"}],
}


def arrange_key_in_one_region(aws: Aws, pytester: pytest.Pytester) -> None:
    """The key pair exists (and matches the local file) in us-east-1 only: KEY001 fails in eu-west-1."""
    key = keys.generate("rsa")
    keys.write_private_key(pytester.path / "ml.pem", key)
    aws.client("ec2", "us-east-1").import_key_pair(KeyName="ml-batch-key", PublicKeyMaterial=keys.public_openssh(key))


def outcomes(root: Any, areas: tuple[str, ...] = ("ENV", "KEY")) -> dict[tuple[str, str], str]:
    """Outcome per (suite, testcase) of the given areas (other areas' checks are skipped: nothing configured)."""
    return {k: case_outcome(case) for k, (_suite, case) in junit_cases(root).items()
            if not areas or k[0].startswith(areas)}


def test_junit_suites_per_account_region_area(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    arrange_key_in_one_region(aws, pytester)
    result, report = preflight.run(TWO_REGIONS, "--mlbatch-junit", "reports/compliance.xml")
    assert result.ret == 1
    validate_report(report)
    root = validate_junit(pytester.path / "reports" / "compliance.xml")
    assert root.tag == "testsuites"
    suites = [s.get("name") for s in root.iter("testsuite") if s.get("name", "").startswith(("ENV", "KEY"))]
    assert suites == [f"ENV (account and local tooling) {ACCOUNT}/eu-west-1", f"KEY (EC2 key pair) {ACCOUNT}/eu-west-1",
                      f"ENV (account and local tooling) {ACCOUNT}/us-east-1", f"KEY (EC2 key pair) {ACCOUNT}/us-east-1"]
    cases = junit_cases(root)
    assert len(cases) == len(report["results"])  # one testcase per check, resource and target
    assert len(outcomes(root)) == 10
    suite, case = cases[(f"KEY (EC2 key pair) {ACCOUNT}/eu-west-1", "KEY001 key-pair-exists [ml-batch-key]")]
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"account": ACCOUNT, "region": "eu-west-1", "area": "KEY", "fail_on": "low"}
    assert case.get("classname") == f"mlbatch.{ACCOUNT}.eu-west-1.KEY"
    failure = case.find("failure")
    row = next(r for r in report["results"] if r["check_id"] == "KEY001" and r["region"] == "eu-west-1")
    assert failure is not None and failure.get("message") == row["message"] == \
        "key pair 'ml-batch-key' does not exist in eu-west-1"
    assert failure.text == row["remediation"] and failure.get("type") == "high"
    assert suite.get("failures") == "1" and suite.get("tests") == "2"
    assert outcomes(root) == {
        (f"ENV (account and local tooling) {ACCOUNT}/eu-west-1", "ENV001 credentials [eu-west-1]"): "passed",
        (f"ENV (account and local tooling) {ACCOUNT}/eu-west-1", "ENV002 region [eu-west-1]"): "passed",
        (f"ENV (account and local tooling) {ACCOUNT}/eu-west-1", "ENV003 docker-daemon [not-configured]"): "skipped",
        (f"KEY (EC2 key pair) {ACCOUNT}/eu-west-1", "KEY001 key-pair-exists [ml-batch-key]"): "failure",
        (f"KEY (EC2 key pair) {ACCOUNT}/eu-west-1", "KEY002 private-key-matches [ml-batch-key]"): "skipped",
        (f"ENV (account and local tooling) {ACCOUNT}/us-east-1", "ENV001 credentials [us-east-1]"): "passed",
        (f"ENV (account and local tooling) {ACCOUNT}/us-east-1", "ENV002 region [us-east-1]"): "passed",
        (f"ENV (account and local tooling) {ACCOUNT}/us-east-1", "ENV003 docker-daemon [not-configured]"): "skipped",
        (f"KEY (EC2 key pair) {ACCOUNT}/us-east-1", "KEY001 key-pair-exists [ml-batch-key]"): "passed",
        (f"KEY (EC2 key pair) {ACCOUNT}/us-east-1", "KEY002 private-key-matches [ml-batch-key]"): "passed",
    }
    _s, passed = cases[(f"KEY (EC2 key pair) {ACCOUNT}/us-east-1", "KEY001 key-pair-exists [ml-batch-key]")]
    out = passed.find("system-out")
    assert out is not None and (out.text or "").startswith("passed: ml-batch-key exists in us-east-1")

    # the same run under pytest-xdist: the controller writes the same suites and testcases
    result, xreport = preflight.run(None, "-n", "2", "-p", "no:benchmark", "--mlbatch-junit", "reports/xdist.xml")
    assert result.ret == 1
    every_area = outcomes(root, ())
    assert len(every_area) == len(report["results"])
    assert outcomes(validate_junit(pytester.path / "reports" / "xdist.xml"), ()) == every_area
    assert [(r["check_id"], r["target"], r["outcome"]) for r in xreport["results"]] == \
        [(r["check_id"], r["target"], r["outcome"]) for r in report["results"]]


def row(check_id: str, outcome: str, *, severity: str = "high", below: bool = False, message: str = "finding",
        account: str | None = "123456789012", target: str = "us-east-1") -> dict[str, Any]:
    return {"check_id": check_id, "slug": "some-check", "title": "t", "severity": severity,
            "area": check_id.rstrip("0123456789"), "target": target, "account": account, "region": "us-east-1",
            "resource": "res-1", "outcome": outcome, "message": message, "remediation": "do this",
            "duration_s": 0.1234567, "below_threshold": below}


def test_every_outcome_maps_to_junit_and_validates(tmp_path: Path) -> None:
    results = [
        row("NET003", "failed", severity="critical", message='no route <to> "0.0.0.0/0" & \x1b[31mno NAT\x1b[0m'),
        row("NET004", "failed", severity="low", below=True),
        row("NET001", "error", message="ec2:DescribeVpcs denied"),
        row("NET002", "skipped", message="no subnets configured", account=None),
        row("KEY001", "fixed", message="fixed: import key pair"),
        row("KEY002", "passed"),
    ]
    text = junit_xml(results, fail_on="medium")
    path = tmp_path / "j.xml"
    path.write_text(text, encoding="utf-8")
    root = validate_junit(path)
    assert [s.get("name") for s in root.iter("testsuite")] == [
        "KEY (EC2 key pair) 123456789012/us-east-1", "NET (VPC and subnets) 123456789012/us-east-1"]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "1", "1")
    net = next(s for s in root.iter("testsuite") if s.get("name", "").startswith("NET"))
    assert (net.get("failures"), net.get("errors"), net.get("skipped")) == ("1", "1", "2")
    cases = {c.get("name", "").split()[0]: c for c in root.iter("testcase")}
    failure = cases["NET003"].find("failure")
    assert failure is not None and failure.get("message") == 'no route <to> "0.0.0.0/0" & \\x1b[31mno NAT\\x1b[0m'
    assert failure.get("type") == "critical" and failure.text == "do this"
    below = cases["NET004"].find("skipped")
    assert below is not None and below.get("message") == "below --mlbatch-fail-on medium (low): finding"
    assert below.text == "do this"
    error = cases["NET001"].find("error")
    assert error is not None and error.get("message") == "could not evaluate: ec2:DescribeVpcs denied"
    assert error.get("type") == "not-evaluated"
    skipped = cases["NET002"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no subnets configured"
    for name, text_out in (("KEY001", "fixed: import key pair"), ("KEY002", "passed: finding")):
        assert case_outcome(cases[name]) == "passed"
        out = cases[name].find("system-out")
        assert out is not None and out.text == text_out
    assert cases["KEY002"].get("time") == "0.123"


def test_the_xsd_check_can_fail() -> None:
    """The validator is not a formality: what junit-xml writes by itself (a `disabled` count, times with six
    decimals) is rejected, and an element JUnit does not know is rejected."""
    from junit_xml import TestCase, TestSuite, to_xml_report_string

    raw = to_xml_report_string([TestSuite("s", [TestCase("c", elapsed_sec=0.1234567)])])
    errors = junit_errors(raw)
    assert any("'disabled' attribute not allowed" in e for e in errors)
    bad = junit_xml([row("KEY001", "failed")]).replace("<failure", "<failed").replace("</failure>", "</failed>")
    assert junit_errors(bad)
