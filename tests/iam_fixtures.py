"""Helpers for the IAM and IMG006 tests: real roles, profiles, users and Batch resources in the moto server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends import ACCOUNT, REGION, Aws

from pytest_mlbatch import config
from pytest_mlbatch.engine import runner as engine
from pytest_mlbatch.engine.runtime import Runtime
from pytest_mlbatch.model.resources import resources_for

MANAGED = {
    "batch": "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole",
    "ec2": "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
    "exec": "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
}
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlmodel:1.0"


def trust(service: str, **extra: Any) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", **extra}]})


def policy_doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def make_role(aws: Aws, name: str, service: str, *, path: str = "/", managed: tuple[str, ...] = (),
              inline: dict[str, str] | None = None, trust_doc: str | None = None) -> str:
    iam = aws.client("iam")
    arn: str = iam.create_role(RoleName=name, Path=path,
                               AssumeRolePolicyDocument=trust_doc or trust(service))["Role"]["Arn"]
    for key in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=MANAGED[key])
    for pname, doc in (inline or {}).items():
        iam.put_role_policy(RoleName=name, PolicyName=pname, PolicyDocument=doc)
    return arn


def managed_document(aws: Aws, key: str) -> dict[str, Any]:
    iam = aws.client("iam")
    version = iam.get_policy(PolicyArn=MANAGED[key])["Policy"]["DefaultVersionId"]
    document: dict[str, Any] = iam.get_policy_version(PolicyArn=MANAGED[key],
                                                      VersionId=version)["PolicyVersion"]["Document"]
    return document


def base_config(**iam: Any) -> dict[str, Any]:
    return {"version": 1, "region": REGION, "iam": iam}


def batch_setup(aws: Aws, *, job_role_arn: str | None = None, execution_role_arn: str | None = None,
                secrets: list[dict[str, str]] | None = None, fargate: bool = False) -> dict[str, str]:
    """A service role, an unmanaged compute environment, a queue and a job definition; returns their ARNs."""
    batch = aws.client("batch")
    service = make_role(aws, "AWSBatchServiceRole", "batch.amazonaws.com", path="/service-role/", managed=("batch",))
    ce = batch.create_compute_environment(computeEnvironmentName="ml-ce", type="UNMANAGED", state="ENABLED",
                                          serviceRole=service)["computeEnvironmentArn"]
    queue = batch.create_job_queue(jobQueueName="ml-queue", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
    props: dict[str, Any] = {"image": IMAGE, "command": ["python", "train.py"], "resourceRequirements": [
        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
    if job_role_arn:
        props["jobRoleArn"] = job_role_arn
    if execution_role_arn:
        props["executionRoleArn"] = execution_role_arn
    if secrets:
        props["secrets"] = secrets
    extra: dict[str, Any] = {"platformCapabilities": ["FARGATE"]} if fargate else {}
    jd = batch.register_job_definition(jobDefinitionName="ml-train", type="container", containerProperties=props,
                                       **extra)["jobDefinitionArn"]
    return {"service_role": service, "ce": ce, "queue": queue, "job_definition": jd}


def run_check(root: Path, raw: dict[str, Any], check_id: str, *, fix: bool = False) -> dict[str, Any]:
    """One check on its one resource through the real engine (Runtime, Target, inventory, moto), without the
    cost of a nested pytest run: the item layer is covered by the preflight tests."""
    runtime = Runtime(config.build("test", raw), root, fix=fix)
    target = runtime.targets[0]
    check = runtime.registry.get(check_id)
    found = resources_for(check.resource_kind, target.scope(), target.label)
    assert not isinstance(found, str), found
    assert len(found) == 1, found
    return engine.run(runtime, check, target, found[0]).as_json()
