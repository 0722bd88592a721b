"""A project's own checks and tests (docs/extending.md), through pytester runs of a project with its own conftest.py
against a moto world: the fixtures give the model, a custom check passes and fails, is reported, exempted and gated
like a built-in one, its fixer creates only what it plans (dry run, journal), and bad declarations are usage errors
naming the file and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from backends import REGION, Aws
from bat_fixtures import BatchEnv, make_env
from iam_fixtures import policy_doc
from report_helpers import validate_junit, validate_report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIG = {"version": 1, "region": REGION, "batch": {"job_queue": "ml-queue", "job_definition": "ml-train"}}
TEAM_LOG_GROUP = "/aws/batch/ml-team"
REGION_ONLY = {"version": 1, "region": REGION}  # enough for checks that run once per target (and cheaper to build)


def world(aws: Aws, *, may_write_output: bool = True) -> BatchEnv:
    """A queue, its compute environment in two zones and a job definition whose job role may (or not) write
    s3://ml-out/."""
    env = make_env(aws)
    env.compute_environment()
    env.queue()
    env.job_definition()
    if may_write_output:
        aws.client("iam").put_role_policy(RoleName="ml-job-role", PolicyName="output", PolicyDocument=policy_doc(
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::ml-out/*"}))
    return env


def project(pytester: pytest.Pytester, conftest: str | None = None) -> None:
    """The team's repository: examples/conftest.py (its own checks), or another conftest."""
    if conftest is None:
        shutil.copy(EXAMPLES / "conftest.py", pytester.path / "conftest.py")
    else:
        pytester.makeconftest(conftest)


def log_groups(aws: Aws) -> dict[str, dict[str, str]]:
    logs = aws.client("logs")
    return {g["logGroupName"]: logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"]
            for g in logs.describe_log_groups()["logGroups"]}


def journal(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / ".mlbatch" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


MODEL_TESTS = """
import pytest
from pytest_mlbatch.aws.guard import ForbiddenCall

def test_model(mlbatch_model, mlbatch_target):
    job = mlbatch_model.job()
    assert (job.name, job.revision) == ("ml-train", 1)
    assert job.job_role.endswith(":role/ml-job-role")
    (ce,) = mlbatch_model.compute_environments()
    assert ce.name == "ml-ce" and len(ce.subnets) == 2 and ce.instance_types == ("m5.large",)
    assert mlbatch_model.scope.job_queue == "ml-queue"
    assert (mlbatch_target.label, mlbatch_target.region) == ("us-east-1", "us-east-1")

def test_policy(mlbatch_policy):
    assert mlbatch_policy.allows("ml-job-role", "s3:PutObject", "arn:aws:s3:::ml-out/model.pt")
    decision = mlbatch_policy.decide("ml-job-role", "s3:PutObject", "arn:aws:s3:::other-bucket/x")
    assert decision.verdict == "denied", decision.describe()
    assert not mlbatch_policy.allows("ml-job-role", "s3:DeleteObject", "arn:aws:s3:::ml-out/model.pt")

def test_reads_cached_writes_refused(mlbatch_aws):
    first = mlbatch_aws.call("ec2", "describe_subnets")
    assert mlbatch_aws.call("ec2", "describe_subnets") is first  # cached: the preflight's answer is shared
    assert {s["AvailabilityZone"] for s in first["Subnets"]} >= {"us-east-1a", "us-east-1b"}
    with pytest.raises(ForbiddenCall, match="not a read"):
        mlbatch_aws.client("logs").create_log_group(logGroupName="/made/by/a/test")

def test_zones_fail_when_one_zone(mlbatch_model, mlbatch_aws):
    subnets = sorted({s for ce in mlbatch_model.compute_environments() for s in ce.subnets})
    zones = {s["AvailabilityZone"] for s in mlbatch_aws.call("ec2", "describe_subnets", SubnetIds=subnets)["Subnets"]}
    assert len(zones) >= 3, f"only {len(zones)} zones"
"""


def test_fixtures_give_the_model_of_a_moto_world(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    world(aws)
    pytester.makepyfile(test_mine=MODEL_TESTS)
    result, _ = preflight.run(CONFIG, "test_mine.py", "-k", "test_", "-rA", "--mlbatch-allow-unchecked")
    result.stdout.fnmatch_lines_random([
        "PASSED test_mine.py::test_model[[]us-east-1[]]", "PASSED test_mine.py::test_policy[[]us-east-1[]]",
        "PASSED test_mine.py::test_reads_cached_writes_refused[[]us-east-1[]]",
        "FAILED test_mine.py::test_zones_fail_when_one_zone[[]us-east-1[]]*", "E * only 2 zones"])
    assert result.parseoutcomes()["passed"] == 3
    assert "/made/by/a/test" not in log_groups(aws)


def test_without_mlbatch_the_fixtures_skip_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=MODEL_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_mine.py:*: needs --mlbatch (or --mlbatch-sandbox)*"])
    assert result.stdout.str().count("needs --mlbatch (or --mlbatch-sandbox)") == 4


def test_a_custom_check_passes_and_fails_and_is_reported_like_the_catalog(preflight: Any, aws: Aws,
                                                                          pytester: pytest.Pytester) -> None:
    world(aws, may_write_output=False)
    project(pytester)
    listing = pytester.runpytest("--mlbatch-list-checks")
    assert listing.ret == 0
    listing.stdout.fnmatch_lines(["X-TEAM001 high      The team's log group exists  [[]fix: create the log group*"
                                  "(custom: *conftest.py:*)",
                                  "X-TEAM002 critical  The job role may write the team's output bucket*",
                                  "*checks (2 of them the project's own)*"])
    junit = pytester.path / "compliance.xml"
    result, report = preflight.run(CONFIG, "-k", "TEAM", "--mlbatch-junit", str(junit))
    validate_report(report)
    rows = {r["check_id"]: r for r in report["results"]}
    assert set(rows) == {"X-TEAM001", "X-TEAM002"}
    assert rows["X-TEAM001"]["outcome"] == "failed" and TEAM_LOG_GROUP in rows["X-TEAM001"]["message"]
    assert rows["X-TEAM001"]["area"] == "X-TEAM" and rows["X-TEAM001"]["severity"] == "high"
    assert rows["X-TEAM002"]["outcome"] == "failed"
    assert "s3:PutObject on arn:aws:s3:::ml-out/*: denied" in rows["X-TEAM002"]["message"]
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*critical X-TEAM002 us-east-1 — job role ml-job-role*"])
    suites = {s.get("name", "").split()[0]: s for s in validate_junit(junit).iter("testsuite")}
    assert sorted(str(c.get("name")).split()[0] for c in suites["X-TEAM"].iter("testcase")) == ["X-TEAM001",
                                                                                                 "X-TEAM002"]

    # the same world, repaired by hand: both pass
    aws.client("logs").create_log_group(logGroupName=TEAM_LOG_GROUP)
    aws.client("iam").put_role_policy(RoleName="ml-job-role", PolicyName="output", PolicyDocument=policy_doc(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::ml-out/*"}))
    result, report = preflight.run(CONFIG, "-k", "TEAM")
    assert preflight.outcomes(report) == {"X-TEAM001[us-east-1]": "passed", "X-TEAM002[us-east-1]": "passed"}
    assert result.ret == 0


def test_exemptions_and_severity_gates_apply_to_custom_checks(preflight: Any, aws: Aws,
                                                               pytester: pytest.Pytester) -> None:
    world(aws, may_write_output=False)
    project(pytester)
    config = {**CONFIG, "checks": {
        "severity": {"X-TEAM002": "low"},
        "exempt": [{"check": "X-TEAM001", "resource": "us-east-1", "until": "2099-12-31", "reason": "ticket 7"}]}}
    # (what is left at or above "high" is exempted: the run accepts that nothing else was checked)
    result, report = preflight.run(config, "-k", "TEAM", "--mlbatch-fail-on", "high", "--mlbatch-allow-unchecked")
    validate_report(report)
    team1, team2 = preflight.result(report, "X-TEAM001"), preflight.result(report, "X-TEAM002")
    assert team1["outcome"] == "skipped" and "exempted until 2099-12-31: ticket 7" in team1["message"]
    assert team2["outcome"] == "failed" and team2["severity"] == "low" and team2["below_threshold"] is True
    assert [e["status"] for e in report["exemptions"]] == ["active"]
    assert result.ret == 0  # a failure below --mlbatch-fail-on does not fail the run


def test_a_custom_fixer_plans_in_dry_run_and_creates_only_what_it_plans(preflight: Any, aws: Aws,
                                                                         pytester: pytest.Pytester) -> None:
    project(pytester)
    before = log_groups(aws)
    dry, report = preflight.run(REGION_ONLY, "-k", "X-TEAM001", "--fix-dry-run")
    assert log_groups(aws) == before and journal(pytester) == []
    (fix,) = report["fixes"]
    assert (fix["check_id"], fix["action"], fix["calls"], fix["applied"]) == \
        ("X-TEAM001", f"create log group {TEAM_LOG_GROUP}", ["logs:CreateLogGroup"], False)
    assert "dry run: would create log group" in preflight.result(report, "X-TEAM001")["message"]
    assert dry.ret == 1  # still broken: a dry run repairs nothing

    _, report = preflight.run(REGION_ONLY, "-k", "X-TEAM001", "--fix")
    assert preflight.result(report, "X-TEAM001")["outcome"] == "fixed"
    after = log_groups(aws)
    assert set(after) - set(before) == {TEAM_LOG_GROUP}  # what the plan said, nothing else
    tags = after[TEAM_LOG_GROUP]
    assert tags["pytest-mlbatch:managed"] == "true" and "pytest-mlbatch:plan" in tags
    calls = [(e["check_id"], e.get("call"), e["status"]) for e in journal(pytester)]
    assert {("X-TEAM001", "logs:CreateLogGroup", "intent"), ("X-TEAM001", "logs:CreateLogGroup", "ok")} <= set(calls)
    assert [e["status"] for e in journal(pytester) if e.get("action")] == ["applied"]


GREEDY_FIXER = """
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_mlbatch_checks(registry):
    from pytest_mlbatch.engine.context import FixPlan
    from pytest_mlbatch.findings import failed

    @registry.check(id="X-LOG001", slug="log-group", title="A log group exists", severity="high",
                    resource="target", permissions=["logs:DescribeLogGroups"], rationale="jobs log there",
                    remediation="create it")
    def log_group(ctx, res):
        return failed("no log group")

    @log_group.fix(summary="create the log group", permissions=["logs:CreateLogGroup"])
    def plan(ctx, res, finding):
        def apply(fx):
            fx.client("logs").create_log_group(logGroupName="/declared", tags=fx.tags)
            fx.client("logs").create_log_group(logGroupName="/undeclared-extra", tags=fx.tags)  # a second, same call
            fx.client("logs").put_retention_policy(logGroupName="/declared", retentionInDays=1)  # not declared
        return FixPlan(res.id, "create log group /declared", calls=["logs:CreateLogGroup"],
                       permissions=["logs:CreateLogGroup"], apply=apply)
"""


def test_a_custom_fixer_cannot_send_what_its_plan_did_not_declare(preflight: Any, aws: Aws,
                                                                  pytester: pytest.Pytester) -> None:
    project(pytester, GREEDY_FIXER)
    _, report = preflight.run(REGION_ONLY, "-k", "X-LOG001", "--fix")
    row = preflight.result(report, "X-LOG001")
    assert row["outcome"] == "error"
    assert "logs:PutRetentionPolicy is not one of the calls the plan of X-LOG001" in row["message"]
    assert "retentionInDays" not in json.dumps(aws.client("logs").describe_log_groups())
    assert [e["status"] for e in journal(pytester) if e.get("action")] == ["failed"]


REMEDIATION_TEST = """
from pytest_mlbatch.engine.context import FixPlan
from pytest_mlbatch.findings import failed, passed

GROUP = "/aws/batch/ml-scratch"

def test_scratch_log_group(mlbatch_fix):
    def exists(ctx, res):
        groups = ctx.inventory.call("logs", "describe_log_groups", logGroupNamePrefix=res.id)["logGroups"]
        return passed("exists") if any(g["logGroupName"] == res.id for g in groups) else failed(f"{res.id} missing")

    def plan(ctx, res, finding):
        def apply(fx):
            fx.client("logs").create_log_group(logGroupName=res.id, tags=fx.tags)
        return FixPlan(res.id, f"create log group {res.id}", calls=["logs:CreateLogGroup"],
                       permissions=["logs:CreateLogGroup"], apply=apply)

    mlbatch_fix.ensure("X-TEAM101", GROUP, exists, plan, title="The scratch log group exists")

def test_own_failure_after_a_passing_remediation(mlbatch_fix):
    assert mlbatch_fix.run("X-TEAM102", "anything", lambda ctx, res: passed("fine")).outcome == "passed"
    assert False, "a failure of the test's own"
"""


def test_a_remediation_fixture_applies_only_under_fix(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_scratch=REMEDIATION_TEST)
    plain, report = preflight.run(REGION_ONLY, "test_scratch.py", "-k", "scratch", "-rA")
    assert plain.ret == 1 and "/aws/batch/ml-scratch" not in log_groups(aws)
    assert preflight.result(report, "X-TEAM101")["outcome"] == "failed"
    # a test failing for a reason of its own keeps pytest's report of it (its remediation's result is not carried)
    plain.stdout.fnmatch_lines(["E       AssertionError: a failure of the test's own",
                                "FAILED test_scratch.py::test_own_failure_after_a_passing_remediation*"])
    assert "X-TEAM102" not in {r["check_id"] for r in report["results"]}

    args = ("test_scratch.py", "-k", "test_scratch_log_group", "--mlbatch-allow-unchecked", "-rA", "--tb=short")

    dry, report = preflight.run(REGION_ONLY, *args, "--fix-dry-run")
    assert dry.ret == 1 and "/aws/batch/ml-scratch" not in log_groups(aws) and journal(pytester) == []
    dry.stdout.fnmatch_lines(["*plan (dry run: nothing was changed):*", "*X-TEAM101 /aws/batch/ml-scratch: create "
                              "log group /aws/batch/ml-scratch*", "*calls: logs:CreateLogGroup*"])
    assert report["fixes"][0]["applied"] is False

    fixed, report = preflight.run(REGION_ONLY, *args, "--fix")
    validate_report(report)
    assert fixed.ret == 0, fixed.stdout.str()
    assert preflight.result(report, "X-TEAM101")["outcome"] == "fixed"
    assert log_groups(aws)["/aws/batch/ml-scratch"]["pytest-mlbatch:managed"] == "true"
    assert ("X-TEAM101", "logs:CreateLogGroup", "ok") in [(e["check_id"], e.get("call"), e["status"])
                                                          for e in journal(pytester)]


SECOND = {"id": '"X-LOG002"', "slug": '"b"', "title": '"B"', "severity": '"low"', "resource": '"target"',
          "permissions": '["logs:DescribeLogGroups"]', "rationale": '"r"', "remediation": '"r"'}
BAD = {
    "catalog id": ({"id": '"NET001"'}, "the id collides with the catalog: NET001 is the built-in check NET001"),
    "built-in namespace": ({"id": '"NET099"'}, "the id collides with the catalog: NET099 is in the catalog's "
                                               "namespace"),
    "not the user namespace": ({"id": '"TEAM001"'}, "a custom check id is 'X-', capital letters, then three digits"),
    "duplicate": ({"id": '"X-LOG001"'}, "duplicate check id (first declared at *conftest.py:7)"),
    "unknown resource kind": ({"resource": '"bucket"'}, "unknown resource kind 'bucket'"),
    "missing permissions": ({"permissions": "[]"}, "permissions are missing"),
    "bad permission": ({"permissions": '["logs-describe"]'}, "permissions *are not service:Action"),
}
BAD_CONFTEST = """import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_mlbatch_checks(registry):
    from pytest_mlbatch.findings import passed

    @registry.check(id="X-LOG001", slug="a", title="A", severity="low", resource="target",
                    permissions=["logs:DescribeLogGroups"], rationale="r", remediation="r")
    def first(ctx, res):
        return passed()

    @registry.check(DECLARATION)
    def second(ctx, res):
        return passed()
"""


def bad_conftest(**changes: str) -> str:
    return BAD_CONFTEST.replace("DECLARATION", ", ".join(f"{k}={v}" for k, v in {**SECOND, **changes}.items()))


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_declaration_is_a_usage_error_naming_file_and_line(pytester: pytest.Pytester, case: str) -> None:
    changes, message = BAD[case]
    pytester.makeconftest(bad_conftest(**changes))
    for args in (("--mlbatch", "-p", "no:cacheprovider"), ("--mlbatch-list-checks",)):
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: *conftest.py:12: custom check *: {message}*"])
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_configured_prefix(pytester: pytest.Pytester) -> None:
    conftest = bad_conftest(id='"ACME-LOG002"').replace("X-LOG001", "ACME-LOG001")
    pytester.makeconftest(conftest)
    pytester.makeini("[pytest]\nmlbatch_check_prefix = ACME-\n")
    result = pytester.runpytest("--mlbatch-list-checks", "--mlbatch-json", "catalog.json")
    assert result.ret == 0, result.stderr.str()
    rows = {c["id"]: c for c in json.loads((pytester.path / "catalog.json").read_text())["checks"]}
    assert rows["ACME-LOG001"]["area"] == "ACME-LOG" and rows["ACME-LOG001"]["custom"].endswith("conftest.py:7")
    assert "custom" not in rows["NET001"]


def test_a_plugin_package_declares_checks_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(team_checks="""
def declare(registry):
    from pytest_mlbatch.findings import passed

    @registry.check(id="X-PKG001", slug="from-a-package", title="Declared by a package", severity="medium",
                    resource="vpc", permissions=["ec2:DescribeVpcs"], rationale="r", remediation="r")
    def from_a_package(ctx, res):
        return passed()
""")
    dist = pytester.path / "team_checks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-checks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_mlbatch.checks]\nteam = team_checks:declare\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--mlbatch-list-checks")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["X-PKG001 medium    Declared by a package  [[]fix: —[]]  (custom: *team_checks.py:4)"])


def test_two_workers_give_the_same_results(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    world(aws, may_write_output=False)
    project(pytester)
    pytester.makepyfile(test_mine=MODEL_TESTS)
    args = ("test_mine.py", "-k", "TEAM or test_policy or test_model", "-p", "no:randomly")
    serial, serial_report = preflight.run(CONFIG, *args)
    parallel, parallel_report = preflight.run(CONFIG, *args, "-n", "2")

    def comparable(report: dict[str, Any]) -> list[tuple[str, str, str]]:
        return sorted((r["check_id"], r["resource"], r["outcome"]) for r in report["results"])

    assert comparable(parallel_report) == comparable(serial_report)
    assert {r[0] for r in comparable(serial_report)} == {"X-TEAM001", "X-TEAM002"}
    outcomes = parallel.parseoutcomes()
    assert (outcomes["passed"], outcomes["failed"]) == (serial.parseoutcomes()["passed"],
                                                        serial.parseoutcomes()["failed"])
    assert (outcomes["passed"], outcomes["failed"]) == (1, 3)  # test_model; TEAM001, TEAM002, test_policy
    parallel.stdout.fnmatch_lines(["*2 workers*"])
