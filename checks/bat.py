"""BAT checks: compute environments, job queue and job definition are valid, the job fits, GPUs, wiring, quotas."""

from __future__ import annotations

import email
import functools
import json
import re
from importlib import resources
from typing import Any

from pytest_mlbatch.analysis import batchdocs as bi
from pytest_mlbatch.analysis.fit import MEMORY_RULE, Capacity, Verdict, ec2_fit, fargate_fit
from pytest_mlbatch.config import JobSize
from pytest_mlbatch.engine.context import CheckContext
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed, missing, passed
from pytest_mlbatch.model.compute import ComputeEnvironment, templates_of
from pytest_mlbatch.model.job import Job
from pytest_mlbatch.model.resources import discovery_problems
from pytest_mlbatch.model.world import boot, near_name


# -- shared helpers ----------------------------------------------------------------------------------------------
def _report_problems(problems: list[tuple[str, str, str]]) -> Finding:
    """Discovery failures as an outcome: any error -> error (NotEvaluable), else failed."""
    errors = [p[1] for p in problems if p[2] == "error"]
    if errors:
        raise NotEvaluable("; ".join(errors))
    return failed("; ".join(p[1] for p in problems))


def _raise_discovery_errors(ctx: CheckContext, *whats: str) -> None:
    errors = [p[1] for p in discovery_problems(ctx.scope, *whats) if p[2] == "error"]
    if errors:
        raise NotEvaluable("; ".join(errors))


def _existing_ce(ctx: CheckContext, res: Resource) -> ComputeEnvironment:
    """The compute environment a check of one judges; NotApplicable (see BAT001) when it was not discovered or does
    not exist."""
    if res.get("problems"):
        raise NotApplicable("the compute environment was not discovered (see BAT001)")
    ce = _target_ce(ctx, res.id)
    if ce is None:
        raise NotApplicable(f"compute environment {res.id} does not exist (see BAT001)")
    return ce


def _target_ce(ctx: CheckContext, ref: str) -> ComputeEnvironment | None:
    """One of the target's compute environments (the scope's or one the queue orders) by name or ARN."""
    ces = ctx.model.target_compute_environments()
    return ces.get(ref) or ces.get(bi.arn_name(ref))


def _job(ctx: CheckContext) -> tuple[JobSize, Job | None, str]:
    """(what the job asks, its job definition if any, where the size came from)."""
    scope = ctx.scope
    if scope.job_definition or scope.job_definition_file:
        jd, why = ctx.model.current_job_definition()
        if jd is not None and scope.job is not None and scope.sources.get("job", "").startswith("submitted job"):
            return scope.job, jd, scope.sources["job"]  # --mlbatch-job: the job's own size, overrides included
        if jd is not None:
            revision = jd.revision if jd.revision is not None else "?"
            label = (f"job definition {jd.name or '?'}:{revision}"
                     if scope.job_definition else f"job definition file {scope.job_definition_file}")
            return jd.asks(), jd, label
        if ctx.settings.job is None:
            raise NotApplicable(f"{why} (see BAT003)")
    if ctx.settings.job is not None:
        return ctx.settings.job, None, "batch.job"
    raise NotApplicable("no job definition and no batch.job")


# -- BAT001 ------------------------------------------------------------------------------------------------------
@check(
    id="BAT001", slug="compute-environment-valid", title="The compute environment is VALID and ENABLED",
    severity="critical", resource="compute_environment", permissions=["batch:DescribeComputeEnvironments"],
    rationale="An INVALID compute environment (bad service role, an instance profile that is really a role, "
              "instances that never join ECS) launches nothing, and a DISABLED one takes no jobs: every job "
              "waits in RUNNABLE.",
    remediation="Read the statusReason, fix the role, profile or network it names, then update the compute "
                "environment (or re-create it) until it is VALID; enable it with UpdateComputeEnvironment.",
)
def compute_environment_valid(ctx: CheckContext, res: Resource) -> Finding:
    if res.get("problems"):
        problems = list(res.get("problems"))
        if all(p[0] == "job_queue" and p[2] == "failed" for p in problems):  # each finding once: BAT002 says it
            raise NotApplicable(f"no compute environment to check: {problems[0][1]} (see BAT002)")
        return _report_problems(problems)
    _raise_discovery_errors(ctx, "compute_environment")
    ce = _target_ce(ctx, res.id)
    if ce is None:
        queue = ctx.scope.job_queue
        ordered = queue and res.id in ctx.scope.discovered.get("queue_compute_environment_names", [])
        return missing(f"compute environment {res.id} does not exist in {ctx.region}"
                       + (f", yet job queue {queue} orders it" if ordered else "")
                       + near_name(ctx.model, "compute_environment", bi.arn_name(res.id)))
    wrong = []
    if ce.status != "VALID":
        wrong.append(f"status {ce.status}" + (f" ({ce.status_reason})" if ce.status_reason else ""))
    if ce.state != "ENABLED":
        wrong.append(f"state {ce.state}")
    if wrong:
        return failed(f"{res.id} is not usable: {'; '.join(wrong)}")
    parts = ["MANAGED" if ce.managed else "UNMANAGED"]
    if ce.managed:
        parts.append(ce.provisioning or "?")
        if ce.max_vcpus is not None:
            parts.append(f"maxvCpus {ce.max_vcpus}")
    return passed(f"{res.id} is VALID and ENABLED ({', '.join(parts)})")


# -- BAT002 ------------------------------------------------------------------------------------------------------
def _architectures(ctx: CheckContext, ce: ComputeEnvironment) -> set[str]:
    archs: set[str] = set()
    for t in ctx.model.instance_types(ce.instance_types):
        archs.update(a for a in t.architectures if a in ("x86_64", "arm64"))
    return archs


@check(
    id="BAT002", slug="job-queue-valid", title="The job queue is VALID, ENABLED and orders usable compute",
    severity="critical", resource="job_queue",
    permissions=["batch:DescribeJobQueues", "batch:DescribeComputeEnvironments", "ec2:DescribeInstanceTypes"],
    rationale="A DISABLED or INVALID queue, one whose compute environments are invalid, or one that mixes EC2 "
              "with Fargate or CPU architectures blocks jobs (ACTION_REQUIRED) or rejects them.",
    remediation="Enable the queue, order only VALID compute environments of one kind (EC2 or Fargate) and one CPU "
                "architecture, and order the compute environment you configured.",
)
def job_queue_valid(ctx: CheckContext, res: Resource) -> Finding:
    _raise_discovery_errors(ctx, "job_queue")
    queue = ctx.model.job_queue()
    if queue is None:
        return missing(f"job queue {res.id} does not exist in {ctx.region}"
                       + near_name(ctx.model, "job_queue", bi.arn_name(res.id)))
    problems: list[str] = []
    if queue.status != "VALID":
        reason = queue.status_reason
        problems.append(f"status {queue.status}" + (f" ({reason})" if reason else ""))
    if queue.state != "ENABLED":
        problems.append(f"state {queue.state}")
    order = [bi.arn_name(c) for c in queue.order]
    if not order:
        problems.append("it orders no compute environment")
    missing_from_queue = [bi.arn_name(c) for c in ctx.scope.compute_environments if bi.arn_name(c) not in order]
    if order and missing_from_queue:
        problems.append(f"it does not order compute environment {', '.join(missing_from_queue)} "
                        f"(it orders {', '.join(order)})")
    ces = ctx.model.target_compute_environments()
    described = [ces[n] for n in order if n in ces]
    absent = [n for n in order if n not in ces]
    if absent:
        problems.append(f"it orders compute environment {', '.join(absent)}, which does not exist")
    invalid = [f"{ce.name} ({ce.status}: {ce.status_reason or ''})".replace(": )", ")")
               for ce in described if ce.status != "VALID"]
    if invalid:
        problems.append(f"it orders INVALID compute environment {', '.join(invalid)}")
    if described and not any(ce.status == "VALID" and ce.state == "ENABLED" for ce in described):
        problems.append("none of its compute environments is VALID and ENABLED")
    kinds = {ce.name: _kind(ce) for ce in described}
    if len(set(kinds.values())) > 1:
        problems.append("it mixes " + " and ".join(sorted(set(kinds.values()))) + " compute environments ("
                        + ", ".join(f"{n}: {k}" for n, k in kinds.items()) + ")")
    ec2 = [ce for ce in described if _kind(ce) == "EC2"]
    if len(ec2) > 1:
        archs = {ce.name: _architectures(ctx, ce) for ce in ec2}
        known = {n: a for n, a in archs.items() if a}
        if len(set().union(*known.values())) > 1:
            problems.append("it mixes CPU architectures (" + ", ".join(
                f"{n}: {'/'.join(sorted(a))}" for n, a in known.items()) + ")")
        elif not problems and len(known) < len(archs):
            unknown = ", ".join(n for n in archs if n not in known)
            raise NotEvaluable(f"could not describe the instance types of {unknown} to compare CPU architectures")
    if problems:
        return failed(f"job queue {res.id}: " + "; ".join(problems))
    return passed(f"{res.id} is VALID and ENABLED, orders {', '.join(order)}")


# -- BAT003 ------------------------------------------------------------------------------------------------------
@functools.cache
def job_definition_schema() -> dict[str, Any]:
    text = resources.files("pytest_mlbatch.schemas").joinpath("job-definition.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def register_form(jd: dict[str, Any]) -> dict[str, Any]:
    """A described job definition as RegisterJobDefinition input: output-only fields and nulls dropped."""
    allowed = set(job_definition_schema()["properties"])
    return {k: v for k, v in jd.items() if k in allowed and v is not None and v != {} and v != []}


def normalise_case(doc: dict[str, Any]) -> dict[str, Any]:
    """Enumerations the API treats as case-insensitive, in the case the model lists: retryStrategy.evaluateOnExit[]
    .action ("the values aren't case sensitive", API reference EvaluateOnExit), which moto and Terraform store
    lower-cased."""
    retry = doc.get("retryStrategy")
    if not isinstance(retry, dict):
        return doc
    rules = retry.get("evaluateOnExit")
    if not isinstance(rules, list):
        return doc
    allowed = job_definition_schema()["$defs"]["RetryAction"]["enum"]
    fixed = [{**r, "action": next((a for a in allowed if a.lower() == r["action"].lower()), r["action"])}
             if isinstance(r, dict) and isinstance(r.get("action"), str) else r for r in rules]
    return {**doc, "retryStrategy": {**retry, "evaluateOnExit": fixed}}


def schema_errors(doc: dict[str, Any], limit: int = 8) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(job_definition_schema())
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - allowed)
            out.append(f"{where or '(top level)'}: unknown key {', '.join(extra)}")
        else:
            out.append(f"{where or '(top level)'}: {err.message[:200]}")
    if len(out) > limit:
        out = [*out[:limit], f"(+{len(out) - limit} more)"]
    return out


@check(
    id="BAT003", slug="job-definition-valid", title="The job definition exists, is well formed and runs the image",
    severity="high", resource="job_definition", permissions=["batch:DescribeJobDefinitions"],
    rationale="A missing or INACTIVE job definition cannot be submitted; deprecated vcpus/memory keys make "
              "resourceRequirements overrides fail ('submitted in a deprecated key'); a job definition that runs "
              "another image than the one you built and checked runs the wrong code.",
    remediation="Register a revision that validates against the RegisterJobDefinition model, puts VCPU, MEMORY "
                "(and GPU) in resourceRequirements, and names the configured image.",
)
def job_definition_valid(ctx: CheckContext, res: Resource) -> Finding:
    file_value = res.get("file")
    if file_value:
        jd = ctx.model.job_definition_file(file_value)
        label = f"job definition file {ctx.path(file_value)}"
        form = dict(jd.document or {})
    else:
        _raise_discovery_errors(ctx, "job_definition")
        found, why = ctx.model.job_definition(res.id)
        if found is None:  # it cannot be submitted at all: critical whatever the check's default
            name = bi.arn_name(res.id).partition(":")[0]
            if why.endswith("does not exist"):  # the name itself, not a revision of it: suggest close names
                why += near_name(ctx.model, "job_definition", name)
            return missing(why)
        jd = found
        label = f"{jd.name}:{jd.revision}"
        if jd.status != "ACTIVE":
            return failed(f"{label} is {jd.status}: register a new revision or name an ACTIVE one")
        form = register_form(dict(jd.document or {}))
    problems = [f"schema: {e}" for e in schema_errors(normalise_case(form))]
    for spec in jd.containers:
        where = spec.where
        if spec.deprecated:
            problems.append(f"{where} uses deprecated {' and '.join(spec.deprecated)}: move them to "
                            "resourceRequirements (overrides in resourceRequirements are rejected next to the "
                            "deprecated keys)")
        if spec.requirements is None:
            raise NotEvaluable("resourceRequirements is not a list of {type, value} (see BAT003)")
        lacking = [t for t, old in (("VCPU", "vcpus"), ("MEMORY", "memory"))
                   if t not in spec.requirements and old not in spec.deprecated]
        if lacking and where == "containerProperties":
            problems.append(f"{where}.resourceRequirements has no {' or '.join(lacking)}")
    image = jd.image or jd.pod_image  # Batch on EKS: the pod's (first) container
    scope = ctx.scope
    if image and scope.image_uri and scope.sources.get("image_uri") == "config" and image != scope.image_uri:
        problems.append(f"it runs {image}, but image.uri is {scope.image_uri}")
    if problems:
        return failed(f"{label}: " + "; ".join(problems))
    size = jd.asks() if jd.containers else None
    what = f", asks {size.vcpus:g} vCPU / {size.memory} MiB" if size and size.vcpus and size.memory else ""
    return passed(f"{label} is valid against the RegisterJobDefinition model, runs {image or '?'}{what}")


# -- BAT004 ------------------------------------------------------------------------------------------------------
@check(
    id="BAT004", slug="resources-fit", title="The job's vCPU, memory and GPUs fit the compute environment",
    severity="critical", resource="job",
    permissions=["batch:DescribeJobDefinitions", "batch:DescribeComputeEnvironments", "ec2:DescribeInstanceTypes",
                 "ecs:ListContainerInstances", "ecs:DescribeContainerInstances"],
    rationale="A job asking more vCPU, memory or GPUs than any allowed instance type can give (memory set to "
              "the advertised RAM, which ECS never registers in full), or more vCPUs than maxvCpus, or an "
              "invalid Fargate size, waits in RUNNABLE forever (MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT).",
    remediation="Lower the job's resourceRequirements below the usable memory of the largest allowed type (what "
                "its container instances register with ECS; without one, the conservative end of the band the "
                "message gives), or allow larger instance types or families (or raise maxvCpus); on Fargate use a "
                "valid vCPU/memory pair.",
)
def resources_fit(ctx: CheckContext, res: Resource) -> Finding:
    eks = ctx.model.eks_reason()
    if eks:
        raise NotApplicable(f"{eks}: the fit model (ECS reserved memory, containerProperties sizes) is ECS's; the "
                            "pod's requests and limits in eksProperties are not judged")
    job, jd, source = _job(ctx)
    if job.vcpus is None and job.memory is None and not job.gpus:
        raise NotEvaluable(f"{source} asks no vCPU, memory or GPU: nothing to compare")
    platforms = list(jd.platform_capabilities()) if jd is not None else ["EC2", "FARGATE"]
    ces = _model_compute_environments(ctx)
    usable = [ce for ce in ces if ("FARGATE" if ce.fargate else "EC2") in platforms]
    if not usable:
        return failed(f"{source} runs on {'/'.join(platforms)}, but compute environment "
                      + ", ".join(f"{ce.name} is {_kind(ce)}" for ce in ces))
    arch = (jd.cpu_architecture or "") if jd else ""
    if arch == "ARM64":  # Fargate Spot offers no ARM64 (AWS Batch user guide, Fargate multi-architecture)
        spot = [ce for ce in usable if ce.provisioning == "FARGATE_SPOT"]
        usable = [ce for ce in usable if ce not in spot]
        if not usable:
            return failed(f"{source} runs ARM64 on Fargate, which FARGATE_SPOT does not offer (compute environment "
                          f"{', '.join(ce.name for ce in spot)} is FARGATE_SPOT)")
    nodes = jd.num_nodes if jd else 1
    if nodes is None:
        raise NotEvaluable(f"{source}: nodeProperties.numNodes is not a number (see BAT003)")
    verdicts: list[tuple[str, Verdict]] = []
    unknown: list[str] = []
    for ce in usable:
        if ce.fargate:
            verdicts.append((ce.name, fargate_fit(job, ce.max_vcpus)))
            continue
        caps, missing = _model_capacities(ctx, ce)
        if missing:
            unknown.append(f"{ce.name}: {', '.join(missing)}")
        verdicts.append((ce.name, ec2_fit(job, caps, ce.max_vcpus, nodes)))
    good = [(n, v) for n, v in verdicts if v.fits]
    if good:
        others = [f"{n} does not ({v.message})" for n, v in verdicts if not v.fits]
        return passed(f"{source}: " + "; ".join(f"{n}: {v.message}" for n, v in good)
                      + (f"; {'; '.join(others)}" if others else ""))
    message = f"{source}: " + "; ".join(f"{n}: {v.message}" for n, v in verdicts)
    if unknown:
        # moto's DescribeInstanceTypes lacks p2/p3 (except p3dn.24xlarge); a real account may lack a type too.
        raise NotEvaluable(f"{message}; could not describe allowed instance types ({'; '.join(unknown)}), so "
                           "they may still fit")
    if "MiB over" in message or "may not fit" in message:
        message += f" [{MEMORY_RULE}]"
    return failed(message)


def _kind(ce: ComputeEnvironment) -> str:
    return "EKS" if ce.eks else "FARGATE" if ce.fargate else "EC2"


def _model_compute_environments(ctx: CheckContext) -> list[ComputeEnvironment]:
    found = list(ctx.model.compute_environments())
    if not found:
        raise NotApplicable("no compute environment of the scope exists (see BAT001)")
    return found


def _model_capacities(ctx: CheckContext, ce: ComputeEnvironment) -> tuple[list[Capacity], list[str]]:
    """(capacities of the allowed types, with the memory ECS registered where the compute environment has registered
    container instances of a type; instanceTypes entries that matched nothing)."""
    types = ctx.model.instance_types(ce.instance_types)
    registered = ctx.model.registered_memory(ce)
    caps = [Capacity.build(t.name, t.vcpus, t.memory_mib, t.gpus, registered.get(t.name)) for t in types]
    return caps, bi.unresolved(list(ce.instance_types), [t.name for t in types])


# -- BAT005 ------------------------------------------------------------------------------------------------------
GPU_FAMILY_PREFIXES = ("p", "g")
NVIDIA_IMAGE_TYPES = ("ECS_AL2_NVIDIA", "ECS_AL2023_NVIDIA")


def _gpu_types(ctx: CheckContext, ce: ComputeEnvironment) -> tuple[list[str], list[str]]:
    """(allowed types with GPUs, unresolved entries whose family name says GPU: assumed, e.g. p3 on moto)."""
    caps, missing = _model_capacities(ctx, ce)
    described = [f"{c.name} ({c.gpus})" for c in sorted(caps, key=lambda c: c.name) if c.gpus]
    assumed = [m for m in missing if m.split(".")[0].startswith(GPU_FAMILY_PREFIXES)
               and not m.startswith(("default", "optimal"))]
    return described, assumed


def _gpu_amis(ctx: CheckContext, ce: ComputeEnvironment, names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """For the GPU types of a compute environment, the AMIs Batch selects (AMI selection order): (problems, unknown,
    what was found), one line per distinct AMI choice."""
    problems: list[str] = []
    unknown: list[str] = []
    found: list[str] = []
    seen: set[tuple[str, str | None]] = set()
    for name in names:
        b = boot(ctx.model, ce, name, True)
        key = (b.choice.source, b.choice.image_id)
        if key in seen:
            continue
        seen.add(key)
        if b.ami is None:
            if "NVIDIA" not in b.choice.image_type:
                problems.append(f"{ce.name}: {name} boots {b.choice.source}, which has no NVIDIA driver")
            else:
                found.append(f"AMI: {b.choice.source}")
            continue
        shown = f"AMI {b.ami.id} ({b.ami.name or 'no name'}) from {b.choice.source}"
        if b.ami.nvidia is False:
            problems.append(f"{ce.name}: {name} boots {shown}, an ECS-optimized AMI without NVIDIA drivers (use "
                            "the GPU variant, or imageType ECS_AL2023_NVIDIA without an AMI override)")
        elif b.ami.nvidia is None:
            unknown.append(f"{ce.name}: {name} boots {shown}; neither its name nor its description says it has the "
                           "NVIDIA driver")
        else:
            found.append(shown)
    return problems, unknown, found


@check(
    id="BAT005", slug="gpu-ready", title="A GPU job gets GPU instances with an NVIDIA AMI",
    severity="high", resource="job",
    permissions=["batch:DescribeJobDefinitions", "batch:DescribeComputeEnvironments", "ec2:DescribeInstanceTypes",
                 "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages"],
    rationale="A GPU job on a compute environment with no GPU types, an AMI without NVIDIA drivers, or Fargate "
              "waits in RUNNABLE or starts without libcuda; a job that asks no GPU on GPU instances cannot see "
              "the GPU it pays for.",
    remediation="Allow GPU instance families (g5, g6, p4d, ...), keep ec2Configuration imageType ECS_AL2_NVIDIA "
                "(or ECS_AL2023_NVIDIA) for them, keep GPU jobs off Fargate, and add a GPU resourceRequirement "
                "to jobs that run on GPU instances.",
)
def gpu_ready(ctx: CheckContext, res: Resource) -> Finding:
    eks = ctx.model.eks_reason()
    if eks:
        raise NotApplicable(f"{eks}: GPU readiness is judged by ECS AMI types; EKS node AMIs and the pod's "
                            "nvidia.com/gpu limits are not judged")
    job, _jd, source = _job(ctx)
    ces = _model_compute_environments(ctx)
    problems: list[str] = []
    notes: list[str] = []
    unknown: list[str] = []
    if job.gpus:
        for ce in ces:
            if ce.fargate:
                problems.append(f"{ce.name} is Fargate, which has no GPUs")
                continue
            gpu, assumed = _gpu_types(ctx, ce)
            if not gpu and not assumed:
                problems.append(f"{ce.name} allows no GPU instance type ({', '.join(ce.instance_types)})")
                continue
            image_types = [c.image_type or "" for c in ce.ec2_configuration]
            if ce.ec2_configuration and not any(c.nvidia for c in ce.ec2_configuration):
                problems.append(f"{ce.name} ec2Configuration has imageType {', '.join(image_types)} only: GPU "
                                "instances would boot an AMI without NVIDIA drivers (add ECS_AL2_NVIDIA)")
                continue
            names = [g.split(" ")[0] for g in gpu] + assumed
            bad, unsure, found = _gpu_amis(ctx, ce, names)
            problems.extend(bad)
            unknown.extend(unsure)
            types = ", ".join(gpu + [f"{a} (assumed GPU from its family)" for a in assumed])
            notes.append(f"{ce.name}: GPU types {types}; {'; '.join(found)}")
        if problems:
            return failed(f"{source} asks {job.gpus} GPU: " + "; ".join(problems))
        if unknown:
            raise NotEvaluable(f"{source} asks {job.gpus} GPU, and whether the AMI has the NVIDIA driver cannot be "
                               "verified: " + "; ".join(unknown))
        return passed("; ".join(notes))
    for ce in ces:
        if ce.fargate:
            continue
        gpu, assumed = _gpu_types(ctx, ce)
        if gpu or assumed:
            problems.append(f"{ce.name} allows GPU instance types {', '.join(gpu + assumed)}")
    if problems:
        return failed(f"{source} asks no GPU, but " + "; ".join(problems) + ": the container will not see the "
                      "GPU (add a GPU resourceRequirement, or allow only CPU types)")
    raise NotApplicable(f"{source} asks no GPU and no GPU instance type is allowed")


# -- BAT006 ------------------------------------------------------------------------------------------------------
LABELS = {
    "subnet_ids": "subnets", "security_group_ids": "security groups", "instance_profile": "instance profile",
    "instance_role": "instance role", "key_name": "key pair", "service_role": "service role", "vpc_id": "VPC",
    "compute_environments": "compute environments", "image_uri": "image", "job_role": "job role",
    "execution_role": "execution role", "job": "job size",
}


def _same_role(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return not a and not b
    if "service-linked" in (a, b):
        other = b if a == "service-linked" else a
        return other == "service-linked" or bi.arn_name(other) == "AWSServiceRoleForBatch"
    return bi.same_name(a, b)


def _wiring(ctx: CheckContext, ce: ComputeEnvironment) -> tuple[list[str], list[str]]:
    scope = ctx.scope
    cr = ce.provisioning is not None  # it has computeResources (a managed compute environment)
    problems: list[str] = []
    good: list[str] = []
    if cr:
        for key, used in (("subnet_ids", ce.subnets), ("security_group_ids", ce.security_groups)):
            checked = list(getattr(scope, key))
            unchecked = [x for x in used if x not in checked]
            if unchecked:
                problems.append(f"it uses {LABELS[key]} {', '.join(unchecked)} that were not checked "
                                f"(checked: {', '.join(checked) or 'none'})")
            elif used:
                good.append(f"{LABELS[key]} {', '.join(used)}")
    if cr and not ce.fargate:
        profile = ce.instance_profile_ref
        if scope.instance_profile and not _same_role(profile, scope.instance_profile):
            problems.append(f"its instance profile is {profile or 'not set'}, but {scope.instance_profile} was "
                            "checked")
        elif profile:
            good.append(f"instance profile {bi.arn_name(str(profile))}")
        pair = ce.key_pair
        if scope.key_name and pair != scope.key_name:
            problems.append(f"its key pair is {pair or 'not set'}, but {scope.key_name} was checked")
        elif pair:
            good.append(f"key pair {pair}")
    if ce.managed:
        role = ce.service_role or "service-linked"
        if scope.service_role and not _same_role(role, scope.service_role):
            problems.append(f"its service role is {role}, but {scope.service_role} was checked")
        else:
            good.append(f"service role {bi.arn_name(str(role))}")
    return problems, good


@check(
    id="BAT006", slug="wiring-consistent", title="The compute environment uses what was checked",
    severity="medium", resource="compute_environment", permissions=["batch:DescribeComputeEnvironments"],
    rationale="Checking one set of subnets, groups, roles and keys while the compute environment uses another "
              "proves nothing: the job fails on the parts nobody looked at.",
    remediation="Make the config and the compute environment agree (or drop the config values and let them be "
                "discovered from the job queue).",
)
def wiring_consistent(ctx: CheckContext, res: Resource) -> Finding:
    scope = ctx.scope
    ce = _existing_ce(ctx, res)
    problems, good = _wiring(ctx, ce)
    first = bi.arn_name(scope.compute_environments[0]) if scope.compute_environments else None
    if res.id == first or bi.arn_name(res.id) == first:
        for name, (config, found) in sorted(scope.conflicts.items()):
            label = LABELS.get(name, name)
            text = f"config sets {label} {_show(config)}, but discovery found {_show(found)}"
            if text not in problems and not any(label in p for p in problems):
                problems.append(text)
        # a missing profile that the compute environment itself names is IAM003's finding (and fix), not wiring
        same_profile = bool(scope.instance_profile) and _same_role(ce.instance_profile_ref, scope.instance_profile)
        problems.extend(p[1] for p in scope.problems
                        if p[0] == "network" or (p[0] == "instance_profile" and not same_profile))
    if problems:
        return failed(f"{res.id}: " + "; ".join(problems))
    discovered = sorted(LABELS.get(k, k) for k, v in scope.sources.items() if v.startswith("discovered"))
    found = f" (discovered: {', '.join(discovered)})" if discovered else ""
    return passed(f"{res.id} uses the checked {', '.join(good) or 'resources'}{found}")


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, JobSize):
        return f"{value.vcpus or 0:g} vCPU / {value.memory} MiB / {value.gpus or 0} GPU"
    return str(value)


# -- BAT007 ------------------------------------------------------------------------------------------------------
TORCH_HINTS = ("torch", "pytorch", "lightning", "deepspeed", "huggingface", "transformers", "nemo", "fairseq",
               "detectron", "timm", "accelerate launch")
DOCKER_DEFAULT_SHM_MIB = 64


@check(
    id="BAT007", slug="shared-memory", title="A GPU/PyTorch job on EC2 sets shared memory",
    severity="low", resource="job_definition",
    permissions=["batch:DescribeJobDefinitions", "batch:DescribeComputeEnvironments"],
    rationale="Docker gives a container a 64 MB /dev/shm; PyTorch DataLoader workers pass batches through it "
              "and die with 'Bus error ... insufficient shared memory' after hours of training.",
    remediation="Set containerProperties.linuxParameters.sharedMemorySize (MiB), e.g. a quarter of the job's "
                "memory.",
)
def shared_memory(ctx: CheckContext, res: Resource) -> Finding:
    eks = ctx.model.eks_reason()
    if eks:
        raise NotApplicable(f"{eks}: linuxParameters.sharedMemorySize is an ECS setting; on EKS /dev/shm comes from "
                            "the pod's volumes")
    file_value = res.get("file")
    if file_value:
        jd = ctx.model.job_definition_file(file_value)
    else:
        found, why = ctx.model.job_definition(res.id)
        if found is None:
            raise NotApplicable(f"{why} (see BAT003)")
        jd = found
    if "FARGATE" in jd.platform_capabilities():
        raise NotApplicable("Fargate does not support linuxParameters.sharedMemorySize")
    size = jd.asks()
    text = " ".join([jd.image or "", *jd.command])
    text = text.lower()
    hint = next((h for h in TORCH_HINTS if h in text), None)
    if not size.gpus and hint is None:
        raise NotApplicable("not a GPU job, and nothing in its image or command looks like PyTorch")
    why = f"{size.gpus} GPU" if size.gpus else f"'{hint}' in its image or command"
    if jd.shared_memory_malformed is not None:
        raise NotEvaluable(f"linuxParameters.sharedMemorySize is not a number: {jd.shared_memory_malformed} "
                           "(see BAT003)")
    shm = jd.shared_memory_mib
    if shm is None:
        return failed(f"{res.id} ({why}) sets no linuxParameters.sharedMemorySize: /dev/shm stays at Docker's "
                      f"{DOCKER_DEFAULT_SHM_MIB} MB")
    if int(shm) <= DOCKER_DEFAULT_SHM_MIB:
        return failed(f"{res.id} ({why}) sets sharedMemorySize {shm} MiB, no more than Docker's default "
                      f"{DOCKER_DEFAULT_SHM_MIB} MB")
    return passed(f"sharedMemorySize {shm} MiB ({why})")


# -- BAT008 ------------------------------------------------------------------------------------------------------
@check(
    id="BAT008", slug="stuck-job-timeout", title="The job queue cancels jobs stuck in RUNNABLE",
    severity="low", resource="job_queue", permissions=["batch:DescribeJobQueues"],
    rationale="A job that can never be placed (no capacity, a misconfiguration found later) sits in RUNNABLE "
              "silently and blocks the queue; jobStateTimeLimitActions cancels it after a set time with a reason.",
    remediation="Add jobStateTimeLimitActions to the queue: state RUNNABLE, action CANCEL, maxTimeSeconds "
                "(600-86400) and a reason such as CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY.",
)
def stuck_job_timeout(ctx: CheckContext, res: Resource) -> Finding:
    queue = ctx.model.job_queue()
    if queue is None:
        raise NotApplicable(f"job queue {res.id} does not exist (see BAT002)")
    actions = [a for a in queue.time_limit_actions if a.state == "RUNNABLE" and a.action == "CANCEL"]
    if not actions:
        return failed(f"job queue {res.id} has no jobStateTimeLimitActions for RUNNABLE jobs: a job that cannot be "
                      "placed waits forever")
    return passed("; ".join(f"cancels RUNNABLE jobs after {a.max_seconds} s ({a.reason})" for a in actions))


# -- BAT009 ------------------------------------------------------------------------------------------------------
# Service Quotas codes for the EC2 vCPU quotas per instance class (on-demand, spot). The codes come from community
# code and the Service Quotas console (failure-modes.md: unverified against AWS documentation); a wrong code shows
# as an error (NoSuchResourceException), never a pass.
EC2_QUOTAS: dict[str, tuple[str, str, str | None]] = {
    "standard": ("Standard (A, C, D, H, I, M, R, T, Z)", "L-1216C47A", "L-34B43A08"),
    "g": ("G and VT", "L-DB2E81BA", "L-3819A6DF"),
    "p": ("P", "L-417A185B", "L-7212CCBC"),
    "f": ("F", "L-74FC7D96", "L-88CF9481"),
    "inf": ("Inf", "L-1945791B", "L-B5D1601B"),
    "x": ("X", "L-7295265B", "L-E3A00192"),
    "trn": ("Trn", "L-2C3B7624", "L-6B0D517C"),
    "dl": ("DL", "L-6E869C2A", "L-85EED4F7"),
}
FARGATE_QUOTAS = {"FARGATE": ("Fargate On-Demand vCPU", "L-3032A538"), "FARGATE_SPOT": ("Fargate Spot vCPU",
                                                                                         "L-36FBB829")}


def instance_class(family: str) -> str:
    """The vCPU quota class of an instance family (m5 -> standard, g4dn -> g, inf1 -> inf, ...)."""
    f = family.lower()
    for prefix in ("inf", "trn", "dl"):
        if f.startswith(prefix):
            return prefix
    if f.startswith(("g", "vt")):
        return "g"
    if f[:1] in ("p", "f", "x"):
        return f[:1]
    return "standard"


def families(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        fams = bi.SPECIAL_TYPES.get(n) or (bi.OPTIMAL_FAMILIES if n.startswith("default_") else None)
        out.extend(fams if fams else [n.split(".")[0]])
    return list(dict.fromkeys(out))


def quota_value(ctx: CheckContext, service: str, code: str) -> float:
    """The applied quota, else AWS's default for the account (the model's service quota fact)."""
    return ctx.model.service_quota(service, code)


@check(
    id="BAT009", slug="vcpu-quota", title="The vCPU quota covers maxvCpus",
    severity="medium", resource="compute_environment",
    permissions=["batch:DescribeComputeEnvironments", "servicequotas:GetServiceQuota",
                 "servicequotas:GetAWSDefaultServiceQuota"],
    rationale="Batch cannot launch more vCPUs than the account's EC2 (or Fargate) quota for the instance class; "
              "new accounts often have 0 for G and P instances, so GPU jobs wait in RUNNABLE forever.",
    remediation="Request a quota increase in Service Quotas for the instance class (e.g. 'Running On-Demand G and "
                "VT instances') up to the compute environment's maxvCpus, or lower maxvCpus.",
)
def vcpu_quota(ctx: CheckContext, res: Resource) -> Finding:
    ce = _existing_ce(ctx, res)
    if ce.provisioning is None or not ce.managed:  # no computeResources, or UNMANAGED
        raise NotApplicable(f"{res.id} is unmanaged: Batch launches no instances")
    max_vcpus = ce.max_vcpus or 0
    kind = ce.provisioning
    checks: list[tuple[str, str, str]] = []  # (label, service, code)
    if kind in FARGATE_QUOTAS:
        label, code = FARGATE_QUOTAS[kind]
        checks.append((label, "fargate", code))
    else:
        spot = kind == "SPOT"
        classes = sorted({instance_class(f) for f in families(list(ce.instance_types))})
        for cls in classes:
            label, on_demand, spot_code = EC2_QUOTAS[cls]
            chosen = spot_code if spot else on_demand
            if chosen is None:
                raise NotEvaluable(f"no known Spot quota code for {label} instances")
            checks.append((f"All {label} Spot Instance Requests" if spot else f"Running On-Demand {label} instances",
                           "ec2", chosen))
    short: list[str] = []
    ok: list[str] = []
    for label, service, code in checks:
        value = quota_value(ctx, service, code)
        text = f"{label} quota {code} is {value:g} vCPUs"
        (short if value < max_vcpus else ok).append(text)
    if short:
        return failed(f"{res.id} maxvCpus is {max_vcpus}, but " + "; ".join(short))
    return passed(f"{res.id} maxvCpus {max_vcpus} within " + "; ".join(ok))


# -- BAT010 ------------------------------------------------------------------------------------------------------
@check(
    id="BAT010", slug="types-offered-in-zones", title="The allowed instance types are offered in the subnets' zones",
    severity="high", resource="compute_environment",
    permissions=["batch:DescribeComputeEnvironments", "ec2:DescribeInstanceTypes", "ec2:DescribeSubnets",
                 "ec2:DescribeInstanceTypeOfferings"],
    rationale="Batch launches instances only in the Availability Zones of the compute environment's subnets; an "
              "instance type that EC2 does not offer there (new families, GPU and large types reach few zones) is "
              "never launched, so a job that only it can hold waits in RUNNABLE (FM 16).",
    remediation="Add subnets in zones that offer the type (DescribeInstanceTypeOfferings --location-type "
                "availability-zone), or allow instance types offered in the subnets' zones.",
)
def types_offered_in_zones(ctx: CheckContext, res: Resource) -> Finding:
    ce = _existing_ce(ctx, res)
    if ce.fargate or not ce.managed:
        raise NotApplicable(f"{ce.name} is {'Fargate' if ce.fargate else 'unmanaged'}: Batch picks no instance type")
    zones = ctx.model.subnet_zones(ce.subnets)
    missing_subnets = [s for s in ce.subnets if s not in zones]
    if not zones:
        raise NotApplicable(f"none of the subnets of {ce.name} exists (see NET002)")
    types = ctx.model.instance_types(ce.instance_types)
    if not types:
        raise NotEvaluable(f"DescribeInstanceTypes knows none of {', '.join(ce.instance_types)} ({ce.name})")
    offered = ctx.model.offered_types(sorted(set(zones.values())))
    where = {t.name: sorted(z for z, names in offered.items() if t.name in names) for t in types}
    placeable = [t for t in types if where[t.name]]
    shown_zones = ", ".join(f"{z} ({', '.join(s for s, sz in zones.items() if sz == z)})"
                            for z in sorted(set(zones.values())))
    nowhere = sorted(n for n, z in where.items() if not z)
    if not placeable:
        return failed(f"{ce.name}: none of its instance types ({', '.join(sorted(where))}) is offered in the zones of "
                      f"its subnets, {shown_zones}: Batch can launch nothing")
    job = _job_size_or_none(ctx)
    if job is not None:
        registered = ctx.model.registered_memory(ce)
        holds = [t for t in types if Capacity.build(t.name, t.vcpus, t.memory_mib, t.gpus,
                                                    registered.get(t.name)).may_hold(job)]
        if holds and not any(where[t.name] for t in holds):
            return failed(f"{ce.name}: the instance types that can hold the job ({', '.join(t.name for t in holds)}) "
                          f"are offered in none of the zones of its subnets, {shown_zones}: the job would wait in "
                          "RUNNABLE")
    note = f"; not offered there: {', '.join(nowhere)}" if nowhere else ""
    gone = f"; subnets not found: {', '.join(missing_subnets)}" if missing_subnets else ""
    return passed(f"{ce.name}: {len(placeable)} of {len(types)} allowed types offered in {shown_zones}{note}{gone}")


def _job_size_or_none(ctx: CheckContext) -> JobSize | None:
    try:
        job, _, _ = _job(ctx)
    except (NotApplicable, NotEvaluable):
        return None
    return job if job.vcpus or job.memory or job.gpus else None


# -- BAT011 ------------------------------------------------------------------------------------------------------
# The statusReason of a job whose Spot instance was reclaimed ("Host EC2 (instance i-...) terminated.", AWS Batch user
# guide, "Automated job retries"), and the pattern AWS's own example retries on.
SPOT_RECLAIM_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."


def _glob(pattern: str | None, value: str | None) -> bool:
    """evaluateOnExit matching: a pattern may end with one * (API reference, EvaluateOnExit)."""
    if pattern is None:
        return True
    if value is None:
        return pattern == "*"
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def _reclaim_action(job: Job) -> tuple[str, str]:
    """What the job's retry strategy does when its Spot instance is reclaimed: (RETRY or EXIT, why)."""
    attempts = job.retry_attempts or 1
    for i, rule in enumerate(job.retry_rules):
        if (_glob(rule.on_status_reason, SPOT_RECLAIM_REASON) and _glob(rule.on_reason, None)
                and _glob(rule.on_exit_code, None)):
            if rule.action == "EXIT":
                return "EXIT", f"evaluateOnExit[{i}] (onStatusReason {rule.on_status_reason!r}) says EXIT"
            break
    if attempts < 2:
        return "EXIT", (f"retryStrategy.attempts is {attempts}" if job.retry_attempts else "it has no retryStrategy"
                        " (one attempt)")
    return "RETRY", f"retryStrategy.attempts {attempts}" + (
        f", evaluateOnExit {len(job.retry_rules)} rules" if job.retry_rules else "")


@check(
    id="BAT011", slug="spot-interruption", title="A job on Spot survives a reclaimed instance",
    severity="medium", resource="job",
    permissions=["batch:DescribeJobQueues", "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions"],
    rationale="EC2 reclaims Spot instances with two minutes' notice; the job on it fails ('Host EC2 ... "
              "terminated') unless its retry strategy retries it, and a multi-node parallel job cannot run on Spot "
              "at all (AWS Batch user guide, 'Compute environment considerations for MNP').",
    remediation="Give the job definition retryStrategy.attempts of 2 or more (with evaluateOnExit RETRY on "
                "onStatusReason 'Host EC2*'); run multi-node parallel jobs on an On-Demand (EC2) compute environment.",
)
def spot_interruption(ctx: CheckContext, res: Resource) -> Finding:
    ces = list(ctx.model.compute_environments())
    spot = [ce for ce in ces if ce.spot]
    if not spot:
        raise NotApplicable("no compute environment of the scope uses Spot capacity")
    job = ctx.model.job()
    if job is None:
        raise NotApplicable("no job definition to judge (see BAT003)")
    label = f"job definition {job.name}" + (f":{job.revision}" if job.revision is not None else "")
    names = ", ".join(f"{ce.name} ({ce.provisioning})" for ce in spot)
    if job.multi_node:
        return failed(f"{label} is a multi-node parallel job, which Batch does not run on Spot compute environments "
                      f"({names}): run it on an EC2 (On-Demand) compute environment")
    action, why = _reclaim_action(job)
    if action == "EXIT":
        return failed(f"{label} runs on Spot ({names}), and {why}: a reclaimed instance fails the job (set "
                      "retryStrategy.attempts >= 2 and retry on onStatusReason 'Host EC2*')")
    return passed(f"{label} on Spot ({names}): a reclaimed instance is retried ({why})")


# -- BAT012 ------------------------------------------------------------------------------------------------------
_ECS_CLUSTER = re.compile(r"ECS_CLUSTER\s*=")
_OVERWRITE_CONFIG = re.compile(r"(?<![>])>\s*/etc/ecs/ecs\.config")


def user_data_problems(text: str) -> list[str]:
    """What in a launch template's user data breaks Batch: not a MIME multi-part archive (Batch merges its own part
    into it), ECS_CLUSTER set (the instance joins another cluster than Batch's), /etc/ecs/ecs.config overwritten."""
    problems: list[str] = []
    message = email.message_from_string(text.lstrip())
    if not message.is_multipart() or message.get_content_type() != "multipart/mixed":
        problems.append("it is not a MIME multi-part archive (Content-Type: multipart/mixed with a boundary), which "
                        "Batch requires to merge its own user data")
    if _ECS_CLUSTER.search(text):
        problems.append("it sets ECS_CLUSTER, so instances join that cluster instead of the one Batch made for the "
                        "compute environment")
    if _OVERWRITE_CONFIG.search(text):
        problems.append("it overwrites /etc/ecs/ecs.config (use >> to append), erasing the ECS_CLUSTER Batch wrote")
    return problems


@check(
    id="BAT012", slug="launch-template-user-data", title="The launch template's user data lets instances join Batch",
    severity="high", resource="compute_environment",
    permissions=["batch:DescribeComputeEnvironments", "ec2:DescribeLaunchTemplateVersions"],
    rationale="Batch merges its own user data (which joins the instance to the compute environment's ECS cluster) "
              "with the launch template's: user data that is not MIME multi-part makes the compute environment "
              "INVALID, and user data that sets or overwrites ECS_CLUSTER sends the instances to another cluster, "
              "so jobs wait in RUNNABLE.",
    remediation="Wrap the user data in a MIME multi-part archive (Content-Type: multipart/mixed; "
                "boundary=\"==BOUNDARY==\"), append to /etc/ecs/ecs.config with >> and never set ECS_CLUSTER.",
)
def launch_template_user_data(ctx: CheckContext, res: Resource) -> Finding:
    ce = _existing_ce(ctx, res)
    if ce.eks:
        raise NotApplicable(f"{ce.name} runs on Amazon EKS: its nodes join the EKS cluster, not an ECS one")
    refs = templates_of(ce)
    if not refs or ce.fargate:
        raise NotApplicable(f"{ce.name} uses no launch template")
    problems: list[str] = []
    seen: list[str] = []
    for ref in refs:
        version = ctx.model.launch_template_version(ref)
        name = f"launch template {ref.id or ref.name} version {ref.version}"
        if version is None:
            raise NotEvaluable(f"{ce.name}: {name} does not exist, so its user data cannot be read")
        if version.user_data is None:
            seen.append(f"{name}: no user data")
            continue
        found = user_data_problems(version.user_data)
        if found:
            problems.append(f"{name} (version {version.version}): " + "; ".join(found))
        else:
            seen.append(f"{name}: MIME multi-part, leaves ECS_CLUSTER to Batch")
    if problems:
        return failed(f"{ce.name}: " + "; ".join(problems))
    return passed(f"{ce.name}: " + "; ".join(seen))
