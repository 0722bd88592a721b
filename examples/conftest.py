"""A team's own preflight checks, beside the catalog (docs/extending.md).

Copy this file into your repository's conftest.py. `pytest --mlbatch` then runs these checks with the catalog's:
they are listed by `--mlbatch-list-checks`, reported in the JSON and JUnit reports and the summary, and
`checks.skip`, `checks.exempt`, `checks.severity` and `--mlbatch-fail-on` apply to them. Without --mlbatch this file
imports nothing of pytest-mlbatch (the hook is only called when the preflight runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # types only: nothing of the preflight is imported without --mlbatch
    from pytest_mlbatch.engine.context import CheckContext, FixContext, FixPlan
    from pytest_mlbatch.findings import Finding, Resource

LOG_GROUP = "/aws/batch/ml-team"  # where the team's jobs log (their job definitions' awslogs-group)
OUTPUT_BUCKET = "ml-out"


@pytest.hookimpl(optionalhook=True)  # optional: a run with -p no:mlbatch does not know the hook
def pytest_mlbatch_checks(registry: Any) -> None:
    from pytest_mlbatch.engine.context import FixPlan
    from pytest_mlbatch.findings import NotApplicable, failed, passed

    @registry.check(
        id="X-TEAM001", slug="team-log-group", title="The team's log group exists", severity="high",
        resource="target", permissions=["logs:DescribeLogGroups"],
        rationale="Our job definitions log to a shared awslogs group; without it every job fails at start with "
                  "ResourceInitializationError.",
        remediation=f"create the log group {LOG_GROUP} (pytest --mlbatch --fix does)")
    def team_log_group(ctx: CheckContext, res: Resource) -> Finding:
        found = ctx.inventory.call("logs", "describe_log_groups", logGroupNamePrefix=LOG_GROUP)
        if any(g.get("logGroupName") == LOG_GROUP for g in found.get("logGroups", [])):
            return passed(f"log group {LOG_GROUP} exists")
        return failed(f"log group {LOG_GROUP} does not exist in {ctx.region}: the team's jobs cannot log")

    @team_log_group.fix(summary=f"create the log group {LOG_GROUP}, tagged", permissions=["logs:CreateLogGroup"])
    def create_log_group(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
        def apply(fx: FixContext) -> None:  # fx.client is guarded: only the calls the plan declares pass
            fx.client("logs").create_log_group(logGroupName=LOG_GROUP, tags=fx.tags)

        return FixPlan(res.id, f"create log group {LOG_GROUP}", calls=["logs:CreateLogGroup"],
                       permissions=["logs:CreateLogGroup"], apply=apply)

    @registry.check(
        id="X-TEAM002", slug="job-role-writes-output", title="The job role may write the team's output bucket",
        severity="critical", resource="target",
        permissions=["batch:DescribeJobDefinitions", "iam:GetRole", "iam:SimulatePrincipalPolicy"],
        rationale="A training job that cannot write its model to the output bucket runs for hours, then fails.",
        remediation=f"allow s3:PutObject on arn:aws:s3:::{OUTPUT_BUCKET}/* in the job role's policy")
    def job_role_writes_output(ctx: CheckContext, res: Resource) -> Finding:
        from pytest_mlbatch.analysis.policy import Request, finding
        from pytest_mlbatch.aws import principals, roles

        job = ctx.model.job()  # the resolved model: the job definition the queue would run
        if job is None or not job.job_role:
            raise NotApplicable("the job definition has no job role")
        role = roles.get_role(ctx.inventory, roles.parse_role(job.job_role).name)
        if role is None:
            return failed(f"job role {job.job_role} does not exist")
        decisions = principals.decide(ctx.inventory, principals.role_principal(role),
                                      [Request("s3:PutObject", f"arn:aws:s3:::{OUTPUT_BUCKET}/*")])
        return finding(decisions, f"job role {role['RoleName']}")  # unknown -> error, never a pass
