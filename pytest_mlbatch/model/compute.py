"""Compute as Batch will use it: compute environments, the instance types they may launch, key pairs, as frozen,
typed facts (built by aws/world.py from the APIs; a template-based inventory would build the same)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type's facts a job depends on."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    architectures: tuple[str, ...]


@dataclass(frozen=True)
class LaunchTemplateRef:
    """The launch template a compute environment names, and the version it pins ("$Default" when it names none)."""

    id: str | None
    name: str | None
    version: str


@dataclass(frozen=True)
class ComputeEnvironment:
    """One compute environment: what it is, whether it takes jobs, and what its instances get."""

    name: str
    arn: str
    managed: bool
    state: str | None
    status: str | None
    status_reason: str | None
    orchestration: str  # ECS or EKS
    provisioning: str | None  # EC2, SPOT, FARGATE or FARGATE_SPOT (None when unmanaged)
    service_role: str | None
    instance_profile: str | None
    instance_types: tuple[str, ...]
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    key_pair: str | None
    launch_template: LaunchTemplateRef | None
    max_vcpus: int | None

    @property
    def fargate(self) -> bool:
        return bool(self.provisioning and self.provisioning.startswith("FARGATE"))

    @property
    def spot(self) -> bool:
        return self.provisioning in ("SPOT", "FARGATE_SPOT")

    @property
    def eks(self) -> bool:
        return self.orchestration == "EKS"


@dataclass(frozen=True)
class KeyPair:
    """An EC2 key pair of the region, by its key name."""

    name: str
    id: str | None
    type: str
    fingerprint: str
