"""Batch on EKS: checks of what only ECS needs skip with the reason instead of judging EKS by ECS rules; the same
roles and job sizes on an ECS job definition are still judged (moto stores eksProperties; an EKS compute
environment is recognised from its description)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends import REGION, Aws
from bat_fixtures import run_check
from iam_fixtures import IMAGE, make_role

from pytest_mlbatch.aws import batchinfo

ECS_ONLY = ("IAM002", "IAM004", "IAM005", "BAT004", "BAT005", "BAT007")


def _config(job_definition: str) -> dict[str, Any]:
    return {"version": 1, "region": REGION,
            "iam": {"instance_role": "ml-node", "execution_role": "ml-exec", "job_role": {"name": "ml-job"}},
            "batch": {"job_definition": job_definition, "job": {"vcpus": 1, "memory": 1024, "gpus": 1}}}


def test_ecs_only_checks_skip_on_eks_with_the_reason(aws: Aws, tmp_path: Path) -> None:
    # roles that would fail the ECS checks: the node role has only EKS policies, nothing trusts ecs-tasks
    make_role(aws, "ml-node", "ec2.amazonaws.com")
    make_role(aws, "ml-exec", "ec2.amazonaws.com")
    make_role(aws, "ml-job", "ec2.amazonaws.com")
    batch = aws.client("batch")
    batch.register_job_definition(jobDefinitionName="ml-eks", type="container", eksProperties={"podProperties": {
        "containers": [{"image": IMAGE, "resources": {"requests": {"cpu": "1", "memory": "1024Mi"},
                                                      "limits": {"nvidia.com/gpu": "1"}}}]}})
    batch.register_job_definition(jobDefinitionName="ml-ecs", type="container", containerProperties={
        "image": IMAGE, "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}]})
    for check_id in ECS_ONLY:
        result = run_check(check_id, _config("ml-eks"), tmp_path)
        assert result.outcome == "skipped", (check_id, result.message)
        assert result.message.startswith("Batch on Amazon EKS (job definition ml-eks has eksProperties): "), \
            result.message
    for check_id in ("IAM002", "IAM004", "IAM005"):
        result = run_check(check_id, _config("ml-ecs"), tmp_path)
        assert result.outcome == "failed", (check_id, result.message)
    bat003 = run_check("BAT003", _config("ml-eks"), tmp_path)
    assert bat003.outcome == "passed", bat003.message
    assert f"runs {IMAGE}" in bat003.message


def test_eks_compute_environment_is_recognised() -> None:
    eks = {"computeEnvironmentName": "ml-eks", "containerOrchestrationType": "EKS",
           "eksConfiguration": {"eksClusterArn": "arn:aws:eks:us-east-1:123456789012:cluster/ml",
                                "kubernetesNamespace": "batch"}}
    assert batchinfo.is_eks(eks)
    assert batchinfo.is_eks({"eksConfiguration": {"eksClusterArn": "x"}})
    assert not batchinfo.is_eks({"computeEnvironmentName": "ml-ce", "containerOrchestrationType": "ECS"})
