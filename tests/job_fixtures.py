"""Arrange submitted jobs on the moto server: Batch with or without Docker, held job states, and job states and
reasons moto never produces (patched into the in-process backend: the server runs in this process)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

# Imported now, at collection: a module first imported by the server thread inside a pytester run would be dropped
# after it, and a later patch would land on a copy the server does not use.
import moto.autoscaling.responses
import moto.batch.models
from backends import Aws
from bat_fixtures import patched_backend


def moto_api(aws: Aws, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(f"{aws.endpoint}/moto-api/{path}", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=30).close()


@contextlib.contextmanager
def batch_without_docker(aws: Aws) -> Iterator[None]:
    """moto's own switch (/moto-api/config): submitted jobs are marked SUCCEEDED (or FAILED with
    MOTO_SIMPLE_BATCH_FAIL_AFTER) at once, without running a container: for plumbing tests."""
    moto_api(aws, "config", {"batch": {"use_docker": False}})
    try:
        yield
    finally:
        moto_api(aws, "config", {"batch": {"use_docker": True}})


@contextlib.contextmanager
def jobs_held(aws: Aws) -> Iterator[None]:
    """moto's state manager (/moto-api/state-manager): a submitted job stays SUBMITTED (it advances only after a
    million status reads), so a canary waits for it until its bound."""
    moto_api(aws, "state-manager/set-transition",
             {"model_name": "batch::job", "transition": {"progression": "manual", "times": 1_000_000}})
    try:
        yield
    finally:
        moto_api(aws, "state-manager/set-transition",
                 {"model_name": "batch::job", "transition": {"progression": "manual", "times": 1}})


@contextlib.contextmanager
def job_reported_as(job_id: str, **fields: Any) -> Iterator[None]:
    """DescribeJobs answers these fields for this job (states and reasons moto never produces: RUNNABLE with a
    blocked-queue statusReason, CannotPullContainerError, Host EC2 terminated, ...). Patches moto's in-process
    BatchBackend.describe_jobs; the rest of the answer is moto's own."""
    BatchBackend = moto.batch.models.BatchBackend

    def wrap(result: list[dict[str, Any]], backend: Any) -> list[dict[str, Any]]:
        out = []
        for job in result:
            if job.get("jobId") == job_id:
                job = {**job, **fields}
                for key in [k for k, v in fields.items() if v is None]:
                    job.pop(key, None)
            out.append(job)
        return out

    with patched_backend(BatchBackend, "describe_jobs", wrap):
        yield


@contextlib.contextmanager
def failed_scaling_activity(message: str) -> Iterator[None]:
    """moto's DescribeScalingActivities always answers no activities: this one answers a failed one (patched into
    the in-process Auto Scaling responses)."""
    from moto.core.responses import ActionResult

    AutoScalingResponse = moto.autoscaling.responses.AutoScalingResponse
    original: Callable[..., Any] = AutoScalingResponse.describe_scaling_activities

    def patched(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        return ActionResult({"Activities": [{
            "ActivityId": "a-1", "AutoScalingGroupName": name, "Cause": "scaling up to 1", "StartTime": 0,
            "StatusCode": "Failed", "StatusMessage": message, "Progress": 100, "Description": "Launching"}]})

    AutoScalingResponse.describe_scaling_activities = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        AutoScalingResponse.describe_scaling_activities = original  # type: ignore[method-assign]
