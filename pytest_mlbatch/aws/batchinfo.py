"""Shared AWS Batch and EC2 lookups via the inventory: compute environments, queue, job definition, types."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Protocol

from pytest_mlbatch.analysis.batchdocs import (
    DEFAULT_ARM64_FAMILIES as DEFAULT_ARM64_FAMILIES,
)
from pytest_mlbatch.analysis.batchdocs import (
    DEFAULT_X86_64_FAMILIES as DEFAULT_X86_64_FAMILIES,
)
from pytest_mlbatch.analysis.batchdocs import (
    OPTIMAL_FAMILIES as OPTIMAL_FAMILIES,
)
from pytest_mlbatch.analysis.batchdocs import (
    SPECIAL_TYPES as SPECIAL_TYPES,
)
from pytest_mlbatch.analysis.batchdocs import (
    architectures as architectures,
)
from pytest_mlbatch.analysis.batchdocs import (
    arn_name as arn_name,
)
from pytest_mlbatch.analysis.batchdocs import (
    arn_path as arn_path,
)
from pytest_mlbatch.analysis.batchdocs import (
    container as container,
)
from pytest_mlbatch.analysis.batchdocs import (
    instance_type_patterns as instance_type_patterns,
)
from pytest_mlbatch.analysis.batchdocs import (
    is_eks as is_eks,
)
from pytest_mlbatch.analysis.batchdocs import (
    is_fargate as is_fargate,
)
from pytest_mlbatch.analysis.batchdocs import (
    job_size as job_size,
)
from pytest_mlbatch.analysis.batchdocs import (
    platform_capabilities as platform_capabilities,
)
from pytest_mlbatch.analysis.batchdocs import (
    queue_order as queue_order,
)
from pytest_mlbatch.analysis.batchdocs import (
    requirements as requirements,
)
from pytest_mlbatch.analysis.batchdocs import (
    same_name as same_name,
)
from pytest_mlbatch.analysis.batchdocs import (
    unresolved as unresolved,
)
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.scope import Scope


class Where(Protocol):
    """What a lookup needs of its caller (a check's context): the target's inventory and scope, and user paths."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def scope(self) -> Scope: ...

    def path(self, value: str) -> Path: ...


# DescribeInstanceTypes takes at most this many values in one filter; larger sets are asked in batches.
FILTER_BATCH = 100


# -- names ------------------------------------------------------------------------------------------------------
# -- compute environments and the queue --------------------------------------------------------------------------
def ce_names(scope: Scope) -> list[str]:
    """Every compute environment this target looks at: the scope's and those the queue orders (names)."""
    names = {arn_name(n) for n in scope.compute_environments}
    names.update(scope.discovered.get("queue_compute_environment_names", []))
    return sorted(names)


def describe_compute_environments(inventory: Inventory, names: list[str]) -> list[dict[str, Any]]:
    if not names:
        return []
    found: list[dict[str, Any]] = inventory.paginate("batch", "describe_compute_environments",
                                                     "computeEnvironments", computeEnvironments=names)
    return found


def compute_environments(ctx: Where) -> dict[str, dict[str, Any]]:
    """The target's compute environments, by name and by ARN, in one DescribeComputeEnvironments call."""
    out: dict[str, dict[str, Any]] = {}
    for ce in describe_compute_environments(ctx.inventory, ce_names(ctx.scope)):
        out[ce["computeEnvironmentName"]] = ce
        out[ce["computeEnvironmentArn"]] = ce
    return out


def compute_environment(ctx: Where, name: str) -> dict[str, Any] | None:
    return compute_environments(ctx).get(name) or compute_environments(ctx).get(arn_name(name))


def scope_compute_environments(ctx: Where) -> list[tuple[str, dict[str, Any] | None]]:
    """The scope's compute environments in order, each with its description (None if it does not exist)."""
    return [(name, compute_environment(ctx, name)) for name in ctx.scope.compute_environments]


def describe_job_queue(inventory: Inventory, name: str) -> dict[str, Any] | None:
    found = inventory.paginate("batch", "describe_job_queues", "jobQueues", jobQueues=[name])
    return next((q for q in found if name in (q["jobQueueName"], q["jobQueueArn"])), None)


def job_queue(ctx: Where) -> dict[str, Any] | None:
    name = ctx.scope.job_queue
    if not name:
        return None
    return describe_job_queue(ctx.inventory, name)


def is_spot(ce: dict[str, Any]) -> bool:
    return str(ce.get("computeResources", {}).get("type", "")) in ("SPOT", "FARGATE_SPOT")


def eks_reason(ctx: Where) -> str | None:
    """Why the scope runs AWS Batch on Amazon EKS (every compute environment is an EKS one, or the job definition
    has eksProperties), else None. Checks of what only ECS needs skip with this reason instead of judging EKS by
    ECS rules. A Batch read that fails raises (AwsError): the check is then an error, never a pass on a guess."""
    ces = list({ce["computeEnvironmentArn"]: ce for ce in compute_environments(ctx).values()}.values())
    jd = job_definition(ctx)
    if ces and all(is_eks(ce) for ce in ces):
        names = ", ".join(sorted(str(ce.get("computeEnvironmentName")) for ce in ces))
        return f"Batch on Amazon EKS (compute environment {names} runs on an EKS cluster)"
    if jd and jd.get("eksProperties"):
        return f"Batch on Amazon EKS (job definition {jd.get('jobDefinitionName')} has eksProperties)"
    return None


# -- job definitions -----------------------------------------------------------------------------------------------
def describe_job_definition(inventory: Inventory, ref: str) -> tuple[dict[str, Any] | None, str]:
    """(job definition or None, why not) for a name (latest ACTIVE revision), name:revision, or ARN.

    Describing by name:revision returns nothing on moto (and the API documents only names and ARNs there), so
    name:revision is answered from the name's revisions."""
    if ref.startswith("arn:"):
        found = inventory.paginate("batch", "describe_job_definitions", "jobDefinitions", jobDefinitions=[ref])
        if not found:
            return None, f"job definition {ref} does not exist"
        return found[0], ""
    name, _, revision = ref.partition(":")
    found = inventory.paginate("batch", "describe_job_definitions", "jobDefinitions", jobDefinitionName=name)
    active = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
    latest = max(active, key=lambda d: int(d.get("revision", 0)), default=None)
    hint = f" (latest ACTIVE revision is {latest['revision']})" if latest else ""
    if revision:
        chosen = next((d for d in found if str(d.get("revision")) == revision), None)
        if chosen is None:
            if not found:
                return None, f"job definition {name} does not exist"
            return None, f"job definition {ref}: revision {revision} does not exist{hint}"
        return chosen, ""
    if latest is None:
        if found:
            return None, f"job definition {name} has no ACTIVE revision ({len(found)} INACTIVE)"
        return None, f"job definition {name} does not exist"
    return latest, ""


def job_definition(ctx: Where, ref: str | None = None) -> dict[str, Any] | None:
    """A job definition by name (latest ACTIVE revision), name:revision, or ARN."""
    ref = ref or ctx.scope.job_definition
    if not ref:
        return None
    return describe_job_definition(ctx.inventory, ref)[0]


def load_job_definition_file(ctx: Where, value: str) -> dict[str, Any]:
    """A local job-definition JSON file (RegisterJobDefinition input). Raises NotEvaluable if unreadable."""
    path = ctx.path(value)

    def read() -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise NotEvaluable(f"job definition file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise NotEvaluable(f"cannot read job definition file {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise NotEvaluable(f"job definition file {path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise NotEvaluable(f"job definition file {path}: the top level must be an object")
        return doc

    result: dict[str, Any] = ctx.inventory.memo(f"job-definition-file:{path}", read)
    return result


def current_job_definition(ctx: Where) -> tuple[dict[str, Any] | None, str]:
    """The job definition the job runs: the named one if any, else the local file. ('', reason) when neither."""
    scope = ctx.scope
    if scope.job_definition:
        jd, why = describe_job_definition(ctx.inventory, scope.job_definition)
        return jd, why
    if scope.job_definition_file:
        return load_job_definition_file(ctx, scope.job_definition_file), ""
    return None, "no job definition"


# -- instance types ------------------------------------------------------------------------------------------------
def _describe_types(inventory: Inventory, patterns: list[str]) -> list[dict[str, Any]]:
    """DescribeInstanceTypes for filter values, FILTER_BATCH at a time (moto ignores MaxResults and returns all)."""
    found: list[dict[str, Any]] = []
    for i in range(0, len(patterns), FILTER_BATCH):
        chunk = patterns[i:i + FILTER_BATCH]
        found.extend(inventory.paginate("ec2", "describe_instance_types", "InstanceTypes",
                                        Filters=[{"Name": "instance-type", "Values": chunk}]))
    return found


def all_instance_types(ctx: Where) -> dict[str, dict[str, Any]]:
    """Every instance type any of the target's EC2 compute environments may launch, by name (batched, cached)."""
    names: set[str] = set()
    for ce in describe_compute_environments(ctx.inventory, ce_names(ctx.scope)):
        if not is_fargate(ce):
            names.update(ce.get("computeResources", {}).get("instanceTypes", []) or [])
    return {t["InstanceType"]: t for t in _describe_types(ctx.inventory, instance_type_patterns(names))}


def instance_types(ctx: Where, names: list[str]) -> list[dict[str, Any]]:
    """DescribeInstanceTypes for the allowed types of a compute environment (families expanded).

    Answered from the target-wide batched lookup when it covers these names, else with its own call."""
    patterns = instance_type_patterns(names)
    if not patterns:
        return []
    known = all_instance_types(ctx)
    covered = set(instance_type_patterns(
        t for ce in describe_compute_environments(ctx.inventory, ce_names(ctx.scope)) if not is_fargate(ce)
        for t in ce.get("computeResources", {}).get("instanceTypes", []) or []))
    if set(patterns) <= covered:
        return [t for name, t in sorted(known.items()) if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    return _describe_types(ctx.inventory, patterns)


# -- "did you mean" ------------------------------------------------------------------------------------------------
def suggest(inventory: Inventory, name: str, service: str, method: str, result_key: str, field: str,
            **params: Any) -> str:
    """' (did you mean 'x'?)' from the region's listing of that kind (read once, cached), or '' when nothing is
    close or the listing cannot be read (the finding stands without it)."""
    from pytest_mlbatch.analysis.names import did_you_mean

    try:
        items = inventory.paginate(service, method, result_key, **params)
    except AwsError:
        return ""
    return did_you_mean(name, (str(i.get(field, "")) for i in items if isinstance(i, dict)))


# -- what instances boot and where they may run ---------------------------------------------------------------------
def container_instances(inventory: Inventory, cluster: str) -> list[dict[str, Any]]:
    """The ECS container instances registered in a cluster (ListContainerInstances, then DescribeContainerInstances
    100 at a time)."""
    arns: list[str] = inventory.paginate("ecs", "list_container_instances", "containerInstanceArns", cluster=cluster)
    found: list[dict[str, Any]] = []
    for i in range(0, len(arns), 100):
        found.extend(inventory.call("ecs", "describe_container_instances", cluster=cluster,
                                    containerInstances=sorted(arns[i:i + 100])).get("containerInstances", []))
    return found


def describe_images(inventory: Inventory, ids: list[str]) -> list[dict[str, Any]]:
    """DescribeImages for AMI ids, by filter (a missing id must not fail the call for the others)."""
    if not ids:
        return []
    found: list[dict[str, Any]] = inventory.paginate("ec2", "describe_images", "Images",
                                                     Filters=[{"Name": "image-id", "Values": sorted(set(ids))}])
    return found


def instance_type_offerings(inventory: Inventory, zones: list[str]) -> list[dict[str, Any]]:
    """DescribeInstanceTypeOfferings by Availability Zone for these zones (one call, every type)."""
    if not zones:
        return []
    found: list[dict[str, Any]] = inventory.paginate(
        "ec2", "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="availability-zone",
        Filters=[{"Name": "location", "Values": sorted(set(zones))}])
    return found
