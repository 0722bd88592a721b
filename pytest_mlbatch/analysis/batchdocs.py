"""AWS Batch names as plain values: ARN names and paths, and what a compute environment's instanceTypes entries
(families, optimal, default_*) stand for. (Reading Batch's documents is aws/batchinfo.py's.)"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

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
