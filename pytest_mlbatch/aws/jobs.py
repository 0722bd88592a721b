"""Submitted jobs: read one (DescribeJobs), scope a target to it (queue, compute environments, job definition
revision, container overrides), and read the scaling evidence of a RUNNABLE job's compute environments
(compute environment state, Auto Scaling activities of its group, ECS container instances and what they have left).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from pytest_mlbatch.analysis.jobreasons import JobFacts, activity_cause, job_facts
from pytest_mlbatch.aws import batchinfo as bi
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.target import Target, TargetSpec
from pytest_mlbatch.config import JobSize, Settings
from pytest_mlbatch.model.scope import Scope
from pytest_mlbatch.model.submitted import CANARY, SUBMITTED_JOB, SUBMITTED_JOB_ID, Evidence

# Batch's Auto Scaling groups are named after the compute environment: "<name>-asg-<uuid>" (an observed
# convention, not a documented API: a group not named so is not found, and the evidence says so).
ASG_SUFFIX = "-asg-"


def describe_job(inventory: Inventory, job_id: str) -> dict[str, Any] | None:
    """One job by id (also `id:N` array children and `id#N` multi-node nodes) or ARN; None if Batch has none."""
    found = inventory.call("batch", "describe_jobs", jobs=[job_id]).get("jobs", [])
    return next((j for j in found if job_id in (j.get("jobId"), j.get("jobArn"))), found[0] if found else None)


def settings_for_job(settings: Settings, job: dict[str, Any]) -> Settings:
    """The config, pointed at the job's queue and the job definition revision it was submitted with: the
    compute environments and the image come from them (discovery), not from the config."""
    return dataclasses.replace(settings, job_queue=bi.arn_name(str(job.get("jobQueue") or "")) or settings.job_queue,
                               job_definition=str(job.get("jobDefinition") or "") or settings.job_definition,
                               compute_environment=None, image_uri=None, job_definition_file=None, job=None)


class RunTarget(Target):
    """A target of this run. Scoped to one submitted job (`job_id`) its queue and job definition are the job's;
    with `canary` its scope says a canary was asked for. Both land in `scope.discovered`."""

    def __init__(self, spec: TargetSpec, settings: Settings, *, job_id: str | None = None,
                 canary: bool = False) -> None:
        super().__init__(spec, settings)
        self.job_id = job_id
        self.canary = canary
        self._job_lock = threading.Lock()

    def scope(self) -> Scope:
        with self._job_lock:
            if self._scope is not None:
                return self._scope
            job: dict[str, Any] | None = None
            problem: tuple[str, str, str] | None = None
            if self.job_id is not None:
                job, problem = self._read_job()
                if job is not None:
                    self.settings = settings_for_job(self.settings, job)
            scope = super().scope()
            if self.job_id is not None:
                scope.discovered[SUBMITTED_JOB_ID] = self.job_id
                scope.discovered[SUBMITTED_JOB] = job
                if problem is not None:
                    scope.problems.append(problem)
                if job is not None:
                    _apply_overrides(scope, job)
            scope.discovered[CANARY] = self.canary
            return scope

    def _read_job(self) -> tuple[dict[str, Any] | None, tuple[str, str, str] | None]:
        assert self.job_id is not None
        if not self.region:
            return None, (SUBMITTED_JOB, "no AWS region resolved (see ENV002)", "error")
        try:
            job = describe_job(self.inventory, self.job_id.rsplit("/", 1)[-1])  # an ARN: DescribeJobs takes ids
        except AwsError as exc:
            return None, (SUBMITTED_JOB, f"could not read job {self.job_id}: {exc}", "error")
        if job is None:
            return None, (SUBMITTED_JOB, f"job {self.job_id} does not exist in {self.region} (Batch keeps "
                          "finished jobs for about 7 days)", "failed")
        return job, None


def _apply_overrides(scope: Scope, job: dict[str, Any]) -> None:
    """The job's container overrides (its effective vCPUs, memory, GPUs) replace the job definition's size."""
    facts = job_facts(job)
    if facts.vcpus is None and facts.memory is None and facts.gpus is None:
        return
    size = JobSize(facts.vcpus, facts.memory, facts.gpus)
    if scope.job != size:
        scope.discovered["job_definition_size"] = scope.job
        scope.job = size
        scope.sources["job"] = f"submitted job {facts.job_id} (its container, overrides included)"


# -- scaling evidence of a RUNNABLE job ------------------------------------------------------------------------
def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def _resource(values: list[dict[str, Any]], name: str) -> float:
    for v in values or []:
        if v.get("name") == name:
            return float(v.get("integerValue") or v.get("doubleValue") or 0)
    return 0.0


def container_instances(inventory: Inventory, cluster: str) -> list[dict[str, Any]]:
    return bi.container_instances(inventory, cluster)


def batch_groups(inventory: Inventory, ce_name: str) -> list[dict[str, Any]]:
    """The Auto Scaling groups Batch made for a compute environment (named "<ce>-asg-<uuid>")."""
    groups: list[dict[str, Any]] = inventory.paginate("autoscaling", "describe_auto_scaling_groups",
                                                      "AutoScalingGroups")
    return [g for g in groups if str(g.get("AutoScalingGroupName", "")).startswith(ce_name + ASG_SUFFIX)]


def runnable_evidence(inventory: Inventory, ces: list[dict[str, Any]], facts: JobFacts) -> Evidence:
    """For each compute environment of the queue: its state, its group's failed scaling activities, the container
    instances registered in its cluster and whether any can hold the job."""
    ev = Evidence()
    need_cpu = (facts.vcpus or 0) * 1024
    need_mem = facts.memory or 0
    for ce in ces:
        name = str(ce.get("computeEnvironmentName", "?"))
        cr = ce.get("computeResources") or {}
        state = f"{ce.get('status', '?')}/{ce.get('state', '?')}"
        if ce.get("status") != "VALID" or ce.get("state") != "ENABLED":
            ev.problems.append((f"compute environment {name} is {state}: {ce.get('statusReason') or 'no reason'}",
                                ("BAT001",)))
            continue
        scaling = f"desiredvCpus {cr.get('desiredvCpus', '?')} of maxvCpus {cr.get('maxvCpus', '?')}"
        ev.facts.append(f"compute environment {name} is {state}, {scaling}")
        if bi.is_fargate(ce):
            continue
        launched = _groups(inventory, name, ev)
        cluster = ce.get("ecsClusterArn")
        if not cluster:
            ev.facts.append(f"{name}: no ECS cluster in its description")
            continue
        try:
            instances = container_instances(inventory, str(cluster))
        except AwsError as exc:
            ev.unread.append(str(exc))
            continue
        active = [i for i in instances if i.get("status") == "ACTIVE" and i.get("agentConnected", True)]
        ev.facts.append(f"{name}: {len(instances)} container instance(s) registered in {bi.arn_name(str(cluster))}"
                        f", {len(active)} active with a connected agent")
        if launched and not instances:
            ev.problems.append((f"{name}: its Auto Scaling group has {launched} instance(s) in service but none "
                                "joined the ECS cluster (instance role, instance profile, network path to ECS, or "
                                "AMI/user data)", ("IAM002", "IAM003", "NET003", "NET006", "SG004", "BAT012")))
        if active and (need_cpu or need_mem):
            fits = [i for i in active if _resource(i.get("remainingResources", []), "CPU") >= need_cpu
                    and _resource(i.get("remainingResources", []), "MEMORY") >= need_mem]
            big = [i for i in active if _resource(i.get("registeredResources", []), "CPU") >= need_cpu
                   and _resource(i.get("registeredResources", []), "MEMORY") >= need_mem]
            most = max(_resource(i.get("registeredResources", []), "MEMORY") for i in active)
            want = f"{facts.vcpus:g} vCPU / {_gib(need_mem)}" if facts.vcpus else _gib(need_mem)
            if not big:
                ev.problems.append((f"{name}: no registered instance can hold the job ({want}); the largest "
                                    f"registers {_gib(most)}", ("BAT004",)))
            elif not fits:
                ev.facts.append(f"{name}: instances that could hold the job ({want}) are busy (no remaining "
                                "capacity): it waits for them or for scaling")
    return ev


def _groups(inventory: Inventory, name: str, ev: Evidence) -> int:
    """Read the compute environment's Auto Scaling groups into the evidence; returns their in-service instances."""
    try:
        groups = batch_groups(inventory, name)
    except AwsError as exc:
        ev.unread.append(str(exc))
        return 0
    if not groups:
        ev.facts.append(f"{name}: no Auto Scaling group named {name}{ASG_SUFFIX}* (none launched yet, Spot "
                        "Fleet, or another naming)")
        return 0
    in_service = 0
    for g in groups:
        gname = str(g["AutoScalingGroupName"])
        members = [i for i in g.get("Instances", []) if i.get("LifecycleState") == "InService"]
        in_service += len(members)
        ev.facts.append(f"Auto Scaling group {gname}: desired {g.get('DesiredCapacity', '?')}, "
                        f"{len(members)} in service")
        try:
            activities = inventory.paginate("autoscaling", "describe_scaling_activities", "Activities",
                                            AutoScalingGroupName=gname)
        except AwsError as exc:
            ev.unread.append(str(exc))
            continue
        failed = [a for a in activities if a.get("StatusCode") in ("Failed", "Cancelled")]
        for a in failed[:3]:
            message = str(a.get("StatusMessage") or a.get("Description") or "")
            meaning, checks = activity_cause(message)
            ev.problems.append((f"{gname}: scaling activity {a.get('StatusCode')}: {message[:300]} — {meaning}",
                                checks))
    return in_service
