"""The job as Batch will run it: its definition's image, roles, secrets, log configuration and size, as frozen,
typed facts (built by aws/world.py from a described or local job definition)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_mlbatch.config import JobSize
from pytest_mlbatch.findings import NotEvaluable


@dataclass(frozen=True)
class Secret:
    """One `secrets[]` entry: the variable it sets and where its value comes from (Secrets Manager or SSM)."""

    name: str
    value_from: str

    @property
    def store(self) -> str:
        """'secretsmanager' or 'ssm' (an ARN says which; a bare name is an SSM parameter)."""
        return "secretsmanager" if ":secretsmanager:" in self.value_from else "ssm"


@dataclass(frozen=True)
class LogConfiguration:
    driver: str
    options: tuple[tuple[str, str], ...]
    secret_options: tuple[Secret, ...] = ()  # logConfiguration.secretOptions, read by the execution role too

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


@dataclass(frozen=True)
class RetryRule:
    """One `retryStrategy.evaluateOnExit` rule: glob patterns (a trailing * at most) and RETRY or EXIT."""

    action: str  # RETRY or EXIT (upper case)
    on_status_reason: str | None
    on_reason: str | None
    on_exit_code: str | None


@dataclass(frozen=True)
class ContainerSpec:
    """How one container of a job definition states its size (containerProperties, or a node range's container)."""

    where: str  # its path in the definition, e.g. containerProperties
    deprecated: tuple[str, ...]  # the deprecated size keys it sets (vcpus, memory)
    requirements: tuple[str, ...] | None  # the types in its resourceRequirements; None when that is malformed


@dataclass(frozen=True)
class Job:
    """The job definition a job runs, resolved: named (and revision) or a local file."""

    name: str
    revision: int | None
    source: str  # "batch" (described) or the local file's path
    platforms: tuple[str, ...]  # EC2, FARGATE
    image: str | None
    execution_role: str | None  # ARN as the definition gives it
    job_role: str | None
    secrets: tuple[Secret, ...]
    repository_credentials: str | None
    log: LogConfiguration | None
    size: JobSize
    multi_node: bool
    retry_attempts: int | None
    retry_rules: tuple[RetryRule, ...] = ()
    arn: str | None = None  # the described definition's ARN (None for a local file)
    eks: bool = False  # the definition has eksProperties (Batch on Amazon EKS)
    ecs_properties: bool = False  # the definition has ecsProperties (ECS multi-container tasks: not modelled)
    cpu_architecture: str | None = None  # containerProperties.runtimePlatform.cpuArchitecture (Fargate)
    ephemeral_storage_gib: int | None = None  # containerProperties.ephemeralStorage.sizeInGiB (Fargate); -1: malformed
    status: str = "ACTIVE"  # ACTIVE or INACTIVE (a local file is ACTIVE)
    containers: tuple[ContainerSpec, ...] = ()
    pod_image: str | None = None  # Batch on EKS: the image of the pod's first container
    command: tuple[str, ...] = ()
    shared_memory_mib: int | None = None  # linuxParameters.sharedMemorySize
    shared_memory_malformed: str | None = None  # repr of a sharedMemorySize that is not a number
    num_nodes: int | None = 1  # nodeProperties.numNodes (1 for a single-node job); None when malformed
    # Why a part the model reads is malformed (None: well formed). World.job() refuses such a definition; the BAT
    # checks, which judge the definition itself, read the parts that are well formed and report the rest.
    fields_error: str | None = None  # secrets, log configuration, retry strategy or revision
    platforms_error: str | None = None  # platformCapabilities
    size_error: str | None = None  # resourceRequirements (or the deprecated vcpus/memory)
    # The definition as written (RegisterJobDefinition input, or a DescribeJobDefinitions entry), kept for one
    # purpose only: BAT003 validates it against AWS's RegisterJobDefinition schema, which judges the document
    # itself. Every other decision reads the typed fields above.
    document: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """name:revision (a revision-less local file: its name)."""
        return self.name + (f":{self.revision}" if self.revision is not None else "")

    def problem(self) -> str | None:
        """The first malformed part the model needs, in the order it is read (None: none)."""
        return self.fields_error or self.platforms_error or self.size_error

    def asks(self) -> JobSize:
        """What the definition asks; NotEvaluable when its resource requirements are malformed."""
        if self.size_error:
            raise NotEvaluable(self.size_error)
        return self.size

    def uses_resource_requirements(self) -> bool:
        """Whether containerProperties states its size in resourceRequirements (a malformed list counts: it is
        there), rather than in the deprecated vcpus/memory keys."""
        spec = next((c for c in self.containers if c.where == "containerProperties"), None)
        return spec is not None and (spec.requirements is None or bool(spec.requirements))

    def platform_capabilities(self) -> tuple[str, ...]:
        """EC2 and/or FARGATE; NotEvaluable when platformCapabilities is malformed."""
        if self.platforms_error:
            raise NotEvaluable(self.platforms_error)
        return self.platforms

    def secret_values(self) -> tuple[str, ...]:
        """Every secret the execution role reads for the job: secrets, log secretOptions, repositoryCredentials."""
        values = [s.value_from for s in self.secrets]
        values += [s.value_from for s in (self.log.secret_options if self.log else ())]
        if self.repository_credentials:
            values.append(self.repository_credentials)
        return tuple(v for v in values if v)
