"""Submitted jobs as the JOB checks see them: the scaling evidence of a RUNNABLE job, and the canary as plain values
(what to submit, what happened; aws/canary.py submits it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pytest_mlbatch.analysis.jobreasons import JobFacts

# Keys the scope of a run target carries in `discovered` (aws/jobs.py sets them, checks/job.py's resources read them).
SUBMITTED_JOB = "submitted_job"  # the DescribeJobs document of the job the target is scoped to (None: unread)
SUBMITTED_JOB_ID = "submitted_job_id"  # the id it was asked by
CANARY = "canary"  # True when --mlbatch-canary asked for a canary on this target

# What the canary may send besides reads (declared by JOB002; the guard lets nothing else through). Tagging on submit
# is authorised as batch:TagResource too.
CANARY_PERMISSIONS = ("batch:SubmitJob", "batch:TerminateJob", "batch:TagResource")
CANARY_TAG = "pytest-mlbatch:canary"
DEFAULT_COMMAND = ("true",)  # a no-op: the image is still pulled and the container started
DEFAULT_TIMEOUT_S = 600


@dataclass
class Evidence:
    """What AWS shows about why a job waits: facts (said as found), problems (with the checks that show them)."""

    facts: list[str] = field(default_factory=list)
    problems: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # reads that failed: the evidence is incomplete


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

    def describe(self) -> str:
        size = ", ".join(p for p in (f"{self.vcpus:g} vCPU" if self.vcpus is not None else "",
                                     f"{self.memory} MiB" if self.memory is not None else "") if p)
        return (f"submit job {self.name} to {self.queue} with {self.job_definition}, command {list(self.command)}"
                f"{', ' + size if size else ''}; wait at most {self.timeout_s} s, then terminate it")


@dataclass
class CanaryRun:
    """What happened: the job id (None if submitting failed), its last state while waiting (what a diagnosis reads),
    its state after a termination, time taken, whether it was terminated, and why not finished."""

    job_id: str | None = None
    job: JobFacts | None = None
    after_termination: JobFacts | None = None
    seconds: float = 0.0
    terminated: bool = False
    timed_out: bool = False
    terminate_error: str | None = None

    @property
    def status(self) -> str:
        return self.job.status if self.job is not None else "UNKNOWN"


class CanaryRefused(Exception):
    """Batch refused the canary's submission itself (e.g. a bad override): a finding, not an error."""
