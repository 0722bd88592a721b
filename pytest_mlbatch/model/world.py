"""The resolved model of one target that checks decide over: what each part answers, however it was gathered.

aws/world.py builds it from the AWS APIs; a part that cannot be read raises NotEvaluable with the reason (the check's
outcome is then `error`, never `passed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_mlbatch.model.compute import ComputeEnvironment, InstanceType, KeyPair
from pytest_mlbatch.model.job import Job
from pytest_mlbatch.model.network import LaunchSettings, Network, Subnet


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

    def key_pair_names(self) -> Sequence[str]:
        """Every key pair name in the region (to suggest a near name when a configured one does not exist)."""
        ...

    def network(self, *, vpcs: bool = False, groups: bool = False, paths: bool = False, acls: bool = False,
                dns: bool = False, dhcp: bool = False) -> Network:
        """The target's network with the parts asked for: subnets always; VPCs; security groups; what decides
        egress paths (route tables, gateways, NAT gateways, endpoints with their zones and policies; implies VPCs
        and groups); network ACLs; the VPCs' DNS attributes; their DHCP option sets. Parts not asked for are
        empty, so a check needs only the permissions of what it decides over."""
        ...

    def launch_settings(self, ce: ComputeEnvironment) -> LaunchSettings:
        """What the compute environment's launch template and placement say about its instances' network."""
        ...

    def job_assign_public_ip(self) -> str | None:
        """The named job definition's Fargate assignPublicIp (DISABLED when unset); None without one."""
        ...

    def vpc_subnets(self, vpc_id: str) -> Sequence[Subnet]:
        """Every subnet of a VPC (NET003's fix looks for a public subnet to put a NAT gateway in)."""
        ...
