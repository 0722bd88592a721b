"""Does a job's vCPU, memory and GPU ask fit a compute environment: EC2 instance types after ECS overhead, Fargate."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from pytest_mlbatch.config import JobSize

# Memory the job can use on an instance, from the AWS Batch user guide, "Compute resource memory management"
# (docs.aws.amazon.com/batch/latest/userguide/memory-management.html) and "Reserve system memory"
# (.../ecs-reserved-memory.html):
# - the ECS agent registers the memory the OS reports, which is less than the advertised size because of platform
#   overhead and the kernel: the guide's example is an m4.large, 8192 MiB advertised, 8373026816 bytes = 7985 MiB
#   seen by the OS. We scale that documented ratio (7985/8192, about 2.5 % overhead) to every instance type;
# - the default Batch AMI also reserves 32 MiB (ECS_RESERVED_MEMORY) for the agent and system processes.
# usable = floor(advertised * 7985 / 8192) - 32.  m4.large/m5.large (8192 MiB): 7953 MiB usable.
REGISTERED_RATIO = (7985, 8192)
ECS_RESERVED_MIB = 32
MEMORY_RULE = ("usable = advertised x 7985/8192 (OS-visible memory, AWS Batch memory-management guide) "
               "- 32 MiB ECS_RESERVED_MEMORY")

# Fargate's valid vCPU -> memory (MiB) combinations, from the Batch API reference (ResourceRequirement.value).
FARGATE_SIZES: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: (1024, 2048, 3072, 4096),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
}


def usable_memory(advertised_mib: int) -> int:
    """Memory a Batch job can reserve on an instance with `advertised_mib` installed (see MEMORY_RULE)."""
    num, den = REGISTERED_RATIO
    return max(0, math.floor(advertised_mib * num / den) - ECS_RESERVED_MIB)


@dataclass(frozen=True)
class Capacity:
    """One instance type as a job sees it."""

    name: str
    vcpus: int
    memory: int  # advertised MiB
    usable: int  # MiB a job can reserve
    gpus: int

    @classmethod
    def of(cls, info: dict[str, Any]) -> Capacity:
        memory = int(info.get("MemoryInfo", {}).get("SizeInMiB", 0))
        gpus = sum(int(g.get("Count", 0)) for g in info.get("GpuInfo", {}).get("Gpus", []) or [])
        return cls(str(info["InstanceType"]), int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0)), memory,
                   usable_memory(memory), gpus)

    def holds(self, job: JobSize) -> bool:
        return ((job.vcpus or 0) <= self.vcpus and (job.memory or 0) <= self.usable
                and (job.gpus or 0) <= self.gpus)

    def describe(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.name} ({self.vcpus} vCPU, {self.usable} MiB usable of {self.memory}{gpu})"


@dataclass(frozen=True)
class Verdict:
    fits: bool
    message: str


def _num(value: float) -> str:
    return f"{value:g}"


def ec2_fit(job: JobSize, types: list[Capacity], max_vcpus: int | None, nodes: int = 1) -> Verdict:
    """Whether some allowed instance type holds the job, and maxvCpus allows it (all nodes of a multi-node
    parallel job at once); else exactly what is short."""
    problems: list[str] = []
    if max_vcpus is not None and job.vcpus and job.vcpus * nodes > max_vcpus:
        each = f" x {nodes} nodes = {_num(job.vcpus * nodes)}" if nodes > 1 else ""
        problems.append(f"job asks {_num(job.vcpus)} vCPUs{each}; maxvCpus is {max_vcpus}")
    if not types:
        return Verdict(False, "; ".join([*problems, "no allowed instance type could be described"]))
    fitting = sorted((t for t in types if t.holds(job)), key=lambda t: (t.vcpus, t.usable, t.gpus, t.name))
    if fitting and not problems:
        return Verdict(True, f"fits {fitting[0].describe()}; {len(fitting)} of {len(types)} allowed types fit")
    if not fitting:
        short: list[str] = []
        if job.memory:
            top = max(types, key=lambda t: (t.usable, t.name))
            if top.usable < job.memory:
                short.append(f"job asks {job.memory} MiB; largest usable memory in {top.name} is {top.usable} MiB "
                             f"({top.memory} MiB installed less ECS overhead), {job.memory - top.usable} MiB over")
        if job.vcpus:
            top = max(types, key=lambda t: (t.vcpus, t.name))
            if top.vcpus < job.vcpus:
                short.append(f"job asks {_num(job.vcpus)} vCPUs; largest type {top.name} has {top.vcpus}, "
                             f"{_num(job.vcpus - top.vcpus)} over")
        if job.gpus:
            top = max(types, key=lambda t: (t.gpus, t.name))
            if top.gpus == 0:
                short.append(f"job asks {job.gpus} GPUs; no allowed instance type has a GPU")
            elif top.gpus < job.gpus:
                short.append(f"job asks {job.gpus} GPUs; most GPUs in one type: {top.name} with {top.gpus}")
        if not short:
            short.append(f"no single allowed type has {_describe_job(job)} together")
        problems.extend(short)
    return Verdict(False, "; ".join(problems))


def fargate_fit(job: JobSize, max_vcpus: int | None) -> Verdict:
    """A Fargate job: no GPUs, and its vCPU/memory is one of Fargate's valid combinations."""
    problems: list[str] = []
    if job.gpus:
        problems.append(f"job asks {job.gpus} GPUs; Fargate has no GPUs")
    if job.vcpus is None or job.memory is None:
        problems.append("a Fargate job needs both VCPU and MEMORY resource requirements")
    elif job.vcpus not in FARGATE_SIZES:
        problems.append(f"Fargate has no {_num(job.vcpus)} vCPU size (valid: "
                        f"{', '.join(_num(v) for v in FARGATE_SIZES)})")
    elif job.memory not in FARGATE_SIZES[job.vcpus]:
        sizes = FARGATE_SIZES[job.vcpus]
        problems.append(f"Fargate {_num(job.vcpus)} vCPU takes memory {_ranges(sizes)}; job asks {job.memory}")
    if max_vcpus is not None and job.vcpus and job.vcpus > max_vcpus:
        problems.append(f"job asks {_num(job.vcpus)} vCPUs; maxvCpus is {max_vcpus}")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{_num(job.vcpus or 0)} vCPU / {job.memory} MiB is a valid Fargate size")


def _ranges(sizes: tuple[int, ...]) -> str:
    if len(sizes) > 3:
        step = sizes[1] - sizes[0]
        if all(b - a == step for a, b in itertools.pairwise(sizes)):
            return f"{sizes[0]}-{sizes[-1]} MiB in {step} MiB steps"
    return ", ".join(map(str, sizes))


def _describe_job(job: JobSize) -> str:
    parts = []
    if job.vcpus:
        parts.append(f"{_num(job.vcpus)} vCPU")
    if job.memory:
        parts.append(f"{job.memory} MiB")
    if job.gpus:
        parts.append(f"{job.gpus} GPU")
    return ", ".join(parts) or "nothing"
