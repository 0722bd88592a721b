"""--mlbatch-canary (JOB002): one bounded, tagged job really submitted to moto Batch; only it is ever terminated.

moto runs submitted jobs as containers on the test session's private dockerd, pulling from the loopback registry:
the healthy canary really runs a FROM-scratch image (a 9 KB static no-op built here with gcc), the broken one
really fails to pull. Plumbing tests switch moto's Batch to run without Docker (/moto-api/config), and the timeout
tests hold jobs in SUBMITTED with moto's state manager (tests/job_fixtures.py).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from backends import REGION, missing_backend
from bat_fixtures import base_config, make_env
from job_fixtures import batch_without_docker, jobs_held

from pytest_mlbatch.aws.canary import TAG, CanaryRequest, run_canary
from pytest_mlbatch.aws.guard import ForbiddenCall
from pytest_mlbatch.aws.inventory import Inventory

NOOP_C = 'void _start(void) { __asm__ volatile("mov $60, %eax\\n xor %edi, %edi\\n syscall"); }\n'


def _noop_binary(tmp: Path) -> bytes:
    """A static x86-64 program that exits 0, with no libc: what a FROM-scratch image can run."""
    gcc = shutil.which("gcc")
    if not gcc:
        missing_backend("gcc (to build the canary's static no-op)")
    assert gcc is not None
    (tmp / "noop.c").write_text(NOOP_C)
    subprocess.run([gcc, "-nostdlib", "-static", "-O2", "-o", str(tmp / "noop"), str(tmp / "noop.c")], check=True)
    return (tmp / "noop").read_bytes()


def _push_noop_image(docker_host: str, registry: str, tmp: Path, tag: str) -> str:
    """Build FROM scratch with /noop, push it to the loopback registry, and drop it locally (moto must pull)."""
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=60)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", b"FROM scratch\nCOPY noop /noop\n", 0o644),
                                 ("noop", _noop_binary(tmp), 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    ref = f"{registry}/canary:{tag}"
    client.images.build(fileobj=buf, custom_context=True, tag=ref, rm=True)
    client.images.push(f"{registry}/canary", tag=tag)
    client.images.remove(ref, force=True)
    return ref


def _world(aws: Any, image: str) -> None:
    env = make_env(aws)
    env.compute_environment("ml-ce", instance_types=["m5.large"])
    env.queue("ml-queue")
    env.job_definition("ml-train", image=image, command=["/noop"])


def _config(**canary: Any) -> dict[str, Any]:
    return {**base_config(job_queue="ml-queue", job_definition="ml-train"), "canary": canary}


def _jobs(aws: Any) -> list[dict[str, Any]]:
    batch = aws.client("batch")
    ids = [j["jobId"] for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
           for j in batch.list_jobs(jobQueue="ml-queue", jobStatus=status)["jobSummaryList"]]
    return list(batch.describe_jobs(jobs=ids)["jobs"]) if ids else []


@pytest.fixture
def docker_batch(docker_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's Batch runs containers on the private dockerd (no bridge there: network mode none)."""
    monkeypatch.setenv("MOTO_DOCKER_NETWORK_MODE", "none")
    return docker_env


def test_a_canary_on_a_healthy_world_runs_and_succeeds(preflight: Any, aws: Any, docker_batch: str,
                                                       registry: str, tmp_path: Path) -> None:
    image = _push_noop_image(docker_batch, registry, tmp_path, "1")
    _world(aws, image)
    result, report = preflight.run(_config(command=["/noop"], timeout=120), "--mlbatch-canary", "-k", "JOB002")
    row = preflight.result(report, "JOB002", "ml-queue")
    assert row["outcome"] == "passed", row
    assert "SUCCEEDED in" in row["message"]
    jobs = _jobs(aws)
    assert len(jobs) == 1 and jobs[0]["status"] == "SUCCEEDED"
    assert jobs[0]["jobName"].startswith("mlbatch-canary-") and TAG in jobs[0]["tags"]
    assert jobs[0]["container"]["command"] == ["/noop"]
    assert result.ret == 0


def test_a_canary_whose_image_tag_is_missing_fails_and_says_why(preflight: Any, aws: Any, docker_batch: str,
                                                                registry: str, tmp_path: Path) -> None:
    _push_noop_image(docker_batch, registry, tmp_path, "1")
    _world(aws, f"{registry}/canary:missing")
    result, report = preflight.run(_config(command=["/noop"], timeout=120), "--mlbatch-canary", "-k", "JOB002")
    row = preflight.result(report, "JOB002", "ml-queue")
    assert row["outcome"] == "failed", row["message"]
    message = row["message"]
    assert message.startswith("canary job ") and "failed (infrastructure): FAILED" in message, message
    # moto gives no reason for a failed pull: the diagnosis runs the checks of a job that failed at start, and the
    # image checks that really asked the registry name the missing tag
    assert "checks that fail: IMG002" in message and "has no manifest for canary:missing" in message
    assert [j["status"] for j in _jobs(aws)] == ["FAILED"]  # it ran, and nothing it submitted is left running
    assert result.ret == 1


def test_without_docker_the_canary_plumbing_reports_success_and_failure(preflight: Any, aws: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _world(aws, "busybox:latest")
    with batch_without_docker(aws):
        _, report = preflight.run(_config(), "--mlbatch-canary", "-k", "JOB002")
        assert preflight.result(report, "JOB002")["outcome"] == "passed"
        monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto's switch: its Docker-less jobs fail
        _, report = preflight.run(_config(), "--mlbatch-canary", "-k", "JOB002")
    row = preflight.result(report, "JOB002")
    assert row["outcome"] == "failed" and "FAILED" in row["message"], row
    submitted = _jobs(aws)
    assert len(submitted) == 2
    command = submitted[0]["container"]["command"]
    assert command == ["true"]  # the default no-op


def test_dry_run_shows_the_canary_as_a_plan_and_fix_never_submits_one(preflight: Any, aws: Any) -> None:
    _world(aws, "busybox:latest")
    _, report = preflight.run(_config(), "--mlbatch-canary", "--fix-dry-run")
    row = preflight.result(report, "JOB002")
    assert row["outcome"] == "skipped" and row["message"].startswith("dry run (--fix-dry-run): would submit job")
    plan = next(f for f in report["fixes"] if f["check_id"] == "JOB002")
    assert plan["calls"] == ["batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob"]
    assert not plan["applied"]
    _, report = preflight.run(_config(), "--fix")
    assert not [r for r in report["results"] if r["check_id"] == "JOB002"]
    assert _jobs(aws) == []


def test_a_canary_that_does_not_finish_in_time_is_terminated_and_nothing_else(preflight: Any, aws: Any) -> None:
    _world(aws, "busybox:latest")
    with jobs_held(aws):
        bystander = aws.client("batch").submit_job(jobName="someone-else", jobQueue="ml-queue",
                                                   jobDefinition="ml-train")["jobId"]
        _, report = preflight.run(_config(timeout=10), "--mlbatch-canary", "-k", "JOB002")
        jobs = {j["jobId"]: j for j in _jobs(aws)}
    row = preflight.result(report, "JOB002")
    assert row["outcome"] == "failed", row
    assert "did not finish within 10 s (canary.timeout); terminated it" in row["message"]
    canaries = [j for j in jobs.values() if j["jobName"].startswith("mlbatch-canary-")]
    assert len(canaries) == 1
    assert canaries[0]["statusReason"] == "pytest-mlbatch canary timed out"
    assert "statusReason" not in jobs[bystander]  # the job it did not submit is untouched


def _inventory(aws: Any) -> Inventory:
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    return Inventory(session, REGION)


def test_ctrl_c_while_waiting_terminates_the_canary_and_is_raised(aws: Any) -> None:
    _world(aws, "busybox:latest")
    inventory = _inventory(aws)
    journal: list[tuple[str, str, bool]] = []

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    request = CanaryRequest(queue="ml-queue", job_definition="ml-train", timeout_s=60, run_id="ctrlc")
    with jobs_held(aws), pytest.raises(KeyboardInterrupt):
        run_canary(inventory, request, journal=lambda call, job, ok, _: journal.append((call, job, ok)),
                   sleep=interrupted)
    (job,) = _jobs(aws)
    assert job["jobName"] == "mlbatch-canary-ctrlc"
    assert job["statusReason"] == "pytest-mlbatch canary interrupted"
    assert journal == [("batch:SubmitJob", job["jobId"], True), ("batch:TerminateJob", job["jobId"], True)]


def test_the_guard_lets_the_canary_terminate_only_its_own_job(aws: Any) -> None:
    _world(aws, "busybox:latest")
    inventory = _inventory(aws)
    batch = inventory.client("batch")
    with pytest.raises(ForbiddenCall, match="batch:SubmitJob is not a read"):
        batch.submit_job(jobName="guarded", jobQueue="ml-queue", jobDefinition="ml-train")
    with inventory.guard.permit("batch:SubmitJob"):
        job_id = batch.submit_job(jobName="guarded", jobQueue="ml-queue", jobDefinition="ml-train")["jobId"]
    with inventory.guard.permit("batch:TerminateJob", lambda p: p.get("jobId") == "another"), \
            pytest.raises(ForbiddenCall, match="batch:TerminateJob"):
        batch.terminate_job(jobId=job_id, reason="no")
    with inventory.guard.permit("batch:SubmitJob"), pytest.raises(ForbiddenCall, match="batch:TerminateJob"):
        batch.terminate_job(jobId=job_id, reason="no")


def test_a_canary_waiting_in_another_thread_stops_and_terminates_its_job_when_the_run_ends(aws: Any) -> None:
    """The prefetch pool runs the canary in a worker thread, where Ctrl-C does not arrive: the run's stop event
    (set when pytest's test loop ends, by Ctrl-C or -x too) makes it stop waiting and terminate its job."""
    import threading

    _world(aws, "busybox:latest")
    inventory = _inventory(aws)
    stop = threading.Event()
    request = CanaryRequest(queue="ml-queue", job_definition="ml-train", timeout_s=300, run_id="stopped")
    runs: list[Any] = []
    with jobs_held(aws):
        waiter = threading.Thread(target=lambda: runs.append(run_canary(inventory, request, journal=lambda *a: None,
                                                                        stop=stop, poll_s=0.2)))
        waiter.start()
        while not _jobs(aws):
            threading.Event().wait(0.1)
        stop.set()
        waiter.join(timeout=30)
    assert not waiter.is_alive()
    (run,) = runs
    assert run.terminated and not run.timed_out and run.seconds < 30
    (job,) = _jobs(aws)
    assert job["statusReason"] == "pytest-mlbatch canary interrupted"
