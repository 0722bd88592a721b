"""The resolved model of one target that checks decide over: what each part answers, however it was gathered.

aws/world.py builds it from the AWS APIs; a part that cannot be read raises NotEvaluable with the reason (the check's
outcome is then `error`, never `passed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_mlbatch.analysis.policy import Decision, Request
from pytest_mlbatch.model.compute import ComputeEnvironment, InstanceType, KeyPair
from pytest_mlbatch.model.job import Job
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

    # -- principals and what decides their rights (model/principals.py) ------------------------------------------
    @property
    def partition(self) -> str:
        """The caller's partition (aws, aws-cn, aws-us-gov); 'aws' when the identity cannot be read."""
        ...

    def caller(self) -> Caller:
        """Who runs the preflight; NotEvaluable when it is neither the root user, an IAM user nor an assumed role."""
        ...

    def role(self, name: str) -> Role | None:
        """The role of this name; None when it does not exist."""
        ...

    def service_linked_role(self, service: str) -> Role | None:
        """The service's service-linked role (found by its path /aws-service-role/SERVICE/), whatever its name."""
        ...

    def instance_profile(self, name: str) -> InstanceProfile | None:
        ...

    def role_policy_names(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(ARNs of the managed policies attached to the role, names of its inline policies)."""
        ...

    def managed_policy(self, name: str) -> ManagedPolicy:
        """An AWS managed policy by its name under arn:PARTITION:iam::aws:policy/ (e.g. service-role/X)."""
        ...

    def permissions(self, principal: Principal, requests: Sequence[Request]) -> Sequence[Decision]:
        """May the principal do each request, by its identity policies and permissions boundary (resource policies
        are the caller's to add: they are facts of their own below)."""
        ...

    def job_queue_arn(self) -> str | None:
        """The scope's job queue's ARN; None when it does not exist."""
        ...

    def repository_policy(self, account: str, region: str, repository: str) -> Mapping[str, object] | None:
        """An ECR repository's policy; None when it has none (or, in this account, when the repository is missing).
        NotEvaluable when another account's repository cannot be seen."""
        ...

    def secret_sources(self, values: Sequence[str]) -> Sequence[SecretSource]:
        """What each secrets[].valueFrom (or repositoryCredentials) names, resolved, in the given order."""
        ...

    def kms_key(self, key: str, region: str | None = None) -> KmsKey | None:
        """A KMS key by id, ARN or alias (in `region`, default the target's); None when it does not exist."""
        ...

    def log_group(self, name: str) -> LogGroup | None:
        """The CloudWatch Logs group of this name; None when it does not exist."""
        ...
