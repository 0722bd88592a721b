"""BAT001-BAT008 on real moto Batch resources: each check passing and failing, with its message.

Where moto cannot produce a state, its in-process backend is patched (the server runs in this process):
INVALID compute environments (moto always says VALID) and jobStateTimeLimitActions (moto drops them).
BAT009 (quotas) is in test_bat_quota.py, with botocore's Stubber because moto has no EC2 vCPU quotas.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bat_fixtures import (
    IMAGE,
    BatchEnv,
    base_config,
    hidden_instance_types,
    invalid_compute_environments,
    queue_time_limit_actions,
    run_check,
    world_env,
)

QJ = {"job_queue": "ml-queue", "job_definition": "ml-train"}
_STATE: dict = {}


@pytest.fixture
def env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> BatchEnv:
    """All scenarios side by side (see bat_fixtures.build_world): ml-ce (m5.large, maxvCpus 16) ordered by
    ml-queue, job definition ml-train (2 vCPU / 4096 MiB), and one queue / job definition per other scenario."""
    return world_env(moto_endpoint, monkeypatch, _STATE)


def qj(queue: str, jd: str) -> dict:
    return base_config(job_queue=queue, job_definition=jd)


def outcome(check_id: str, config: dict, tmp_path: Path, resource: str | None = None) -> tuple[str, str]:
    if "version" not in config:
        top = {k: v for k, v in config.items() if k in ("image", "network", "iam", "key_pair")}
        config = {**base_config(**{k: v for k, v in config.items() if k not in top}), **top}
    r = run_check(check_id, config, tmp_path, resource)
    return r.outcome, r.message


# -- BAT001 ------------------------------------------------------------------------------------------------------
def test_bat001_valid_and_enabled(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT001", QJ, tmp_path) == ("passed", "ml-ce is VALID and ENABLED (MANAGED, EC2, maxvCpus 16)")


def test_bat001_invalid_carries_status_reason(env: BatchEnv, tmp_path: Path) -> None:
    reason = "CLIENT_ERROR - Not authorized to perform sts:AssumeRole"
    with invalid_compute_environments({"ml-ce": reason}):
        got = outcome("BAT001", QJ, tmp_path)
    assert got == ("failed", f"ml-ce is not usable: status INVALID ({reason})")


def test_bat001_disabled(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT001", base_config(job_queue="q-ce-disabled"), tmp_path) == (
        "failed", "ce-disabled is not usable: state DISABLED")


def test_bat001_missing_compute_environment(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT001", base_config(compute_environment="no-such-ce"), tmp_path) == (
        "failed", "compute environment no-such-ce does not exist in us-east-1")


def test_bat001_reports_what_discovery_could_not_find(env: BatchEnv, tmp_path: Path) -> None:
    """No queue, so no compute environment to check: BAT001 is skipped pointing at BAT002, which fails (each finding
    once); a queue that orders nothing is BAT001's own failure."""
    assert outcome("BAT001", base_config(job_queue="no-such-queue"), tmp_path, "undiscovered") == (
        "skipped", "no compute environment to check: job queue no-such-queue does not exist in us-east-1 (see BAT002)")
    assert outcome("BAT002", base_config(job_queue="no-such-queue"), tmp_path, "no-such-queue")[0] == "failed"


# -- BAT002 ------------------------------------------------------------------------------------------------------
def test_bat002_valid(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT002", QJ, tmp_path) == ("passed", "ml-queue is VALID and ENABLED, orders ml-ce")


def test_bat002_missing_queue(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT002", base_config(job_queue="no-such-queue"), tmp_path) == (
        "failed", "job queue no-such-queue does not exist in us-east-1")


def test_bat002_disabled_queue_with_invalid_compute_environment(env: BatchEnv, tmp_path: Path) -> None:
    with invalid_compute_environments({"ce-invalid": "instances never joined the ECS cluster"}):
        got = outcome("BAT002", base_config(job_queue="q-disabled"), tmp_path)
    assert got == ("failed", "job queue q-disabled: state DISABLED; it orders INVALID compute environment ce-invalid "
                             "(INVALID: instances never joined the ECS cluster); none of its compute environments "
                             "is VALID and ENABLED")


def test_bat002_does_not_order_the_configured_compute_environment(env: BatchEnv, tmp_path: Path) -> None:
    got = outcome("BAT002", {**QJ, "compute_environment": "ce-other"}, tmp_path)
    assert got == ("failed", "job queue ml-queue: it does not order compute environment ce-other (it orders ml-ce)")


def test_bat002_mixes_ec2_and_fargate(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT002", base_config(job_queue="q-mixed"), tmp_path)
    assert state == "failed"
    assert "it mixes EC2 and FARGATE compute environments (ml-ce: EC2, ce-fargate: FARGATE)" in message


def test_bat002_mixes_cpu_architectures(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT002", base_config(job_queue="q-arch"), tmp_path) == (
        "failed", "job queue q-arch: it mixes CPU architectures (ml-ce: x86_64, ce-arm: arm64)")


def test_bat002_architecture_unknown_is_an_error(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT002", base_config(job_queue="q-arch-unknown"), tmp_path)[0] == "passed"
    with hidden_instance_types({"p4d.24xlarge"}):
        assert outcome("BAT002", base_config(job_queue="q-arch-unknown"), tmp_path) == (
            "error", "could not describe the instance types of ce-p4d to compare CPU architectures")


# -- BAT003 ------------------------------------------------------------------------------------------------------
def test_bat003_valid(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT003", QJ, tmp_path) == (
        "passed", f"ml-train:1 is valid against the RegisterJobDefinition model, runs {IMAGE}, asks 2 vCPU / 4096 "
                  "MiB")


def test_bat003_deprecated_keys_and_schema(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT003", base_config(job_definition="jd-deprecated"), tmp_path)
    assert state == "failed"
    assert message.startswith("jd-deprecated:1: schema: containerProperties.logConfiguration.logDriver: 'stdout' is "
                              "not one of ")
    assert "containerProperties uses deprecated vcpus and memory: move them to resourceRequirements" in message


def test_bat003_runs_another_image_than_configured(env: BatchEnv, tmp_path: Path) -> None:
    other = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:2.0"
    assert outcome("BAT003", {**QJ, "image": {"uri": other}}, tmp_path) == (
        "failed", f"ml-train:1: it runs {IMAGE}, but image.uri is {other}")


def test_bat003_revisions_names_and_arns(env: BatchEnv, tmp_path: Path) -> None:
    """Latest ACTIVE revision by default; name:revision (which moto cannot describe directly) and ARN work."""
    assert outcome("BAT003", base_config(job_definition="jd-revs"), tmp_path)[1].endswith("2 vCPU / 2048 MiB")
    assert outcome("BAT003", base_config(job_definition="jd-revs:1"), tmp_path)[1].endswith("/ 1024 MiB")
    arn = env.batch.describe_job_definitions(jobDefinitionName="jd-revs")["jobDefinitions"][0]["jobDefinitionArn"]
    revision = arn.rsplit(":", 1)[1]
    assert outcome("BAT003", base_config(job_definition=arn), tmp_path)[1].startswith(f"jd-revs:{revision} is valid")
    assert outcome("BAT003", base_config(job_definition="jd-revs:7"), tmp_path) == (
        "failed", "job definition jd-revs:7: revision 7 does not exist (latest ACTIVE revision is 2)")
    assert outcome("BAT003", base_config(job_definition="jd-revs:3"), tmp_path) == (
        "failed", "jd-revs:3 is INACTIVE: register a new revision or name an ACTIVE one")
    assert outcome("BAT003", base_config(job_definition="nope"), tmp_path) == (
        "failed", "job definition nope does not exist")


def test_bat003_no_active_revision(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT003", base_config(job_definition="jd-inactive"), tmp_path) == (
        "failed", "job definition jd-inactive has no ACTIVE revision (1 INACTIVE)")


# -- BAT004 ------------------------------------------------------------------------------------------------------
def test_bat004_fits(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", QJ, tmp_path) == (
        "passed", "job definition ml-train:1: ml-ce: fits m5.large (2 vCPU, 7668-7953 MiB usable of 8192); 1 of 1 "
                  "allowed types fit")


def test_bat004_memory_over_the_largest_type(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT004", qj("ml-queue", "jd-16g"), tmp_path)
    assert state == "failed"
    assert message.startswith("job definition jd-16g:1: ml-ce: job asks 16384 MiB; largest usable memory in "
                              "m5.large is 7953 MiB (8192 MiB installed less ECS overhead), 8431 MiB over")
    assert "AWS Batch memory-management guide" in message


def test_bat004_advertised_memory_does_not_fit(env: BatchEnv, tmp_path: Path) -> None:
    """Asking exactly the advertised 8192 MiB of an m5.large is the classic mistake: ECS registers less."""
    state, message = outcome("BAT004", qj("ml-queue", "jd-8g"), tmp_path)
    assert state == "failed" and "239 MiB over" in message


def test_bat004_families_are_expanded(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", qj("q-m5fam", "jd-16g"), tmp_path) == (
        "passed", "job definition jd-16g:1: ce-m5fam: fits m5.2xlarge (8 vCPU, 30769-31908 MiB usable of 32768); "
                  "7 of 10 allowed types fit")


def test_bat004_optimal(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT004", qj("q-optimal", "jd-big"), tmp_path)
    # 250000 MiB is inside m4.16xlarge's band (246383-255488 MiB): an r4.16xlarge holds it for sure
    assert state == "passed" and "fits r4.16xlarge (64 vCPU, 469697-487053 MiB usable of 499712)" in message


def test_bat004_vcpus_over_max_vcpus_and_gpus(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", qj("q-m5fam", "jd-32cpu-gpu"), tmp_path) == (
        "failed", "job definition jd-32cpu-gpu:1: ce-m5fam: job asks 32 vCPUs; maxvCpus is 16; job asks 1 GPUs; no "
                  "allowed instance type has a GPU")


def test_bat004_config_job_without_job_definition(env: BatchEnv, tmp_path: Path) -> None:
    config = base_config(compute_environment="ml-ce", job={"vcpus": 4, "memory": 4096})
    assert outcome("BAT004", config, tmp_path) == (
        "failed", "batch.job: ml-ce: job asks 4 vCPUs; largest type m5.large has 2, 2 over")


def test_bat004_fargate_sizes(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", qj("q-fargate", "jd-fargate"), tmp_path) == (
        "passed", "job definition jd-fargate:1: ce-fargate: 1 vCPU / 2048 MiB is a valid Fargate size")
    assert outcome("BAT004", qj("q-fargate", "jd-fargate-bad"), tmp_path) == (
        "failed", "job definition jd-fargate-bad:1: ce-fargate: Fargate 1 vCPU takes memory 2048-8192 MiB in 1024 "
                  "MiB steps; job asks 16384")


def test_bat004_fargate_job_on_ec2_queue(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", qj("ml-queue", "jd-fargate"), tmp_path) == (
        "failed", "job definition jd-fargate:1 runs on FARGATE, but compute environment ml-ce is EC2")


def test_bat004_arm64_on_fargate_spot(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT004", qj("q-fargate-spot", "jd-fargate-arm"), tmp_path) == (
        "failed", "job definition jd-fargate-arm:1 runs ARM64 on Fargate, which FARGATE_SPOT does not offer (compute "
                  "environment ce-fargate-spot is FARGATE_SPOT)")
    assert outcome("BAT004", qj("q-fargate", "jd-fargate-arm"), tmp_path)[0] == "passed"


def test_bat004_types_the_backend_cannot_describe_are_an_error(env: BatchEnv, tmp_path: Path) -> None:
    """A type DescribeInstanceTypes does not return (moto lacks p2/p3; here p4d is hidden the same way): no fit
    among the rest is an error, not a failure."""
    with hidden_instance_types({"p4d.24xlarge"}):
        state, message = outcome("BAT004", qj("q-undescribed", "jd-gpu"), tmp_path)
    assert state == "error"
    assert "could not describe allowed instance types (ce-undescribed: p4d.24xlarge), so they may still fit" in message


# -- BAT005 ------------------------------------------------------------------------------------------------------
def test_bat005_gpu_job_on_gpu_types(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT005", qj("q-gpu", "jd-gpu"), tmp_path) == (
        "passed", "ce-gpu: GPU types g4dn.xlarge (1); AMI: Batch's default ECS_AL2023_NVIDIA AMI")


def test_bat005_gpu_job_without_gpu_types(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT005", qj("ml-queue", "jd-gpu"), tmp_path) == (
        "failed", "job definition jd-gpu:1 asks 1 GPU: ml-ce allows no GPU instance type (m5.large)")


def test_bat005_gpu_types_with_a_cpu_ami(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT005", qj("q-gpu-cpuami", "jd-gpu"), tmp_path) == (
        "failed", "job definition jd-gpu:1 asks 1 GPU: ce-gpu-cpuami ec2Configuration has imageType ECS_AL2 only: "
                  "GPU instances would boot an AMI without NVIDIA drivers (add ECS_AL2_NVIDIA)")


def test_bat005_cpu_job_on_gpu_instances(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT005", qj("q-gpu-p4", "ml-train"), tmp_path)
    assert state == "failed"
    assert message.startswith("job definition ml-train:1 asks no GPU, but ce-gpu-p4 allows GPU instance types "
                              "g4dn.xlarge (1), p4d.24xlarge (8): the container will not see the GPU")


def test_bat005_not_a_gpu_job(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT005", QJ, tmp_path) == (
        "skipped", "job definition ml-train:1 asks no GPU and no GPU instance type is allowed")


# -- BAT006 ------------------------------------------------------------------------------------------------------
def test_bat006_discovered_wiring_is_consistent(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT006", QJ, tmp_path)
    assert state == "passed"
    assert message.startswith(f"ml-ce uses the checked subnets {', '.join(env.subnets)}, security groups {env.sg}, "
                              "instance profile ml-ce-profile, key pair ml-batch-key, service role "
                              "AWSBatchServiceRole (discovered: ")


def test_bat006_config_disagrees_with_the_compute_environment(env: BatchEnv, tmp_path: Path) -> None:
    config = {**base_config(**QJ), "network": {"subnet_ids": env.subnets[:1]}, "key_pair": {"name": "other-key"},
              "iam": {"service_role": "arn:aws:iam::123456789012:role/service-role/AWSBatchServiceRole",
                      "job_role": {"name": "some-other-role"}}}
    assert outcome("BAT006", config, tmp_path) == (
        "failed", f"ml-ce: it uses subnets {env.subnets[1]} that were not checked (checked: {env.subnets[0]}); its "
                  "key pair is ml-batch-key, but other-key was checked; config sets job role some-other-role, but "
                  "discovery found ml-job-role")


def test_bat006_service_role_by_name_is_the_same_role(env: BatchEnv, tmp_path: Path) -> None:
    config = {**base_config(**QJ), "iam": {"service_role": "AWSBatchServiceRole", "instance_profile": "ml-ce-profile"}}
    assert outcome("BAT006", config, tmp_path)[0] == "passed"


def test_bat006_reports_an_instance_profile_that_does_not_exist(env: BatchEnv, tmp_path: Path) -> None:
    config = {**base_config(**QJ), "iam": {"instance_profile": "ecsInstanceRole"}}
    assert outcome("BAT006", config, tmp_path) == (
        "failed", f"ml-ce: its instance profile is {env.profile_arn}, but ecsInstanceRole was checked; instance "
                  "profile ecsInstanceRole (config) does not exist, so its role cannot be discovered")


# -- BAT007 ------------------------------------------------------------------------------------------------------
def test_bat007_gpu_job_without_shared_memory(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT007", base_config(job_definition="jd-gpu"), tmp_path) == (
        "failed", "jd-gpu (1 GPU) sets no linuxParameters.sharedMemorySize: /dev/shm stays at Docker's 64 MB")


def test_bat007_pytorch_image_with_small_shared_memory(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT007", base_config(job_definition="jd-torch-shm64"), tmp_path) == (
        "failed", "jd-torch-shm64 ('torch' in its image or command) sets sharedMemorySize 64 MiB, no more than "
                  "Docker's default 64 MB")


def test_bat007_shared_memory_set(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT007", base_config(job_definition="jd-gpu-shm"), tmp_path) == (
        "passed", "sharedMemorySize 8192 MiB (1 GPU)")


def test_bat007_not_applicable(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT007", QJ, tmp_path) == (
        "skipped", "not a GPU job, and nothing in its image or command looks like PyTorch")
    assert outcome("BAT007", base_config(job_definition="jd-torch-fargate"), tmp_path) == (
        "skipped", "Fargate does not support linuxParameters.sharedMemorySize")


# -- BAT008 ------------------------------------------------------------------------------------------------------
def test_bat008_no_time_limit(env: BatchEnv, tmp_path: Path) -> None:
    assert outcome("BAT008", QJ, tmp_path) == (
        "failed", "job queue ml-queue has no jobStateTimeLimitActions for RUNNABLE jobs: a job that cannot be placed "
                  "waits forever")


def test_bat008_time_limit_set(env: BatchEnv, tmp_path: Path) -> None:
    action = {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "state": "RUNNABLE", "maxTimeSeconds": 3600,
              "action": "CANCEL"}
    with queue_time_limit_actions([action]):
        assert outcome("BAT008", QJ, tmp_path) == (
            "passed", "cancels RUNNABLE jobs after 3600 s (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY)")


# -- a named resource that does not exist (issue 16) -------------------------------------------------------------
@pytest.mark.parametrize(("check_id", "batch", "message"), [
    ("BAT002", {"job_queue": "ml-queeu"}, "job queue ml-queeu does not exist in us-east-1 (did you mean 'ml-queue'?)"),
    ("BAT003", {"job_definition": "ml-trian"},
     "job definition ml-trian does not exist (did you mean 'ml-train'?)"),
    ("BAT001", {"compute_environment": "ml-cee"},
     "compute environment ml-cee does not exist in us-east-1 (did you mean 'ml-ce'?)"),
])
def test_a_misspelled_name_is_critical_and_suggests_the_close_one(env: BatchEnv, tmp_path: Path, check_id: str,
                                                                  batch: dict, message: str) -> None:
    """The job cannot even be submitted: critical whatever the check's default (BAT003 is high), so
    --mlbatch-fail-on critical still fails on it; the suggestion comes from the region's listing."""
    from bat_fixtures import runtime_for

    runtime = runtime_for(base_config(**batch), tmp_path)
    runtime.fail_on = type(runtime.fail_on)("critical")
    r = run_check(check_id, base_config(**batch), tmp_path, runtime=runtime)
    assert (r.outcome, r.message) == ("failed", message)
    assert r.severity == "critical" and r.below_threshold is False


def test_checks_severity_still_wins_over_a_missing_resource(env: BatchEnv, tmp_path: Path) -> None:
    config = {**base_config(job_definition="nope"), "checks": {"severity": {"BAT003": "low"}}}
    r = run_check("BAT003", config, tmp_path)
    assert (r.outcome, r.severity) == ("failed", "low")


@pytest.mark.parametrize(("check_id", "batch", "method", "message"), [
    ("BAT002", {"job_queue": "ml-queeu"}, "describe_job_queues", "job queue ml-queeu does not exist in us-east-1"),
    ("BAT003", {"job_definition": "ml-trian"}, "describe_job_definitions", "job definition ml-trian does not exist"),
    ("BAT001", {"compute_environment": "ml-cee"}, "describe_compute_environments",
     "compute environment ml-cee does not exist in us-east-1"),
])
def test_a_missing_name_stands_without_a_suggestion_when_the_listing_cannot_be_read(
        env: BatchEnv, tmp_path: Path, check_id: str, batch: dict, method: str, message: str) -> None:
    """The listing behind 'did you mean' is refused: the finding is the same, only without the suggestion (never an
    error, and never a suggestion from a partial listing)."""
    from bat_fixtures import denied_listing

    with denied_listing(method):
        r = run_check(check_id, base_config(**batch), tmp_path)
    assert (r.outcome, r.message) == ("failed", message)
