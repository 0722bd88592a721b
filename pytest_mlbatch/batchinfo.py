"""Shared AWS Batch and EC2 lookups via the inventory: compute environments, queue, job definition, types."""

from __future__ import annotations

from typing import Any

from .context import CheckContext

# What `optimal` means for a compute environment's instanceTypes (AWS Batch user guide: C4, M4 and R4 families,
# or where those are not offered, C5, M5 and R5).
OPTIMAL_FAMILIES = ("c4", "m4", "r4", "c5", "m5", "r5")


def compute_environments(ctx: CheckContext) -> dict[str, dict[str, Any]]:
    """The scope's compute environments, by name and by ARN, in one DescribeComputeEnvironments call."""
    names = sorted(set(ctx.scope.compute_environments))
    if not names:
        return {}
    found = ctx.inventory.paginate("batch", "describe_compute_environments", "computeEnvironments",
                                   computeEnvironments=names)
    out: dict[str, dict[str, Any]] = {}
    for ce in found:
        out[ce["computeEnvironmentName"]] = ce
        out[ce["computeEnvironmentArn"]] = ce
    return out


def compute_environment(ctx: CheckContext, name: str) -> dict[str, Any] | None:
    return compute_environments(ctx).get(name)


def job_queue(ctx: CheckContext) -> dict[str, Any] | None:
    name = ctx.scope.job_queue
    if not name:
        return None
    found = ctx.inventory.paginate("batch", "describe_job_queues", "jobQueues", jobQueues=[name])
    return next((q for q in found if name in (q["jobQueueName"], q["jobQueueArn"])), None)


def job_definition(ctx: CheckContext, ref: str | None = None) -> dict[str, Any] | None:
    """A job definition by name (latest ACTIVE revision), name:revision, or ARN."""
    ref = ref or ctx.scope.job_definition
    if not ref:
        return None
    if ref.startswith("arn:"):
        found = ctx.inventory.paginate("batch", "describe_job_definitions", "jobDefinitions", jobDefinitions=[ref])
        return found[0] if found else None
    name, _, revision = ref.partition(":")
    found = ctx.inventory.paginate("batch", "describe_job_definitions", "jobDefinitions", jobDefinitionName=name)
    if revision:
        return next((d for d in found if str(d.get("revision")) == revision), None)
    active = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
    return max(active, key=lambda d: int(d.get("revision", 0)), default=None)


def is_fargate(ce: dict[str, Any]) -> bool:
    return str(ce.get("computeResources", {}).get("type", "")).startswith("FARGATE")


def instance_type_patterns(names: list[str]) -> list[str]:
    """CE instanceTypes -> DescribeInstanceTypes filter values: sizes as they are, families as 'm5.*'."""
    patterns: set[str] = set()
    for n in names:
        if n == "optimal" or n.startswith("default_"):
            patterns.update(f"{f}.*" for f in OPTIMAL_FAMILIES)
        elif "." in n:
            patterns.add(n)
        else:
            patterns.add(f"{n}.*")
    return sorted(patterns)


def instance_types(ctx: CheckContext, names: list[str]) -> list[dict[str, Any]]:
    """DescribeInstanceTypes for the allowed types of a compute environment (families expanded), one call per set."""
    patterns = instance_type_patterns(names)
    if not patterns:
        return []
    found: list[dict[str, Any]] = ctx.inventory.paginate(
        "ec2", "describe_instance_types", "InstanceTypes", Filters=[{"Name": "instance-type", "Values": patterns}])
    return found
