"""The JSON report: real reports (a --fix run) validate against schemas/report.schema.json and carry the contract's
fields; the schema itself accepts INTERFACE.md's example and rejects what the contract does not allow."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from backends import ACCOUNT, Aws
from report_helpers import report_errors, report_schema, validate_report

# The example of INTERFACE.md's "JSON report" section, verbatim.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "version": 1,
    "tool": "pytest-mlbatch", "tool_version": "0.1.0",
    "started_at": "2026-11-28T14:00:00Z", "duration_s": 1.42,
    "targets": [{"account": "123456789012", "region": "us-east-1"}],
    "results": [
        {"check_id": "NET003", "slug": "subnet-egress-path", "title": "...", "severity": "critical",
         "account": "123456789012", "region": "us-east-1", "resource": "subnet-0a",
         "outcome": "failed", "message": "...", "remediation": "...", "duration_s": 0.004}
    ],
    "fixes": [
        {"check_id": "KEY001", "resource": "ml-batch-key", "action": "import key pair",
         "calls": ["ec2:ImportKeyPair"], "applied": True}
    ],
    "summary": {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "fixed": 0},
}
CONTRACT_RESULT_KEYS = {"check_id", "slug", "title", "severity", "account", "region", "resource", "outcome", "message",
                        "remediation", "duration_s"}


def test_fix_run_report_validates_and_keeps_the_contract(preflight, aws: Aws, pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"version": 1, "region": "us-east-1",
           "key_pair": {"name": "ml-batch-key", "private_key_file": "keys/ml.pem"},
           "checks": {"exempt": [{"check": "SG003", "resource": "sg-0123", "until": "2099-01-01", "reason": "r"}]}}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result, report = preflight.run(cfg, "--fix", "--mlbatch-junit", "junit.xml")
    assert result.ret == 0
    validate_report(report)
    # the private key the fix wrote appears in no report, summary or log line
    key_body = "".join((pytester.path / "keys" / "ml.pem").read_text().splitlines()[1:-1])
    for chunk in (key_body[:40], key_body[-40:]):
        for text in (result.stdout.str(), (pytester.path / "mlbatch-report.json").read_text(),
                     (pytester.path / "junit.xml").read_text(), (pytester.path / "summary.md").read_text()):
            assert chunk not in text
    result.stdout.fnmatch_lines(["*= mlbatch preflight =*", "ENV  account and local tooling  2 passed, 1 skipped",
                                 "KEY  EC2 key pair               1 fixed, 1 passed",
                                 "::notice title=KEY001 fixed::ml-batch-key: fixed: generate a rsa key*"],
                                consecutive=False)
    lines = result.stdout.lines
    heading = next(i for i, line in enumerate(lines) if "= mlbatch preflight =" in line)
    assert lines[heading + 1].startswith("ENV  ")  # no blank line after the heading
    assert set(CONTRACT_EXAMPLE) <= set(report)
    assert (report["version"], report["tool"], report["tool_version"]) == (1, "pytest-mlbatch", "0.1.0")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["started_at"])
    assert report["duration_s"] > 0
    assert report["targets"] == [{"account": ACCOUNT, "region": "us-east-1", "label": "us-east-1"}]
    for row in report["results"]:
        assert set(row) >= CONTRACT_RESULT_KEYS
        assert row["account"] == ACCOUNT  # also on ENV003, which was skipped before any AWS call
    fixed = preflight.result(report, "KEY001")
    assert fixed["outcome"] == "fixed" and fixed["message"].startswith("fixed: ")
    [fix] = report["fixes"]
    assert fix["action"].startswith("generate a rsa key, write it to ")
    assert fix["action"].endswith("keys/ml.pem (0600), import its public half as key pair ml-batch-key")
    assert {k: v for k, v in fix.items() if k not in ("action", "notes")} == {
        "check_id": "KEY001", "resource": "ml-batch-key", "calls": ["ec2:ImportKeyPair"],
        "permissions": ["ec2:CreateTags", "ec2:ImportKeyPair"], "applied": True, "target": "us-east-1"}
    outcomes = [r["outcome"] for r in report["results"]]
    assert report["summary"] == {"passed": outcomes.count("passed"), "failed": 0, "error": 0,
                                 "skipped": outcomes.count("skipped"), "fixed": 1, "below_fail_on": 0}
    assert report["exemptions"] == [{"check": "SG003", "resource": "sg-0123", "until": "2099-01-01", "reason": "r",
                                     "status": "unused", "results": 0}]
    assert report["gate"] == "passed" and report["fail_on"] == "low"


def test_schema_accepts_the_contract_example() -> None:
    assert report_errors(CONTRACT_EXAMPLE) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("surprise",), 1, "Additional properties are not allowed"),
    (("results", 0, "outcome"), "ok", "is not one of"),
    (("results", 0, "severity"), "urgent", "is not one of"),
    (("results", 0, "check_id"), "NET3", "does not match"),
    (("results", 0, "raw"), {"KeyMaterial": "..."}, "Additional properties are not allowed"),
    (("targets", 0, "account"), "12345", "does not match"),
    (("summary", "failed"), -1, "less than the minimum"),
    (("fixes", 0, "applied"), "yes", "is not of type 'boolean'"),
    (("started_at",), "yesterday", "does not match"),
])
def test_schema_rejects_what_the_contract_does_not_allow(path: tuple[Any, ...], value: Any, expected: str) -> None:
    report = copy.deepcopy(CONTRACT_EXAMPLE)
    node: Any = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(expected in e for e in report_errors(report)), report_errors(report)


def test_schema_requires_every_contract_field() -> None:
    for key in CONTRACT_EXAMPLE:
        report = copy.deepcopy(CONTRACT_EXAMPLE)
        del report[key]
        assert report_errors(report), key
    for key in CONTRACT_RESULT_KEYS:
        report = copy.deepcopy(CONTRACT_EXAMPLE)
        del report["results"][0][key]
        assert report_errors(report), key
    assert report_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
