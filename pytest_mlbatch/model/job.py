"""The job as Batch will run it: its definition's image, roles, secrets, log configuration and size, as frozen,
typed facts (built by aws/world.py from a described or local job definition)."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_mlbatch.config import JobSize


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
    cpu_architecture: str | None = None  # containerProperties.runtimePlatform.cpuArchitecture (Fargate)
    ephemeral_storage_gib: int | None = None  # containerProperties.ephemeralStorage.sizeInGiB (Fargate); -1: malformed

    def secret_values(self) -> tuple[str, ...]:
        """Every secret the execution role reads for the job: secrets, log secretOptions, repositoryCredentials."""
        values = [s.value_from for s in self.secrets]
        values += [s.value_from for s in (self.log.secret_options if self.log else ())]
        if self.repository_credentials:
            values.append(self.repository_credentials)
        return tuple(v for v in values if v)
