"""Does a job's vCPU, memory and GPU ask fit a compute environment: EC2 instance types after ECS overhead, Fargate."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from pytest_mlbatch.config import JobSize

# Memory the job can use on an instance. The truth is what the ECS agent registers for the instance (its
# registeredResources MEMORY, DescribeContainerInstances): when a compute environment has registered instances of a
# type, their number is used as it is. Otherwise a band, with its sources (docs/batch.md, "Memory that ECS registers"):
# - the agent registers the memory the OS reports (MemTotal, read with Docker's ReadMemInfo) less ECS_RESERVED_MEMORY
#   (AWS Batch user guide, "Compute resource memory management" and "Reserve system memory"; ECS developer guide,
#   "Reserving Amazon ECS Linux container instance memory"); the default Batch AMI reserves 32 MiB;
# - the OS sees less than the advertised size (platform overhead, the kernel): the guides' only number is an m4.large,
#   8192 MiB advertised, 8373026816 bytes = 7985 MiB seen, about 2.5 % less. That is the band's top: no type is
#   assumed to register more than advertised x 7985/8192 - 32 MiB;
# - current (Nitro) types lose more: the kernel's page structures alone take 64 bytes per 4 KiB page (1.6 %), plus
#   firmware-reserved ranges, the kernel image and the crash kernel reservation. No AWS document gives a number per
#   type, so the band's bottom is a margin: advertised x 94 % - 32 MiB.
# A job at or under the bottom fits; over the top it does not; inside the band it "may not fit" and fails with the
# numbers, never passes (measure: run one instance of the type and read its registered memory).
REGISTERED_RATIO = (7985, 8192)
CONSERVATIVE_RATIO = (94, 100)
ECS_RESERVED_MIB = 32
MEMORY_RULE = ("without registered container instances, usable memory is a band: at most advertised x 7985/8192 "
               "(OS-visible memory, AWS Batch memory-management guide) - 32 MiB ECS_RESERVED_MEMORY, at least "
               "advertised x 94 % - 32 MiB (a margin for kernel and platform overhead on current types); see "
               "docs/batch.md")

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
    """The most memory a Batch job can reserve on an instance with `advertised_mib` installed (the band's top)."""
    num, den = REGISTERED_RATIO
    return max(0, math.floor(advertised_mib * num / den) - ECS_RESERVED_MIB)


def conservative_memory(advertised_mib: int) -> int:
    """Memory a Batch job can surely reserve on an instance with `advertised_mib` installed (the band's bottom)."""
    num, den = CONSERVATIVE_RATIO
    return max(0, math.floor(advertised_mib * num / den) - ECS_RESERVED_MIB)


@dataclass(frozen=True)
class Capacity:
    """One instance type as a job sees it."""

    name: str
    vcpus: int
    memory: int  # advertised MiB
    usable: int  # MiB a job may reserve at most (registered, or the band's top)
    gpus: int
    low: int = -1  # MiB a job can surely reserve (registered, or the band's bottom); -1: same as usable
    registered: bool = False  # usable is what ECS registered for this type in the compute environment

    @classmethod
    def build(cls, name: str, vcpus: int, memory: int, gpus: int, registered: int | None = None) -> Capacity:
        """A type's capacity: what ECS registered for it when known, else the band of MEMORY_RULE."""
        if registered is not None:
            return cls(name, vcpus, memory, registered, gpus, registered, True)
        return cls(name, vcpus, memory, usable_memory(memory), gpus, conservative_memory(memory))

    @property
    def surely(self) -> int:
        return self.usable if self.low < 0 else self.low

    def holds(self, job: JobSize) -> bool:
        """The job fits for sure (its memory at or under the band's bottom, or what ECS registered)."""
        return (job.vcpus or 0) <= self.vcpus and (job.memory or 0) <= self.surely and (job.gpus or 0) <= self.gpus

    def may_hold(self, job: JobSize) -> bool:
        """The job fits if the type registers the band's top (its memory inside the band)."""
        return (job.vcpus or 0) <= self.vcpus and (job.memory or 0) <= self.usable and (job.gpus or 0) <= self.gpus

    def memory_text(self) -> str:
        if self.registered:
            return f"{self.usable} MiB registered with ECS"
        if self.surely == self.usable:
            return f"{self.usable} MiB usable of {self.memory}"
        return f"{self.surely}-{self.usable} MiB usable of {self.memory}"

    def describe(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.name} ({self.vcpus} vCPU, {self.memory_text()}{gpu})"


@dataclass(frozen=True)
class Verdict:
    fits: bool
    message: str
    uncertain: bool = False  # fails only because the job's memory is inside some type's band


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
        maybe = sorted((t for t in types if t.may_hold(job)), key=lambda t: (t.vcpus, t.usable, t.gpus, t.name))
        if maybe:
            best = maybe[0]
            problems.append(f"may not fit: job asks {job.memory} MiB; {best.name} ({best.memory} MiB installed) "
                            f"registers between {best.surely} and {best.usable} MiB with ECS, and no allowed type "
                            "surely holds the job; ask at most "
                            f"{max(t.surely for t in maybe)} MiB, or allow a larger type")
            return Verdict(False, "; ".join(problems), uncertain=not problems[:-1])
        short: list[str] = []
        if job.memory:
            top = max(types, key=lambda t: (t.usable, t.name))
            if top.usable < job.memory:
                what = ("registered with ECS" if top.registered else
                        f"({top.memory} MiB installed less ECS overhead)")
                short.append(f"job asks {job.memory} MiB; largest usable memory in {top.name} is {top.usable} MiB "
                             f"{what}, {job.memory - top.usable} MiB over")
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
