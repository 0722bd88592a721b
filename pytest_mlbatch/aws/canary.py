"""The canary: submit one short job to the queue with the job definition, wait for it with a bound, and terminate it
(only it) on timeout or interruption. The only place that sends batch:SubmitJob and batch:TerminateJob."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_mlbatch.analysis.jobreasons import job_facts
from pytest_mlbatch.aws.inventory import Inventory, classify
from pytest_mlbatch.model.submitted import CANARY_PERMISSIONS, CANARY_TAG, CanaryRequest, CanaryRun

# What the canary may send besides reads (declared by JOB002; the guard lets nothing else through).
CALLS = ("batch:SubmitJob", "batch:TerminateJob")
PERMISSIONS = CANARY_PERMISSIONS
FINAL = ("SUCCEEDED", "FAILED")
TAG = CANARY_TAG
POLL_S = 2.0


def submit_params(request: CanaryRequest) -> dict[str, Any]:
    """The request as batch:SubmitJob parameters."""
    overrides: dict[str, Any] = {"command": list(request.command)}
    if request.use_resource_requirements:
        reqs = []
        if request.vcpus is not None:
            reqs.append({"type": "VCPU", "value": f"{request.vcpus:g}"})
        if request.memory is not None:
            reqs.append({"type": "MEMORY", "value": str(request.memory)})
        if reqs:
            overrides["resourceRequirements"] = reqs
    else:
        if request.vcpus is not None:
            overrides["vcpus"] = max(1, int(request.vcpus))
        if request.memory is not None:
            overrides["memory"] = request.memory
    return {
        "jobName": request.name,
        "jobQueue": request.queue,
        "jobDefinition": request.job_definition,
        "containerOverrides": overrides,
        # Batch's minimum is 60 s; the wait bound below is what the run waits
        "timeout": {"attemptDurationSeconds": max(60, request.timeout_s)},
        "tags": {**request.tags, TAG: request.run_id},
        "propagateTags": False,
    }


def run_canary(inventory: Inventory, request: CanaryRequest, *, journal: Callable[[str, str, bool, Any], None],
               stop: threading.Event | None = None, poll_s: float = POLL_S,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> CanaryRun:
    """Submit, poll DescribeJobs until SUCCEEDED/FAILED or `timeout_s`, and terminate the job unless it finished:
    on timeout, when `stop` is set (the run is ending: Ctrl-C while the canary waits in another thread), or on
    Ctrl-C or any error while waiting here (then raised). `journal(call, job_id, ok, detail)` records the
    submission and the termination as they happen. Raises AwsError if the submission fails."""
    client = inventory.client("batch")
    guard = inventory.guard
    params = submit_params(request)
    run = CanaryRun()
    start = clock()
    with guard.permit("batch:SubmitJob"):
        try:
            answer = client.submit_job(**params)
        except Exception as exc:
            err = classify("batch:SubmitJob", exc)
            journal("batch:SubmitJob", request.name, False, str(err))
            raise err from None
    run.job_id = str(answer["jobId"])
    journal("batch:SubmitJob", run.job_id, True, {"jobName": request.name, "jobQueue": request.queue})
    finished = False
    try:
        while True:
            try:
                found = client.describe_jobs(jobs=[run.job_id]).get("jobs", [])
            except Exception as exc:
                raise classify("batch:DescribeJobs", exc) from None
            run.job = job_facts(found[0]) if found else run.job
            if run.status in FINAL:
                finished = True
                break
            if clock() - start >= request.timeout_s:
                run.timed_out = True
                break
            if stop is None:
                sleep(poll_s)
            elif stop.wait(poll_s) or stop.is_set():
                break
    finally:
        run.seconds = clock() - start
        if not finished:
            _terminate(inventory, run, journal, "timed out" if run.timed_out else "interrupted")
    return run


def _terminate(inventory: Inventory, run: CanaryRun, journal: Callable[[str, str, bool, Any], None],
               why: str) -> None:
    """Terminate the job this canary submitted, and nothing else (the guard checks the id)."""
    assert run.job_id is not None
    job_id = run.job_id
    client = inventory.client("batch")
    with inventory.guard.permit("batch:TerminateJob", lambda p: p.get("jobId") == job_id):
        try:
            client.terminate_job(jobId=job_id, reason=f"pytest-mlbatch canary {why}")
            run.terminated = True
            journal("batch:TerminateJob", job_id, True, why)
        except Exception as exc:
            err = classify("batch:TerminateJob", exc)
            run.terminate_error = str(err)
            journal("batch:TerminateJob", job_id, False, str(err))
    try:
        found = client.describe_jobs(jobs=[job_id]).get("jobs", [])
        run.after_termination = job_facts(found[0]) if found else None
    except Exception as exc:  # the termination was sent; what it did is read by the next run
        run.terminate_error = run.terminate_error or str(classify("batch:DescribeJobs", exc))

