"""AWS Batch documents read as plain values: ARN names, a queue's order, a job definition's container, size and
platforms, compute environment kinds, what instanceTypes entries (families, optimal, default_*) stand for."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from pytest_mlbatch.config import JobSize
from pytest_mlbatch.findings import NotEvaluable

# What the special values of a compute environment's instanceTypes mean (AWS Batch API reference,
# ComputeResource.instanceTypes): `optimal` picks from the c4, m4, r4, c5, m5 and r5 families; since November 2025
# it behaves like `default_x86_64` (m6i, c6i, r6i, c7i), so both sets count for it; `default_arm64` picks from
# m6g, c6g, r6g, c7g.
OPTIMAL_FAMILIES = ("c4", "m4", "r4", "c5", "m5", "r5")
DEFAULT_X86_64_FAMILIES = ("m6i", "c6i", "r6i", "c7i")
DEFAULT_ARM64_FAMILIES = ("m6g", "c6g", "r6g", "c7g")
SPECIAL_TYPES: dict[str, tuple[str, ...]] = {
    "optimal": OPTIMAL_FAMILIES + DEFAULT_X86_64_FAMILIES,
    "default_x86_64": DEFAULT_X86_64_FAMILIES,
    "default_arm64": DEFAULT_ARM64_FAMILIES,
}


def arn_name(value: str) -> str:
    """The last segment of an ARN's resource part (role/path/x -> x), or the value itself if it is a name."""
    if value.startswith("arn:"):
        resource = value.split(":", 5)[-1]
        return resource.rsplit("/", 1)[-1]
    return value.rsplit("/", 1)[-1]


def arn_path(value: str) -> str:
    """The IAM path of a role or instance-profile ARN ('/' for a bare name)."""
    if not value.startswith("arn:"):
        return "/"
    resource = value.split(":", 5)[-1]
    parts = resource.split("/")
    return "/" + "/".join(parts[1:-1]) + "/" if len(parts) > 2 else "/"


def same_name(a: str | None, b: str | None) -> bool:
    """A name and an ARN (or two ARNs) name the same thing."""
    if not a or not b:
        return a == b
    if a.startswith("arn:") and b.startswith("arn:"):
        return a == b
    return arn_name(a) == arn_name(b)


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


def instance_type_patterns(names: Iterable[str]) -> list[str]:
    """CE instanceTypes -> DescribeInstanceTypes filter values: sizes as they are, families as 'm5.*'."""
    patterns: set[str] = set()
    for n in names:
        if n in SPECIAL_TYPES:
            patterns.update(f"{f}.*" for f in SPECIAL_TYPES[n])
        elif n.startswith("default_"):
            patterns.update(f"{f}.*" for f in OPTIMAL_FAMILIES)
        elif "." in n:
            patterns.add(n)
        else:
            patterns.add(f"{n}.*")
    return sorted(patterns)


def unresolved(names: list[str], found: Iterable[str]) -> list[str]:
    """The instanceTypes entries that matched no described type (unknown, or missing from the backend)."""
    found = list(found)
    out = []
    for n in names:
        pats = instance_type_patterns([n])
        if not any(fnmatch.fnmatchcase(f, p) for f in found for p in pats):
            out.append(n)
    return out


def architectures(info: dict[str, Any]) -> list[str]:
    return [str(a) for a in info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])]
