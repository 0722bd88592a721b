"""The canary: submit one short job to the queue with the job definition, wait for it with a bound, and terminate it
(only it) on timeout or interruption. The only place that sends batch:SubmitJob and batch:TerminateJob."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_mlbatch.aws.inventory import Inventory, classify

# What the canary may send besides reads (declared by JOB002; the guard lets nothing else through).
CALLS = ("batch:SubmitJob", "batch:TerminateJob")
# Tagging on submit is authorised as batch:TagResource too.
PERMISSIONS = ("batch:SubmitJob", "batch:TerminateJob", "batch:TagResource")
FINAL = ("SUCCEEDED", "FAILED")
TAG = "pytest-mlbatch:canary"
DEFAULT_COMMAND = ("true",)  # a no-op: the image is still pulled and the container started
DEFAULT_TIMEOUT_S = 600
POLL_S = 2.0


@dataclass(frozen=True)
class CanaryRequest:
    """What to submit: queue, job definition (ARN or name:revision), command, size, bounds, tags."""

    queue: str
    job_definition: str
    command: tuple[str, ...] = DEFAULT_COMMAND
    vcpus: float | None = None
    memory: int | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    tags: dict[str, str] = field(default_factory=dict)
    use_resource_requirements: bool = True  # False: the job definition uses the deprecated vcpus/memory keys

    @property
    def name(self) -> str:
        return f"mlbatch-canary-{self.run_id}"

    def submit_params(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {"command": list(self.command)}
        if self.use_resource_requirements:
            reqs = []
            if self.vcpus is not None:
                reqs.append({"type": "VCPU", "value": f"{self.vcpus:g}"})
            if self.memory is not None:
                reqs.append({"type": "MEMORY", "value": str(self.memory)})
            if reqs:
                overrides["resourceRequirements"] = reqs
        else:
            if self.vcpus is not None:
                overrides["vcpus"] = max(1, int(self.vcpus))
            if self.memory is not None:
                overrides["memory"] = self.memory
        return {
            "jobName": self.name,
            "jobQueue": self.queue,
            "jobDefinition": self.job_definition,
            "containerOverrides": overrides,
            # Batch's minimum is 60 s; the wait bound below is what the run waits
            "timeout": {"attemptDurationSeconds": max(60, self.timeout_s)},
            "tags": {**self.tags, TAG: self.run_id},
            "propagateTags": False,
        }

    def describe(self) -> str:
        size = ", ".join(p for p in (f"{self.vcpus:g} vCPU" if self.vcpus is not None else "",
                                     f"{self.memory} MiB" if self.memory is not None else "") if p)
        return (f"submit job {self.name} to {self.queue} with {self.job_definition}, command {list(self.command)}"
                f"{', ' + size if size else ''}; wait at most {self.timeout_s} s, then terminate it")


@dataclass
class CanaryRun:
    """What happened: the job id (None if submitting failed), its last description while waiting (what a diagnosis
    reads), its description after a termination, time taken, whether it was terminated, and why not finished."""

    job_id: str | None = None
    job: dict[str, Any] | None = None
    after_termination: dict[str, Any] | None = None
    seconds: float = 0.0
    terminated: bool = False
    timed_out: bool = False
    terminate_error: str | None = None

    @property
    def status(self) -> str:
        return str((self.job or {}).get("status", "UNKNOWN"))


def run_canary(inventory: Inventory, request: CanaryRequest, *, journal: Callable[[str, str, bool, Any], None],
               stop: threading.Event | None = None, poll_s: float = POLL_S,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> CanaryRun:
    """Submit, poll DescribeJobs until SUCCEEDED/FAILED or `timeout_s`, and terminate the job unless it finished:
    on timeout, when `stop` is set (the run is ending: Ctrl-C while the canary waits in another thread), or on
    Ctrl-C or any error while waiting here (then raised). `journal(call, job_id, ok, detail)` records the
    submission and the termination as they happen. Raises AwsError if the submission fails."""
    client = inventory.client("batch")
    guard = inventory.guard
    params = request.submit_params()
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
            run.job = found[0] if found else run.job
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
        run.after_termination = found[0] if found else None
    except Exception as exc:  # the termination was sent; what it did is read by the next run
        run.terminate_error = run.terminate_error or str(classify("batch:DescribeJobs", exc))

