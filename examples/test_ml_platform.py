"""A team's own tests over what the preflight resolved (docs/extending.md). Run: pytest --mlbatch examples/

Each test runs once per target of the preflight (its label in the node id, so `-k eu-west-1` selects one); without
--mlbatch they are skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

OUTPUT_BUCKET = "ml-out"
SCRATCH_LOG_GROUP = "/aws/batch/ml-scratch"


def test_job_role_may_write_the_output_bucket(mlbatch_model: Any, mlbatch_policy: Any) -> None:
    job = mlbatch_model.job()
    assert job is not None and job.job_role, "the job definition has no job role"
    assert mlbatch_policy.allows(job.job_role, "s3:PutObject", f"arn:aws:s3:::{OUTPUT_BUCKET}/*"), \
        mlbatch_policy.decide(job.job_role, "s3:PutObject", f"arn:aws:s3:::{OUTPUT_BUCKET}/*").describe()


def test_queue_subnets_span_two_zones(mlbatch_model: Any, mlbatch_aws: Any) -> None:
    subnets = sorted({s for ce in mlbatch_model.compute_environments() for s in ce.subnets})
    assert subnets, "no compute environment with subnets"
    found = mlbatch_aws.call("ec2", "describe_subnets", SubnetIds=subnets)["Subnets"]
    zones = {s["AvailabilityZone"] for s in found}
    assert len(zones) >= 2, f"subnets {subnets} are all in {zones}: one zone's outage stops every job"


def test_image_is_recent(mlbatch_model: Any, mlbatch_aws: Any) -> None:
    job = mlbatch_model.job()
    if job is None or not job.image or ".dkr.ecr." not in job.image:
        pytest.skip("the job's image is not in ECR")
    repository, _, tag = job.image.split("/", 1)[1].partition(":")
    images = mlbatch_aws.call("ecr", "describe_images", repositoryName=repository,
                              imageIds=[{"imageTag": tag or "latest"}])["imageDetails"]
    pushed = images[0]["imagePushedAt"]
    assert dt.datetime.now(dt.UTC) - pushed < dt.timedelta(days=30), f"{job.image} was pushed on {pushed:%Y-%m-%d}"


def test_scratch_log_group(mlbatch_fix: Any) -> None:
    """Repaired by the test itself under --fix (create-only, tagged, journaled); planned under --fix-dry-run."""
    from pytest_mlbatch.engine.context import FixPlan
    from pytest_mlbatch.findings import failed, passed

    def exists(ctx: Any, res: Any) -> Any:
        groups = ctx.inventory.call("logs", "describe_log_groups", logGroupNamePrefix=res.id)["logGroups"]
        if any(g["logGroupName"] == res.id for g in groups):
            return passed(f"log group {res.id} exists")
        return failed(f"log group {res.id} does not exist")

    def plan(ctx: Any, res: Any, finding: Any) -> Any:
        def apply(fx: Any) -> None:
            fx.client("logs").create_log_group(logGroupName=res.id, tags=fx.tags)

        return FixPlan(res.id, f"create log group {res.id}", calls=["logs:CreateLogGroup"],
                       permissions=["logs:CreateLogGroup"], apply=apply)

    mlbatch_fix.ensure("X-TEAM101", SCRATCH_LOG_GROUP, exists, plan, title="The scratch log group exists")
