"""JOB checks: why a submitted job is where it is (--mlbatch-job), and the opt-in canary job (--mlbatch-canary)."""

from __future__ import annotations

import time

from pytest_mlbatch.analysis.batchdocs import arn_name
from pytest_mlbatch.analysis.jobreasons import JobFacts, causes, verdict
from pytest_mlbatch.engine.context import CheckContext, FixPlan
from pytest_mlbatch.engine.registry import REGISTRY, check
from pytest_mlbatch.engine.runner import evaluate
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Outcome, Resource, failed, passed
from pytest_mlbatch.model.resources import provider
from pytest_mlbatch.model.scope import Scope
from pytest_mlbatch.model.submitted import (
    CANARY,
    CANARY_PERMISSIONS,
    CANARY_TAG,
    SUBMITTED_JOB_ID,
    CanaryRefused,
    CanaryRequest,
    Evidence,
)

# A RUNNABLE job with no reason from AWS and no evidence found is "waiting its turn" this long, then "stuck".
STUCK_AFTER_S = 600
# When a job failed before its command ran and AWS gives no reason, these are the usual suspects (image, pull
# permissions and path): the diagnosis runs them and names those that fail.
START_SUSPECTS = ("IMG001", "IMG002", "IMG004", "IMG005", "IMG006", "IAM004", "NET003", "SG004")


@provider("submitted_job")
def _submitted_job(scope: Scope, label: str) -> list[Resource] | str:
    job_id = scope.discovered.get(SUBMITTED_JOB_ID)
    return [Resource("submitted_job", str(job_id))] if job_id else []


@provider("canary")
def _canary(scope: Scope, label: str) -> list[Resource] | str:
    if not scope.discovered.get(CANARY):
        return []
    if not (scope.job_queue and scope.job_definition):
        return "the canary needs a job queue and a job definition: set batch.job_queue and batch.job_definition"
    return [Resource("canary", arn_name(scope.job_queue))]


# -- the diagnosis -----------------------------------------------------------------------------------------------
def _age(facts: JobFacts) -> str:
    if facts.created_at is None:
        return ""
    seconds = max(0.0, time.time() - facts.created_at)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _state(facts: JobFacts) -> str:
    parts = [facts.status]
    age = _age(facts)
    if age:
        parts.append(f"(submitted {age} ago)")
    if facts.status_reason:
        parts.append(f"statusReason '{facts.status_reason}'")
    reasons = [r for r in facts.container_reasons if r != facts.status_reason]
    if reasons:
        parts.append("container reason '" + "'; '".join(reasons[:3]) + "'")
    if facts.exit_code is not None:
        parts.append(f"exit code {facts.exit_code}")
    if facts.attempts:
        parts.append(f"{facts.attempts} attempt{'s' if facts.attempts != 1 else ''}")
    if facts.children:
        parts.append("array children " + ", ".join(f"{n} {s}" for s, n in sorted(facts.children.items())))
    if facts.nodes:
        parts.append(f"{facts.nodes} nodes")
    if facts.log_stream:
        parts.append(f"log stream {facts.log_stream}")
    return " ".join(parts[:1]) + (" " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def _run_checks(ctx: CheckContext, ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Evaluate these checks on this target (answers come from the shared inventory): (failures, errors) as
    'ID resource: message'."""
    bad: list[str] = []
    unknown: list[str] = []
    for check_id in ids:
        if check_id not in REGISTRY or check_id.startswith("JOB"):
            continue
        other = REGISTRY.get(check_id)
        sub = CheckContext(ctx.runtime, ctx.target, other)
        for res in sub.resources(other.resource_kind):
            finding = evaluate(sub, res)
            if finding.outcome is Outcome.FAILED:
                bad.append(f"{check_id} {res.id}: {_short(finding.message)}")
            elif finding.outcome is Outcome.ERROR:
                unknown.append(f"{check_id} {res.id} could not be evaluated: {_short(finding.message)}")
    return _capped(bad), _capped(unknown)


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _capped(lines: list[str], limit: int = 8) -> list[str]:
    """At most `limit` findings quoted (each check's own item has the rest)."""
    return lines if len(lines) <= limit else [*lines[:limit], f"(+{len(lines) - limit} more: see their items)"]


def _retry_facts(ctx: CheckContext) -> str:
    """For a lost host: is the queue on Spot, and does the job definition retry (FM 45)?"""
    spot = [ce.name for ce in ctx.model.compute_environments() if ce.spot]
    job, _ = ctx.model.current_job_definition()
    attempts = job.retry_attempts if job is not None and job.retry_attempts is not None else 1
    where = f"Spot compute environment(s) {', '.join(spot)}" if spot else "no Spot compute environment in the queue"
    return (f"{where}; the job definition retries {attempts} time(s)"
            + (" — with attempts 1 a lost host fails the job" if attempts < 2 else ""))


def diagnose(ctx: CheckContext, facts: JobFacts) -> Finding:
    """The job's state and reasons, their causes, the checks that show them, what to do; RUNNABLE jobs also get
    the scaling evidence of the queue's compute environments."""
    found = causes(facts)
    parts = [_state(facts)]
    evidence = Evidence()
    if facts.status == "RUNNABLE":
        evidence = ctx.model.runnable_evidence(facts)
    ids: list[str] = [i for c in found for i in c.checks]
    ids += [i for _, checks in evidence.problems for i in checks]
    if facts.status == "FAILED" and not found and facts.exit_code is None:  # no container ever exited: at start
        ids += START_SUSPECTS
    bad, unknown = _run_checks(ctx, tuple(dict.fromkeys(ids)))
    for cause in found:
        parts.append(f"cause ({cause.kind}): {cause.line()}")
        if cause.code == "host-terminated":
            parts.append(_retry_facts(ctx))
    if evidence.problems:
        parts.append("evidence: " + "; ".join(p for p, _ in evidence.problems))
    if evidence.facts:
        parts.append("seen: " + "; ".join(evidence.facts))
    if bad:
        parts.append("checks that fail: " + " | ".join(bad))
    if unknown:
        parts.append("not evaluated: " + " | ".join(unknown))
    if evidence.unread:
        parts.append("evidence not read: " + "; ".join(evidence.unread))
    message = ". ".join(parts)
    status = facts.status
    if status == "SUCCEEDED":
        took = (facts.stopped_at - facts.started_at) if facts.stopped_at and facts.started_at else None
        return passed(f"SUCCEEDED{f' in {took:.0f} s' if took is not None else ''}: {message}")
    if status == "FAILED":
        kind = verdict(found)
        if kind == "unknown" and bad:
            kind = "infrastructure"
        if not found and not bad and not unknown:
            message += (". No documented reason matched and no related check fails: read the log stream; what "
                        "this tool does not model (the job's own code, the AMI, user data) may be the cause")
        return failed(f"failed ({kind}): {message}")
    if status == "RUNNABLE":
        if found or evidence.problems or bad:
            return failed(f"stuck ({verdict(found) if found else 'infrastructure'}): {message}")
        if evidence.unread or unknown:
            raise NotEvaluable(f"RUNNABLE and the evidence could not be read: {message}")
        waited = time.time() - facts.created_at if facts.created_at else 0.0
        if waited >= STUCK_AFTER_S:
            return failed(f"stuck (unknown): {message}. AWS gives no reason and no evidence was found after "
                          f"{STUCK_AFTER_S // 60} min: jobs ahead of it, fair-share scheduling, or what this tool "
                          "does not model (custom AMI, user data)")
        return passed(f"waiting its turn: {message}. Nothing blocks it yet (it counts as stuck after "
                      f"{STUCK_AFTER_S // 60} min with no reason)")
    return passed(f"in progress: {message}")


@check(
    id="JOB001", slug="job-diagnosis", title="Why a submitted job is in its state (--mlbatch-job)",
    severity="critical", resource="submitted_job",
    permissions=["batch:DescribeJobs", "ecs:ListContainerInstances", "ecs:DescribeContainerInstances",
                 "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities"],
    rationale="AWS explains a stuck or failed job only after the fact (statusReason codes, container reasons, "
              "scaling activities); the preflight knows everything the job depends on and names the cause",
    remediation="Do what the diagnosis says for its cause, then re-run the preflight (and the job).",
)
def job_diagnosis(ctx: CheckContext, resource: Resource) -> Finding:
    facts, missing = ctx.model.submitted_job()
    if facts is None:
        return failed(missing)
    return diagnose(ctx, facts)


# -- the canary --------------------------------------------------------------------------------------------------
def _request(ctx: CheckContext, resource: Resource) -> CanaryRequest:
    scope = ctx.scope
    if not scope.job_queue or not scope.job_definition:
        raise NotApplicable("the canary needs batch.job_queue and batch.job_definition")
    # discovery read the job definition (or says why not); the model answers from that same read
    job = ctx.model.current_job_definition()[0] if scope.discovered.get("job_definition") is not None else None
    if job is None:
        why = "; ".join(p[1] for p in scope.problems if p[0] in ("job_definition", "discovery"))
        raise NotApplicable(f"the job definition could not be read ({why or 'see BAT003'})")
    if job.multi_node:
        raise NotApplicable("the canary runs container job definitions; this one is multi-node (not modelled)")
    if job.eks or job.ecs_properties:
        raise NotApplicable("the canary runs ECS container job definitions (eksProperties/ecsProperties are not "
                            "modelled)")
    config = ctx.settings.canary
    fargate = "FARGATE" in job.platform_capabilities()
    return CanaryRequest(
        queue=scope.job_queue,
        job_definition=job.arn or scope.job_definition,
        command=tuple(config.command),
        vcpus=config.vcpus if config.vcpus is not None else (0.25 if fargate else 1),
        memory=config.memory if config.memory is not None else 512,
        timeout_s=config.timeout,
        tags={**ctx.settings.fix_tags, "pytest-mlbatch:managed": "true"},
        use_resource_requirements=job.uses_resource_requirements() or fargate,
    )


@check(
    id="JOB002", slug="canary", title="A short canary job runs to SUCCEEDED on the queue (--mlbatch-canary)",
    severity="critical", resource="canary", permissions=["batch:DescribeJobs"], run_permissions=CANARY_PERMISSIONS,
    rationale="Only a real job proves the whole path (scaling, the instance joining ECS, the pull, the start); "
              "the canary is opt-in, bounded, tagged with the run, and terminated if it does not finish in time",
    remediation="Follow the canary's diagnosis; raise canary.timeout if the queue is only slow to scale.",
)
def canary(ctx: CheckContext, resource: Resource) -> Finding:
    request = _request(ctx, resource)
    try:
        run = ctx.run_canary(request, resource)
    except CanaryRefused as exc:  # Batch refused the submission itself (e.g. a bad override): a finding
        return failed(f"Batch refused the canary: {exc}")
    where = f"canary job {run.job_id} ({request.name}) on {resource.id}"
    if run.status == "SUCCEEDED":
        return passed(f"{where} SUCCEEDED in {run.seconds:.0f} s")
    note = ""
    if run.timed_out or run.terminated or run.terminate_error:
        note = (f" did not finish within {request.timeout_s} s (canary.timeout)" if run.timed_out
                else " was still running when the run ended")
        note += "; terminated it" if run.terminated else f"; terminating it failed: {run.terminate_error}"
    finding = diagnose(ctx, run.job or JobFacts(str(run.job_id), status=run.status))
    return failed(f"{where}{note}: {finding.message}")


def _plan(ctx: CheckContext, resource: Resource) -> FixPlan:
    request = _request(ctx, resource)
    return FixPlan(resource.id, request.describe(),
                   calls=["batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob"],
                   permissions=[*CANARY_PERMISSIONS, "batch:DescribeJobs"], apply=lambda fctx: None,
                   notes=["batch:TerminateJob only for this canary's own job, and only if it has not finished "
                          "in time (or the run is interrupted)",
                          f"tags {CANARY_TAG}={request.run_id} and pytest-mlbatch:managed=true name the run"])


canary.planner = _plan
