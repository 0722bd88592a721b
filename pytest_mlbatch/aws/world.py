"""The model of one target built from the AWS APIs (model/world.py's World): API answers become typed facts here,
and nowhere else; reads go through the inventory (cached, so every check and the first wave share them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_mlbatch.analysis.policy import Decision, Request
from pytest_mlbatch.aws import batchinfo, principals, reads, roles, secrets
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.compute import ComputeEnvironment, InstanceType, KeyPair, LaunchTemplateRef
from pytest_mlbatch.model.job import Job, LogConfiguration, Secret
from pytest_mlbatch.model.principals import (
    Caller,
    InstanceProfile,
    KmsKey,
    LogGroup,
    ManagedPolicy,
    Principal,
    Role,
    SecretSource,
)
from pytest_mlbatch.model.scope import Scope


def compute_environment(doc: Mapping[str, Any]) -> ComputeEnvironment:
    """A DescribeComputeEnvironments entry as a model compute environment."""
    cr: Mapping[str, Any] = doc.get("computeResources") or {}
    lt = cr.get("launchTemplate") or {}
    template = None
    if lt.get("launchTemplateId") or lt.get("launchTemplateName"):
        template = LaunchTemplateRef(lt.get("launchTemplateId"), lt.get("launchTemplateName"),
                                     str(lt.get("version") or "$Default"))
    profile = cr.get("instanceRole")
    max_vcpus = cr.get("maxvCpus")
    return ComputeEnvironment(
        name=str(doc.get("computeEnvironmentName", "")),
        arn=str(doc.get("computeEnvironmentArn", "")),
        managed=doc.get("type", "MANAGED") == "MANAGED",
        state=doc.get("state"),
        status=doc.get("status"),
        status_reason=doc.get("statusReason"),
        orchestration=str(doc.get("containerOrchestrationType") or "ECS"),
        provisioning=cr.get("type"),
        service_role=doc.get("serviceRole"),
        instance_profile=batchinfo.arn_name(str(profile)) if profile else None,
        instance_types=tuple(str(t) for t in cr.get("instanceTypes") or []),
        subnets=tuple(str(s) for s in cr.get("subnets") or []),
        security_groups=tuple(str(g) for g in cr.get("securityGroupIds") or []),
        key_pair=cr.get("ec2KeyPair"),
        launch_template=template,
        max_vcpus=int(max_vcpus) if max_vcpus is not None else None,
    )


def instance_type(doc: Mapping[str, Any]) -> InstanceType:
    """A DescribeInstanceTypes entry as a model instance type."""
    return InstanceType(
        name=str(doc["InstanceType"]),
        vcpus=int(doc.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_mib=int(doc.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        gpus=sum(int(g.get("Count", 0)) for g in doc.get("GpuInfo", {}).get("Gpus", []) or []),
        architectures=tuple(batchinfo.architectures(dict(doc))),
    )


def job(doc: Mapping[str, Any], source: str = "batch") -> Job:
    """A job definition (DescribeJobDefinitions entry, or RegisterJobDefinition input from a file) as a model job.
    Raises NotEvaluable where a field the model needs is malformed (BAT003 reports the document itself)."""
    cont = batchinfo.container(dict(doc))
    log = cont.get("logConfiguration")
    retry = doc.get("retryStrategy") or {}
    try:
        secrets = tuple(Secret(str(s["name"]), str(s["valueFrom"])) for s in cont.get("secrets") or [])
        log_config = (LogConfiguration(str(log["logDriver"]),
                                       tuple(sorted((str(k), str(v)) for k, v in (log.get("options") or {}).items())),
                                       tuple(Secret(str(s["name"]), str(s["valueFrom"]))
                                             for s in log.get("secretOptions") or []))
                      if isinstance(log, Mapping) and log.get("logDriver") else None)
        attempts = int(retry["attempts"]) if retry.get("attempts") is not None else None
        revision = int(doc["revision"]) if doc.get("revision") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise NotEvaluable(f"job definition {doc.get('jobDefinitionName', '?')}: a field is malformed ({exc}) "
                           "(see BAT003)") from None
    credentials = cont.get("repositoryCredentials") or {}
    return Job(
        name=str(doc.get("jobDefinitionName", "")),
        revision=revision,
        source=source,
        platforms=tuple(batchinfo.platform_capabilities(dict(doc))),
        image=str(cont["image"]) if cont.get("image") else None,
        execution_role=cont.get("executionRoleArn"),
        job_role=cont.get("jobRoleArn"),
        secrets=secrets,
        repository_credentials=credentials.get("credentialsParameter") if isinstance(credentials, Mapping) else None,
        log=log_config,
        size=batchinfo.job_size(dict(doc)),
        multi_node=doc.get("type") == "multinode" or isinstance(doc.get("nodeProperties"), Mapping),
        retry_attempts=attempts,
        arn=str(doc["jobDefinitionArn"]) if doc.get("jobDefinitionArn") else None,
        eks=bool(doc.get("eksProperties")),
    )


class AwsWorld:
    """World for one target, read through its inventory with the scope discovery completed."""

    def __init__(self, inventory: Inventory, scope: Scope, region: str | None, rootdir: Path) -> None:
        self.inventory = inventory
        self.scope = scope
        self._region = region
        self.rootdir = rootdir

    @property
    def region(self) -> str | None:
        return self._region

    def path(self, value: str) -> Path:  # batchinfo.Where
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.rootdir / p

    def job(self) -> Job | None:
        jd, _ = batchinfo.current_job_definition(self)
        if jd is None:
            return None
        source = "batch" if self.scope.job_definition else str(self.path(self.scope.job_definition_file or ""))
        return job(jd, source)

    def compute_environments(self) -> Sequence[ComputeEnvironment]:
        return [compute_environment(ce) for _, ce in batchinfo.scope_compute_environments(self) if ce is not None]

    def instance_types(self, names: Sequence[str]) -> Sequence[InstanceType]:
        return [instance_type(t) for t in batchinfo.instance_types(self, list(names))]

    def key_pairs(self) -> Mapping[str, KeyPair]:
        names = [self.scope.key_name] if self.scope.key_name else []
        return {name: KeyPair(name, kp.get("KeyPairId"), str(kp.get("KeyType", "rsa")),
                              str(kp.get("KeyFingerprint", "")))
                for name, kp in reads.key_pairs(self.inventory, names).items()}

    # -- principals and what decides their rights (model/principals.py; reads in aws/principals.py, secrets.py) --
    @property
    def partition(self) -> str:
        try:
            return str(self.inventory.call("sts", "get_caller_identity")["Arn"]).split(":")[1] or "aws"
        except (AwsError, KeyError, IndexError):
            return "aws"

    def _account(self) -> str | None:
        try:
            return str(self.inventory.call("sts", "get_caller_identity")["Account"])
        except (AwsError, KeyError):
            return None

    def caller(self) -> Caller:
        return principals.caller(self.inventory, lambda name: roles.get_role(self.inventory, name))

    def role(self, name: str) -> Role | None:
        found = roles.get_role(self.inventory, name)
        return principals.role_fact(found) if found is not None else None

    def service_linked_role(self, service: str) -> Role | None:
        found = roles.service_linked_role(self.inventory, service)
        return principals.role_fact(found) if found is not None else None

    def instance_profile(self, name: str) -> InstanceProfile | None:
        found = roles.get_instance_profile(self.inventory, name)
        return principals.profile_fact(found) if found is not None else None

    def role_policy_names(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return principals.role_policy_names(self.inventory, name)

    def managed_policy(self, name: str) -> ManagedPolicy:
        return principals.managed_policy_fact(self.inventory, f"arn:{self.partition}:iam::aws:policy/{name}")

    def permissions(self, principal: Principal, requests: Sequence[Request]) -> Sequence[Decision]:
        return principals.decide(self.inventory, principal, requests)

    def job_queue_arn(self) -> str | None:
        queue = batchinfo.job_queue(self)
        return str(queue["jobQueueArn"]) if queue else None

    def repository_policy(self, account: str, region: str, repository: str) -> Mapping[str, object] | None:
        return principals.repository_policy(self.inventory, account, region, repository, self._account())

    def secret_sources(self, values: Sequence[str]) -> Sequence[SecretSource]:
        return secrets.secret_sources(self.inventory, values, self.partition, self.region, self._account())

    def kms_key(self, key: str, region: str | None = None) -> KmsKey | None:
        return secrets.kms_key(self.inventory, key, region or self.region)

    def log_group(self, name: str) -> LogGroup | None:
        return secrets.log_group(self.inventory, name)
