"""Discovery end to end: a config naming only a queue and a job definition finds everything else, once, and its
failures become failing or error items with the reason (never a collection crash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends import Aws
from bat_fixtures import (
    IMAGE,
    BatchEnv,
    base_config,
    make_env,
    patched_backend,
    replaced_backend,
    runtime_for,
    world_env,
)

from pytest_mlbatch.aws import discovery
from pytest_mlbatch.config import JobRole, JobSize
from pytest_mlbatch.engine.registry import REGISTRY

QJ = base_config(job_queue="ml-queue", job_definition="ml-train")
# Kinds that a queue and a job definition are enough to find (docker and a declared group never come from AWS).
DISCOVERABLE = {"target", "caller", "key_pair", "vpc", "subnet", "subnet_set", "security_group", "service_role",
                "instance_role", "instance_profile", "execution_role", "job_role", "image", "compute_environment",
                "job_queue", "job_definition", "job"}


def arrange(aws: Aws) -> BatchEnv:
    env = make_env(aws)
    aws.client("ec2").create_key_pair(KeyName="ml-batch-key")
    env.compute_environment()
    env.queue()
    env.job_definition(executionRoleArn=env.execution_role_arn,
                       secrets=[{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/tok"}],
                       repositoryCredentials={"credentialsParameter":
                                              "arn:aws:secretsmanager:us-east-1:123456789012:secret:reg"})
    return env


def discovery_world(aws: Aws) -> BatchEnv:
    env = arrange(aws)
    env.job_definition("jd-two")
    env.job_definition("jd-two", image="example.com/other:2")
    return env


_STATE: dict[str, Any] = {}


@pytest.fixture
def world(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> BatchEnv:
    """arrange()'s environment, built once for the tests that only read it."""
    return world_env(moto_endpoint, monkeypatch, _STATE, discovery_world)


def test_discovered_scope_and_calls(world: BatchEnv, tmp_path: Path) -> None:
    env = world
    runtime = runtime_for(QJ, tmp_path)
    target = runtime.targets[0]
    scope = target.scope()
    assert scope.problems == []
    assert scope.compute_environments == ["ml-ce"]
    assert scope.subnet_ids == env.subnets and scope.security_group_ids == [env.sg]
    assert scope.vpc_id == env.vpc
    assert scope.instance_profile == "ml-ce-profile" and scope.instance_role == "ecsInstanceRole"
    assert scope.service_role == env.service_role and scope.key_name == "ml-batch-key"
    assert scope.image_uri == IMAGE
    assert scope.job_role == JobRole(name="ml-job-role") and scope.execution_role == "ecsTaskExecutionRole"
    assert scope.job == JobSize(vcpus=2.0, memory=4096)
    assert scope.sources["instance_role"] == "discovered: instance profile ml-ce-profile Roles[0]"
    assert scope.sources["subnet_ids"] == "discovered: compute environment ml-ce computeResources.subnets"
    found = scope.discovered
    assert found["job_queue"]["jobQueueName"] == "ml-queue"
    assert [c["computeEnvironmentName"] for c in found["compute_environments"]] == ["ml-ce"]
    assert found["max_vcpus"] == {"ml-ce": 16} and found["instance_types"] == {"ml-ce": ["m5.large"]}
    assert found["secrets"][0]["name"] == "TOKEN"
    assert found["repository_credentials"]["credentialsParameter"].endswith(":secret:reg")
    assert found["platform_capabilities"] == ["EC2"]
    # a handful of calls, each once
    assert dict(target.inventory.calls) == {
        "batch:DescribeJobQueues": 1, "batch:DescribeComputeEnvironments": 1, "ec2:DescribeSubnets": 1,
        "iam:GetInstanceProfile": 1, "batch:DescribeJobDefinitions": 1}


def test_job_definition_by_revision_and_arn(world: BatchEnv, tmp_path: Path) -> None:
    """moto returns nothing for DescribeJobDefinitions(jobDefinitions=[name:revision]); discovery still finds it."""
    second = world.batch.describe_job_definitions(jobDefinitionName="jd-two")["jobDefinitions"]
    arn = next(d["jobDefinitionArn"] for d in second if d["revision"] == 2)
    for ref, image in (("jd-two:1", IMAGE), (arn, "example.com/other:2"), ("jd-two", "example.com/other:2")):
        scope = runtime_for(base_config(job_definition=ref), tmp_path).targets[0].scope()
        assert (scope.image_uri, scope.problems) == (image, [])


def test_config_wins_and_conflicts_are_recorded(world: BatchEnv, tmp_path: Path) -> None:
    env = world
    config = {**QJ, "image": {"uri": "example.com/mine:1"}, "network": {"subnet_ids": env.subnets[:1]},
              "iam": {"service_role": "AWSBatchServiceRole", "job_role": {"name": "ml-job-role"}}}
    scope = runtime_for(config, tmp_path).targets[0].scope()
    assert scope.image_uri == "example.com/mine:1" and scope.subnet_ids == env.subnets[:1]
    assert scope.conflicts == {"image_uri": ("example.com/mine:1", IMAGE),
                               "subnet_ids": (env.subnets[:1], env.subnets)}
    # a role by name and the compute environment's ARN for it are the same role: no conflict
    assert scope.service_role == "AWSBatchServiceRole"


def test_a_bug_in_discovery_becomes_an_error_item(world: BatchEnv, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:

    def broken(*_: Any) -> None:
        raise KeyError("computeResources")

    monkeypatch.setattr(discovery, "_compute_environments", broken)
    scope = runtime_for(QJ, tmp_path).targets[0].scope()
    assert scope.problems == [("compute_environment",
                               "discovery failed on compute environment: KeyError: 'computeResources'", "error")]
    assert scope.image_uri == IMAGE  # the other stages still ran

    monkeypatch.setattr(discovery, "discover", broken)  # even a crash of discover itself is caught by the target
    from bat_fixtures import run_check

    result = run_check("BAT002", QJ, tmp_path)
    assert (result.outcome, result.message) == ("error", "KeyError: 'computeResources'")


def test_unreachable_endpoint_stops_discovery_after_one_call(tmp_path: Path) -> None:
    """No aws fixture: AWS_ENDPOINT_URL points at a closed port. One call fails; the other stages are not tried."""
    target = runtime_for(QJ, tmp_path).targets[0]
    scope = target.scope()
    assert [p[0] for p in scope.problems] == ["job_queue", "compute_environment", "network", "instance_profile",
                                              "job_definition"]
    assert all(p[2] == "error" for p in scope.problems)
    assert scope.problems[0][1].startswith("discovery could not read job queue: batch:DescribeJobQueues failed "
                                           "(EndpointConnectionError)")
    assert scope.problems[-1][1].startswith("discovery stopped: batch:DescribeJobQueues failed")
    assert dict(target.inventory.calls) == {"batch:DescribeJobQueues": 1}



def test_queue_and_job_definition_alone_run_every_check(preflight: Any, aws: Aws) -> None:
    """Every check of every area has its item on what discovery found. (moto's Service Quotas has no EC2 quotas:
    its in-process backend answers one here, so BAT009 runs too; test_bat_quota.py tests BAT009 itself.)"""
    from moto.servicequotas.models import ServiceQuotasBackend

    env = arrange(aws)
    quota = {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "QuotaName": "Running On-Demand Standard "
             "(A, C, D, H, I, M, R, T, Z) instances", "Value": 256.0, "Unit": "None", "Adjustable": True,
             "GlobalQuota": False}
    with replaced_backend(ServiceQuotasBackend, "get_service_quota", lambda *_, **__: quota):
        result, report = preflight.run(QJ)
    rows = report["results"]
    ran = {r["check_id"] for r in rows}
    # every area's registered check has an item (JOB's only with --mlbatch-job / --mlbatch-canary)
    assert ran == {c.id for c in REGISTRY if c.area != "JOB"}
    kinds = {c.id: c.resource_kind for c in REGISTRY}
    undiscovered = [f"{r['check_id']}: {r['message']}" for r in rows
                    if kinds[r["check_id"]] in DISCOVERABLE and r["resource"] == "not-configured"]
    assert undiscovered == []
    outcomes = preflight.outcomes(report)
    assert outcomes["ENV001[us-east-1]"] == "passed"
    assert outcomes["KEY001[ml-batch-key]"] == "passed"  # the key pair named by the compute environment
    for key in ("BAT001[ml-ce]", "BAT002[ml-queue]", "BAT003[ml-train]", "BAT004[ml-train]", "BAT006[ml-ce]"):
        assert outcomes[key] == "passed", preflight.result(report, key[:6])
    assert outcomes["BAT008[ml-queue]"] == "failed"  # no jobStateTimeLimitActions
    assert outcomes["BAT009[ml-ce]"] == "passed"
    bat006 = preflight.result(report, "BAT006")["message"]
    assert f"subnets {', '.join(env.subnets)}" in bat006 and "instance profile ml-ce-profile" in bat006
    assert "discovered: VPC, compute environments, execution role, image" in bat006
    result.stdout.fnmatch_lines(["collected * items"])
    assert "ERROR collecting" not in result.stdout.str()


def test_missing_queue_and_job_definition_fail_with_the_reason(preflight: Any, aws: Aws) -> None:
    result, report = preflight.run(QJ)
    assert result.ret == 1
    outcomes = preflight.outcomes(report)
    assert outcomes["BAT001[undiscovered]"] == "skipped"  # each finding once: BAT002 reports the missing queue
    assert "see BAT002" in preflight.result(report, "BAT001")["message"]
    assert outcomes["BAT002[ml-queue]"] == "failed"
    assert preflight.result(report, "BAT003")["message"] == "job definition ml-train does not exist"
    assert preflight.result(report, "BAT006")["outcome"] == "skipped"


def test_api_fault_during_discovery_is_an_error_not_a_crash(preflight: Any, aws: Aws) -> None:
    from moto.batch.models import BatchBackend

    arrange(aws)

    def fault(_result: Any, _self: Any) -> Any:
        from moto.batch.exceptions import ClientException

        raise ClientException("injected fault")  # a 400: not retried, so the test stays fast

    with patched_backend(BatchBackend, "describe_job_queues", fault):
        result, report = preflight.run({**QJ, "checks": {"skip": ["BAT009"]}})
    outcomes = preflight.outcomes(report)
    assert outcomes["BAT001[undiscovered]"] == "error"
    assert outcomes["BAT002[ml-queue]"] == "error"
    message = preflight.result(report, "BAT001")["message"]
    assert message == ("discovery could not read job queue: batch:DescribeJobQueues failed (ClientException): "
                       "injected fault")
    assert outcomes["BAT003[ml-train]"] == "passed"  # the job definition was still discovered
    result.stdout.fnmatch_lines(["*ERROR*BAT001*undiscovered*"])
