"""What to check in one target: the config's values, completed by discovery, with where each came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_mlbatch.config import JobRole, JobSize, SecurityGroupDecl, Settings


@dataclass
class Scope:
    """Effective values for one (account, region). Config values win; discovery fills the gaps."""

    image_uri: str | None = None
    image_local: str | None = None
    key_name: str | None = None
    key_file: str | None = None
    vpc_id: str | None = None
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    security_group: SecurityGroupDecl | None = None
    service_role: str | None = None
    instance_role: str | None = None
    instance_profile: str | None = None
    execution_role: str | None = None
    job_role: JobRole | None = None
    compute_environments: list[str] = field(default_factory=list)
    job_queue: str | None = None
    job_definition: str | None = None
    job_definition_file: str | None = None
    job: JobSize | None = None
    # where each value came from: "config" or "discovered: <how>"
    sources: dict[str, str] = field(default_factory=dict)
    # what discovery saw, raw from the API (compute environments, queue, job definition, ...)
    discovered: dict[str, Any] = field(default_factory=dict)
    # values that discovery found different from the config (BAT006 reports them)
    conflicts: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # discovery failures: (what, reason, outcome "failed" | "error")
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, s: Settings) -> Scope:
        scope = cls(
            image_uri=s.image_uri,
            image_local=s.image_local,
            key_name=s.key_name,
            key_file=s.key_file,
            vpc_id=s.vpc_id,
            subnet_ids=list(s.subnet_ids),
            security_group_ids=list(s.security_group_ids),
            security_group=s.security_group,
            service_role=s.service_role,
            instance_role=s.instance_role,
            instance_profile=s.instance_profile,
            execution_role=s.execution_role,
            job_role=s.job_role,
            compute_environments=[s.compute_environment] if s.compute_environment else [],
            job_queue=s.job_queue,
            job_definition=s.job_definition,
            job_definition_file=s.job_definition_file,
            job=s.job,
        )
        for name in ("image_uri", "image_local", "key_name", "key_file", "vpc_id", "subnet_ids",
                     "security_group_ids", "security_group", "service_role", "instance_role", "instance_profile",
                     "execution_role", "job_role", "compute_environments", "job_queue", "job_definition",
                     "job_definition_file", "job"):
            if getattr(scope, name):
                scope.sources[name] = "config"
        return scope

    def offer(self, name: str, value: Any, how: str) -> None:
        """Discovery found `value` for `name`: use it unless the config set one; record a disagreement."""
        if value in (None, "", [], ()):
            return
        current = getattr(self, name)
        if current in (None, "", [], ()):
            setattr(self, name, value)
            self.sources[name] = f"discovered: {how}"
        elif self.sources.get(name) == "config" and _normal(current) != _normal(value):
            self.conflicts[name] = (current, value)


def _normal(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return sorted(map(str, value))
    return value
