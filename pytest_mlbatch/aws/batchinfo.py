"""AWS Batch and EC2 reads via the inventory (compute environments, queue, job definitions, instance types) and
what their documents say (a job definition's container, size and platforms; a compute environment's kind)."""

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
    arn_name as arn_name,
)
from pytest_mlbatch.analysis.batchdocs import (
    arn_path as arn_path,
)
from pytest_mlbatch.analysis.batchdocs import (
    instance_type_patterns as instance_type_patterns,
)
from pytest_mlbatch.analysis.batchdocs import (
    same_name as same_name,
)
from pytest_mlbatch.analysis.batchdocs import (
    unresolved as unresolved,
)
from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.config import JobSize
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.scope import Scope


class Where(Protocol):
    """What a lookup needs of its caller (a check's context): the target's inventory and scope, and user paths."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def scope(self) -> Scope: ...

    def path(self, value: str) -> Path: ...


# -- what Batch documents say (plain reads of DescribeX answers and RegisterJobDefinition input) -----------
def queue_order(queue: dict[str, Any]) -> list[str]:
    """The queue's compute environment ARNs (or names) in the order the scheduler tries them."""
    order = sorted(queue.get("computeEnvironmentOrder", []), key=lambda o: int(o.get("order", 0)))
    return [str(o["computeEnvironment"]) for o in order]


def is_fargate(ce: dict[str, Any]) -> bool:
    return str(ce.get("computeResources", {}).get("type", "")).startswith("FARGATE")


def is_eks(ce: dict[str, Any]) -> bool:
    return str(ce.get("containerOrchestrationType", "ECS")).upper() == "EKS" or bool(ce.get("eksConfiguration"))


def container(jd: dict[str, Any]) -> dict[str, Any]:
    """The container a job definition runs: containerProperties, the main node's container, or the essential
    container of ecsProperties' first task ({} if none)."""
    if isinstance(jd.get("containerProperties"), dict):
        return dict(jd["containerProperties"])
    nodes = jd.get("nodeProperties")
    if isinstance(nodes, dict) and isinstance(nodes.get("nodeRangeProperties"), list):
        main = nodes.get("mainNode", 0)
        for rng in nodes["nodeRangeProperties"]:
            if not isinstance(rng, dict):
                continue
            lo, _, hi = str(rng.get("targetNodes", "")).partition(":")
            try:
                inside = int(lo or 0) <= int(main) <= int(hi or lo or main)
            except ValueError:
                inside = False
            if inside and isinstance(rng.get("container"), dict):
                return dict(rng["container"])
    ecs = jd.get("ecsProperties")
    if isinstance(ecs, dict) and isinstance(ecs.get("taskProperties"), list):
        for task in ecs["taskProperties"]:
            containers = task.get("containers", []) if isinstance(task, dict) else []
            if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
                continue
            chosen = next((c for c in containers if c.get("essential", True)), containers[0] if containers else {})
            merged = dict(chosen)
            for key in ("executionRoleArn", "taskRoleArn", "networkConfiguration", "platformVersion"):
                if key in task:
                    merged.setdefault(key if key != "taskRoleArn" else "jobRoleArn", task[key])
            return merged
    return {}


def requirements(cont: dict[str, Any]) -> dict[str, str]:
    """resourceRequirements as {"VCPU": "2", "MEMORY": "16384", "GPU": "1"}."""
    found = cont.get("resourceRequirements") or []
    if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
        raise NotEvaluable("resourceRequirements is not a list of {type, value} (see BAT003)")
    return {str(r.get("type")): str(r.get("value")) for r in found}


def job_size(jd: dict[str, Any]) -> JobSize:
    """What a job definition asks for: resourceRequirements first, else the deprecated vcpus/memory."""
    cont = container(jd)
    req = requirements(cont)
    vcpus: float | None = None
    memory: int | None = None
    gpus: int | None = None
    try:
        if "VCPU" in req:
            vcpus = float(req["VCPU"])
        elif cont.get("vcpus") is not None:
            vcpus = float(cont["vcpus"])
        if "MEMORY" in req:
            memory = int(float(req["MEMORY"]))
        elif cont.get("memory") is not None:
            memory = int(cont["memory"])
        if "GPU" in req:
            gpus = int(float(req["GPU"]))
    except (TypeError, ValueError) as exc:
        raise NotEvaluable(f"job definition has a resource requirement that is not a number: {exc}") from None
    return JobSize(vcpus=vcpus, memory=memory, gpus=gpus)


def platform_capabilities(jd: dict[str, Any]) -> list[str]:
    found = jd.get("platformCapabilities") or []
    if not isinstance(found, list):
        raise NotEvaluable("platformCapabilities is not a list (see BAT003)")
    return [str(p) for p in found] or ["EC2"]


def architectures(info: dict[str, Any]) -> list[str]:
    return [str(a) for a in info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])]


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
