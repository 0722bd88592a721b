"""The resolved model of one target that checks decide over: what each part answers, however it was gathered.

aws/world.py builds it from the AWS APIs; a part that cannot be read raises NotEvaluable with the reason (the check's
outcome is then `error`, never `passed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_mlbatch.model.compute import ComputeEnvironment, InstanceType, KeyPair
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

    def key_pair_names(self) -> Sequence[str]:
        """Every key pair name in the region (to suggest a near name when a configured one does not exist)."""
        ...
