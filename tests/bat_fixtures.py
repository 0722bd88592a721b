"""Arrange AWS Batch scenarios on the moto server: network, roles, compute environments, queues, job definitions."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from backends import ACCOUNT, REGION, Aws

TRUST = {
    service: json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    for service in ("batch", "ec2", "ecs-tasks")
}
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlmodel:1.0"


@dataclass
class BatchEnv:
    aws: Aws
    vpc: str
    subnets: list[str]
    sg: str
    service_role: str
    profile: str
    profile_arn: str
    instance_role: str
    job_role_arn: str
    execution_role_arn: str
    ce_arns: dict[str, str] = field(default_factory=dict)

    @property
    def batch(self) -> Any:
        return self.aws.client("batch")

    def compute_environment(self, name: str = "ml-ce", *, instance_types: list[str] | None = None,
                            max_vcpus: int = 16, kind: str = "EC2", key_pair: str | None = "ml-batch-key",
                            subnets: list[str] | None = None, groups: list[str] | None = None,
                            state: str = "ENABLED", **extra: Any) -> str:
        cr: dict[str, Any] = {"type": kind, "maxvCpus": max_vcpus, "subnets": subnets or self.subnets,
                              "securityGroupIds": groups or [self.sg]}
        if not kind.startswith("FARGATE"):
            cr.update({"minvCpus": 0, "instanceTypes": instance_types or ["m5.large"],
                       "instanceRole": self.profile_arn})
            if key_pair:
                cr["ec2KeyPair"] = key_pair
        cr.update(extra)
        arn = self.batch.create_compute_environment(computeEnvironmentName=name, type="MANAGED", state=state,
                                                    serviceRole=self.service_role, computeResources=cr)
        self.ce_arns[name] = arn["computeEnvironmentArn"]
        return str(arn["computeEnvironmentArn"])

    def queue(self, name: str = "ml-queue", ces: list[str] | None = None, state: str = "ENABLED") -> str:
        order = [{"order": i + 1, "computeEnvironment": self.ce_arns[c]} for i, c in enumerate(ces or ["ml-ce"])]
        return str(self.batch.create_job_queue(jobQueueName=name, state=state, priority=1,
                                               computeEnvironmentOrder=order)["jobQueueArn"])

    def job_definition(self, name: str = "ml-train", *, vcpus: str = "2", memory: str = "4096",
                       gpus: str | None = None, image: str = IMAGE, **container: Any) -> dict[str, Any]:
        req = [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]
        if gpus:
            req.append({"type": "GPU", "value": gpus})
        props: dict[str, Any] = {"image": image, "command": ["python", "train.py"], "jobRoleArn": self.job_role_arn,
                                 "resourceRequirements": req}
        platform = container.pop("platformCapabilities", None)
        retry = container.pop("retryStrategy", None)
        props.update(container)
        kwargs: dict[str, Any] = {}
        if platform:
            kwargs["platformCapabilities"] = platform
        if retry:
            kwargs["retryStrategy"] = retry
        out: dict[str, Any] = self.batch.register_job_definition(jobDefinitionName=name, type="container",
                                                                 containerProperties=props, **kwargs)
        return out


def make_env(aws: Aws) -> BatchEnv:
    """A VPC with two subnets and a group, the Batch roles, and an instance profile (no Batch resources yet)."""
    ec2, iam = aws.client("ec2"), aws.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    sg = ec2.create_security_group(GroupName="ml-batch-sg", Description="ml", VpcId=vpc)["GroupId"]
    service_role = iam.create_role(RoleName="AWSBatchServiceRole", Path="/service-role/",
                                   AssumeRolePolicyDocument=TRUST["batch"])["Role"]["Arn"]
    iam.create_role(RoleName="ecsInstanceRole", AssumeRolePolicyDocument=TRUST["ec2"])
    profile_arn = iam.create_instance_profile(InstanceProfileName="ml-ce-profile")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="ml-ce-profile", RoleName="ecsInstanceRole")
    job_role = iam.create_role(RoleName="ml-job-role", AssumeRolePolicyDocument=TRUST["ecs-tasks"])["Role"]["Arn"]
    exec_role = iam.create_role(RoleName="ecsTaskExecutionRole",
                                AssumeRolePolicyDocument=TRUST["ecs-tasks"])["Role"]["Arn"]
    return BatchEnv(aws, vpc, subnets, sg, service_role, "ml-ce-profile", profile_arn, "ecsInstanceRole", job_role,
                    exec_role)


def base_config(**batch: Any) -> dict[str, Any]:
    return {"version": 1, "region": REGION, "batch": batch}


@contextlib.contextmanager
def patched_backend(cls: type, method: str, wrap: Callable[[Any, Any], Any]) -> Iterator[None]:
    """Patch a method of moto's in-process backend (the server runs in this process): wrap(result, self)."""
    original = getattr(cls, method)

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrap(original(self, *args, **kwargs), self)

    setattr(cls, method, patched)
    try:
        yield
    finally:
        setattr(cls, method, original)


@contextlib.contextmanager
def replaced_backend(cls: type, method: str, fn: Callable[..., Any]) -> Iterator[None]:
    """Replace a method of moto's in-process backend for the duration (what moto does not implement)."""
    original = getattr(cls, method)
    setattr(cls, method, fn)
    try:
        yield
    finally:
        setattr(cls, method, original)


def invalid_compute_environments(names: dict[str, str]) -> contextlib.AbstractContextManager[None]:
    """moto always reports VALID: make the named compute environments INVALID with the given statusReason."""
    from moto.batch.models import BatchBackend

    def wrap(result: list[dict[str, Any]], _self: Any) -> list[dict[str, Any]]:
        out = []
        for ce in result:
            if ce["computeEnvironmentName"] in names:
                ce = {**ce, "status": "INVALID", "statusReason": names[ce["computeEnvironmentName"]]}
            out.append(ce)
        return out

    return patched_backend(BatchBackend, "describe_compute_environments", wrap)


def queue_time_limit_actions(actions: list[dict[str, Any]]) -> contextlib.AbstractContextManager[None]:
    """moto drops jobStateTimeLimitActions: add them to every described queue."""
    from moto.batch.models import JobQueue

    def wrap(result: dict[str, Any], _self: Any) -> dict[str, Any]:
        return {**result, "jobStateTimeLimitActions": actions}

    return patched_backend(JobQueue, "describe", wrap)


def run_check(check_id: str, config: dict[str, Any], rootdir: Any, resource: str | None = None,
              runtime: Any = None) -> Any:
    """Run one check on one resource in this process (real moto), the way an item does; returns the ItemResult."""
    from pytest_mlbatch import config as cfg
    from pytest_mlbatch.engine.registry import REGISTRY
    from pytest_mlbatch.engine.runner import run
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.model.resources import resources_for

    if runtime is None:
        runtime = Runtime(cfg.build("(test)", config), rootdir)
    check = REGISTRY.get(check_id)
    target = runtime.targets[0]
    found = resources_for(check.resource_kind, target.scope(), target.label)
    assert not isinstance(found, str), f"{check_id}: no resource: {found}"
    chosen = [r for r in found if resource is None or r.id == resource]
    assert len(chosen) == 1, f"{check_id}: expected one resource {resource}, got {[r.id for r in found]}"
    return run(runtime, check, target, chosen[0])


def runtime_for(config: dict[str, Any], rootdir: Any) -> Any:
    from pytest_mlbatch import config as cfg
    from pytest_mlbatch.engine.runtime import Runtime

    return Runtime(cfg.build("(test)", config), rootdir)


# -- one world of scenarios, built once per module (moto resets are cheap, but IAM's first call after one loads
# -- every managed policy, ~2 s): each scenario has its own queue and job definition names ------------------------
WORLD_MARKER = "world-marker"


def build_world(aws: Aws) -> BatchEnv:
    env = make_env(aws)
    ce = env.compute_environment
    ce("ml-ce")
    ce("ce-disabled", state="DISABLED")
    ce("ce-other")
    ce("ce-fargate", kind="FARGATE")
    ce("ce-arm", instance_types=["m6g"])
    ce("ce-m5fam", instance_types=["m5", "c5.large"])
    ce("ce-optimal", instance_types=["optimal"], max_vcpus=256)
    ce("ce-gpu", instance_types=["g4dn.xlarge"])
    ce("ce-gpu-cpuami", instance_types=["g4dn"], ec2Configuration=[{"imageType": "ECS_AL2"}])
    ce("ce-gpu-p4", instance_types=["g4dn.xlarge", "p4d.24xlarge"])
    ce("ce-undescribed", instance_types=["p4d.24xlarge", "m5.large"])
    ce("ce-invalid")
    ce("ce-fargate-spot", kind="FARGATE_SPOT")
    ce("ce-p4d", instance_types=["p4d.24xlarge"])
    q = env.queue
    q("ml-queue", ["ml-ce"])
    q("q-disabled", ["ce-invalid"], state="DISABLED")
    q("q-ce-disabled", ["ce-disabled"])
    q("q-mixed", ["ml-ce", "ce-fargate"])
    q("q-arch", ["ml-ce", "ce-arm"])
    q("q-fargate", ["ce-fargate"])
    q("q-m5fam", ["ce-m5fam"])
    q("q-optimal", ["ce-optimal"])
    q("q-gpu", ["ce-gpu"])
    q("q-gpu-cpuami", ["ce-gpu-cpuami"])
    q("q-gpu-p4", ["ce-gpu-p4"])
    q("q-undescribed", ["ce-undescribed"])
    q("q-fargate-spot", ["ce-fargate-spot"])
    q("q-arch-unknown", ["ml-ce", "ce-p4d"])
    jd = env.job_definition
    jd("ml-train")
    jd("jd-16g", memory="16384")
    jd("jd-8g", memory="8192")
    jd("jd-32cpu-gpu", vcpus="32", gpus="1")
    jd("jd-gpu", gpus="1")
    jd("jd-big", vcpus="64", memory="250000")
    fargate = {"platformCapabilities": ["FARGATE"], "executionRoleArn": env.execution_role_arn}
    jd("jd-fargate", vcpus="1", memory="2048", **fargate)
    jd("jd-fargate-bad", vcpus="1", memory="16384", **fargate)
    jd("jd-fargate-arm", vcpus="1", memory="2048", runtimePlatform={"cpuArchitecture": "ARM64",
       "operatingSystemFamily": "LINUX"}, **fargate)
    jd("jd-torch-fargate", image="pytorch/pytorch:2.3.0", vcpus="1", memory="2048", **fargate)
    jd("jd-torch-shm64", image="pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
       linuxParameters={"sharedMemorySize": 64})
    jd("jd-gpu-shm", gpus="1", linuxParameters={"sharedMemorySize": 8192})
    for memory in ("1024", "2048", "3072"):
        jd("jd-revs", memory=memory)
    env.batch.deregister_job_definition(jobDefinition="jd-revs:3")
    jd("jd-inactive")
    env.batch.deregister_job_definition(jobDefinition="jd-inactive:1")
    env.batch.register_job_definition(jobDefinitionName="jd-deprecated", type="container", containerProperties={
        "image": IMAGE, "vcpus": 2, "memory": 2048, "logConfiguration": {"logDriver": "stdout"}})
    return env


def world_env(moto_endpoint: str, monkeypatch: Any, state: dict[str, Any],
              builder: Callable[[Aws], BatchEnv] = build_world) -> BatchEnv:
    """A module's world, rebuilt if another test (another module under xdist) reset the server meanwhile: the
    world's marker queue (named after the builder) tells whether the server still holds it."""
    aws = Aws(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    marker = f"{WORLD_MARKER}-{builder.__name__.replace('_', '-')}"
    env: BatchEnv | None = state.get("env")
    if env is not None and env.batch.describe_job_queues(jobQueues=[marker])["jobQueues"]:
        return env
    aws.reset()
    env = builder(aws)
    first = next(iter(env.ce_arns))
    env.queue(marker, [first])
    state["env"] = env
    return env


def hidden_instance_types(names: set[str]) -> contextlib.AbstractContextManager[None]:
    """DescribeInstanceTypes leaves these out, as moto does for p2/p3 (which its Batch also refuses to create)."""
    from moto.ec2.models.instance_types import InstanceTypeBackend

    def wrap(result: list[Any], _self: Any) -> list[Any]:
        return [t for t in result if t.get("InstanceType") not in names]

    return patched_backend(InstanceTypeBackend, "describe_instance_types", wrap)


@contextlib.contextmanager
def denied_listing(method: str) -> Iterator[None]:
    """moto's Batch describe `method` refuses to list the whole region (a ClientException) and answers the calls
    that name what they describe (moto passes the names first: environments, queues, or a definition's name and
    list; then the status)."""
    from moto.batch.exceptions import ClientException
    from moto.batch.models import BatchBackend

    original = getattr(BatchBackend, method)

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        names = [*args[:2], *(v for k, v in kwargs.items() if k != "status")]
        if not any(names):
            raise ClientException("denied listing (test)")
        return original(self, *args, **kwargs)

    with replaced_backend(BatchBackend, method, refuse):
        yield
