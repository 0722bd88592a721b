"""The resolved model of one target that checks decide over: what each part answers, however it was gathered.

aws/world.py builds it from the AWS APIs; a part that cannot be read raises NotEvaluable with the reason (the check's
outcome is then `error`, never `passed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_mlbatch.model.compute import (
    Ami,
    ComputeEnvironment,
    InstanceType,
    KeyPair,
    LaunchTemplateRef,
    LaunchTemplateVersion,
)
from pytest_mlbatch.model.job import Job


class World(Protocol):
    """One target's facts. Each method answers from one gathering of the part it names, shared by every check."""

    @property
    def region(self) -> str | None: ...

    def job(self) -> Job | None:
        """The job definition the job runs (the named one, else the local file); None when there is neither or the
        named one does not exist (BAT003 says which)."""
        ...

    def compute_environments(self) -> Sequence[ComputeEnvironment]:
        """The scope's compute environments that exist, in the queue's order (missing ones are absent)."""
        ...

    def instance_types(self, names: Sequence[str]) -> Sequence[InstanceType]:
        """The instance types a compute environment's instanceTypes entries allow (families expanded)."""
        ...

    def key_pairs(self) -> Mapping[str, KeyPair]:
        """The configured key pairs that exist in the region, by key name."""
        ...

    def launch_template_version(self, ref: LaunchTemplateRef) -> LaunchTemplateVersion | None:
        """The version of a launch template a compute environment pins ($Default, $Latest or a number); None when the
        template or that version does not exist."""
        ...

    def images(self, ids: Sequence[str]) -> Mapping[str, Ami]:
        """The AMIs of these ids that DescribeImages shows this account (missing or not shared: absent)."""
        ...

    def registered_memory(self, ce: ComputeEnvironment) -> Mapping[str, int]:
        """MiB of memory that the compute environment's registered ECS container instances report (their
        registeredResources MEMORY), by instance type, the smallest where several of a type differ; empty when
        none is registered (a compute environment scaled to zero)."""
        ...

    def subnet_zones(self, subnets: Sequence[str]) -> Mapping[str, str]:
        """The Availability Zone of each of these subnets that exists."""
        ...

    def offered_types(self, zones: Sequence[str]) -> Mapping[str, frozenset[str]]:
        """The instance types EC2 offers in each of these Availability Zones."""
        ...
