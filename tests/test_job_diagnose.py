"""--mlbatch-job: the preflight scoped to a submitted job, and JOB001's diagnosis of its state.

Real moto Batch in server mode. Jobs are submitted with moto's Docker-less Batch (its /moto-api/config switch);
job states and reasons moto never produces (RUNNABLE with a blocked-queue statusReason, container reasons) are
patched into the in-process backend's DescribeJobs answer (tests/job_fixtures.py), and the test says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from backends import REGION
from bat_fixtures import base_config, make_env
from job_fixtures import batch_without_docker, failed_scaling_activity, job_reported_as
from report_helpers import case_outcome, junit_cases, validate_junit, validate_report

from pytest_mlbatch.analysis.jobreasons import JobFacts, activity_cause, causes, job_facts, match_reason, verdict

# -- the mapping (pure) ---------------------------------------------------------------------------------------------
DOCUMENTED = [
    ("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type "
     "[p3.2xlarge]", "insufficient-capacity", "capacity", "NET004"),
    ("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet the CPU "
     "requirement of the job.", "max-vcpus-too-small", "infrastructure", "BAT004"),
    ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than "
     "that can be met by the CE(s) attached to the job queue.", "no-instance-fits", "infrastructure", "BAT004"),
    ("MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS - Batch service role has a permission issue.",
     "service-role-permissions", "infrastructure", "IAM001"),
    ("MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED - The instance type is not supported",
     "instance-configuration-unsupported", "infrastructure", "BAT004"),
    ("ACTION_REQUIRED - CE(s) associated with the job queue are invalid.", "invalid-compute-environments",
     "infrastructure", "BAT001"),
    ("Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
     "insufficient-capacity", "capacity", "BAT008"),
    ("CannotPullContainerError: Error response from daemon: manifest for 123456789012.dkr.ecr.us-east-1."
     "amazonaws.com/mlmodel:1.0 not found: manifest unknown", "image-not-found", "infrastructure", "IMG002"),
    ("CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref: "
     "unexpected status from HEAD request: 403 Forbidden", "image-pull-denied", "infrastructure", "IMG006"),
    ("CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: write /var/lib/docker: "
     "no space left on device", "image-too-large", "infrastructure", "IMG007"),
    ("CannotPullContainerError: Error response from daemon: Get https://123456789012.dkr.ecr.us-east-1."
     "amazonaws.com/v2/: net/http: request canceled while waiting for connection", "image-unreachable",
     "infrastructure", "NET003"),
    ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
     "failed: unable to retrieve secret from asm", "secrets-unavailable", "infrastructure", "IAM004"),
    ("ResourceInitializationError: unable to pull secrets or registry auth: pull command failed: : signal: "
     "killed", "task-initialization-failed", "infrastructure", "NET003"),
    ("exec /usr/local/bin/python: exec format error", "wrong-architecture", "infrastructure", "IMG005"),
    ("OutOfMemoryError: Container killed due to memory usage", "out-of-memory", "application", "BAT004"),
    ("Host EC2 (instance i-0123456789abcdef0) terminated.", "host-terminated", "infrastructure", "BAT001"),
    ("Your Spot Instance was reclaimed (spot interruption)", "host-terminated", "infrastructure", "BAT001"),
    # the fidelity checks (issue 14) each reason points to
    ("Host EC2 (instance i-0123456789abcdef0) terminated.", "host-terminated", "infrastructure", "BAT011"),
    ("MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED - The instance type is not supported",
     "instance-configuration-unsupported", "infrastructure", "BAT010"),
    ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
     "unable to retrieve secret from asm: service call has been retried 1 time(s): AccessDeniedException: User: "
     "arn:aws:sts::123456789012:assumed-role/ecsTaskExecutionRole/abc is not authorized to perform: "
     "secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf "
     "because no VPC endpoint policy allows the secretsmanager:GetSecretValue action", "endpoint-policy-denied",
     "infrastructure", "NET007"),
    ("CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: failed open: "
     "unexpected status code https://prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com/abc: 403 "
     "Forbidden", "image-pull-denied", "infrastructure", "NET007"),
    ("CannotPullContainerError: Error response from daemon: Get https://123456789012.dkr.ecr.us-east-1.amazonaws.com"
     "/v2/: dial tcp: lookup 123456789012.dkr.ecr.us-east-1.amazonaws.com: no such host", "image-unreachable",
     "infrastructure", "NET006"),
    ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
     "unable to retrieve secret from asm", "secrets-unavailable", "infrastructure", "IAM007"),
    ("ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: failed "
     "to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist.",
     "log-group-unavailable", "infrastructure", "IAM008"),
    ("CLIENT_ERROR - Your compute environment has been INVALIDATED and scaled down because none of the instances "
     "joined the underlying ECS Cluster. Common issues preventing instances joining are the following: VPC/Subnet "
     "configuration preventing communication to ECS, incorrect Instance Profile policy preventing authorization to "
     "ECS, or customized AMI or LaunchTemplate configurations affecting ECS agent.", "instances-never-joined",
     "infrastructure", "BAT012"),
]


@pytest.mark.parametrize(("reason", "code", "kind", "check_id"), DOCUMENTED, ids=[d[1] + "-" + d[0][:18]
                                                                                  for d in DOCUMENTED])
def test_each_documented_reason_names_its_cause_and_a_check(reason: str, code: str, kind: str,
                                                            check_id: str) -> None:
    cause = match_reason(reason)
    assert cause is not None, reason
    assert (cause.code, cause.kind) == (code, kind)
    assert check_id in cause.checks
    assert cause.action and cause.matched == reason


def test_a_scaling_activity_for_a_type_not_offered_in_the_zone_names_bat010() -> None:
    meaning, checks = activity_cause("Launching a new EC2 instance. Status Reason: Your requested instance type "
                                     "(p4d.24xlarge) is not supported in your requested Availability Zone "
                                     "(us-east-1e). Launching EC2 instance failed.")
    assert "not supported" in meaning and "BAT010" in checks
    assert activity_cause("something else entirely") == ("the Auto Scaling group could not launch instances", ())


def test_an_unknown_reason_names_no_cause_and_an_exit_code_is_the_applications() -> None:
    assert match_reason("Essential container in task exited") is None
    facts = JobFacts("j", status="FAILED", status_reason="Essential container in task exited", exit_code=3,
                     log_stream="ml-train/default/abc")
    found = causes(facts)
    assert [c.code for c in found] == ["exit-code"] and verdict(found) == "application"
    assert "ml-train/default/abc" in found[0].action
    assert [c.code for c in causes(JobFacts("j", status="FAILED", exit_code=137))] == ["killed"]
    assert causes(JobFacts("j", status="RUNNABLE")) == [] and verdict([]) == "unknown"


def test_job_facts_read_attempts_array_children_nodes_and_overridden_size() -> None:
    facts = job_facts({
        "jobId": "a1:3", "status": "FAILED", "statusReason": "Essential container in task exited",
        "createdAt": 1_700_000_000_000, "attempts": [
            {"container": {"reason": "OutOfMemoryError: Container killed due to memory usage", "exitCode": 137,
                           "logStreamName": "s/1"}, "statusReason": "Essential container in task exited"}],
        "container": {"resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"},
                                               {"type": "GPU", "value": "1"}]},
        "arrayProperties": {"statusSummary": {"FAILED": 1, "SUCCEEDED": 0}},
        "nodeProperties": {"numNodes": 2},
    })
    assert (facts.vcpus, facts.memory, facts.gpus, facts.exit_code, facts.log_stream) == (4.0, 16384, 1, 137, "s/1")
    assert facts.children == {"FAILED": 1} and facts.nodes == 2 and facts.attempts == 1
    assert facts.created_at == 1_700_000_000.0
    assert [c.code for c in causes(facts)] == ["out-of-memory"]


# -- against moto --------------------------------------------------------------------------------------------------
def _world(aws: Any, *, memory: str = "4096", min_vcpus: int = 0) -> tuple[Any, str]:
    env = make_env(aws)
    env.compute_environment("ml-ce", instance_types=["m5.large"], minvCpus=min_vcpus)
    env.queue("ml-queue")
    first = env.job_definition("ml-train", memory=memory)["jobDefinitionArn"]
    env.job_definition("ml-train", memory="2048")  # revision 2: the job below runs revision 1
    return env, str(first)


def _submit(aws: Any, jd: str, **kwargs: Any) -> str:
    with batch_without_docker(aws):
        return str(aws.client("batch").submit_job(jobName="train", jobQueue="ml-queue", jobDefinition=jd,
                                                  **kwargs)["jobId"])


def _job_row(report: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in report["results"] if r["check_id"] == "JOB001"]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_succeeded_job_scopes_the_preflight_to_its_queue_revision_and_overrides(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws)
    # revision 1 asks 4096 MiB (fits m5.large); the job overrides it to 16384 MiB (does not)
    job_id = _submit(aws, rev1, containerOverrides={"resourceRequirements": [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "16384"}]})
    # the config names another queue and the latest revision: the job's own win. (moto's DescribeJobs leaves the
    # overridden resourceRequirements out of the job's container; AWS reports them: patched in as AWS does.)
    with job_reported_as(job_id, container={"resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                                      {"type": "MEMORY", "value": "16384"}]}):
        result, report = preflight.run(base_config(job_queue="other-queue", job_definition="ml-train"),
                                       "--mlbatch-job", job_id)
    row = _job_row(report)
    assert row["outcome"] == "passed" and row["message"].startswith("SUCCEEDED"), row
    assert row["target"] == f"{REGION}/job-{job_id}"
    assert {r["target"] for r in report["results"]} == {f"{REGION}/job-{job_id}"}  # only the job's scope
    bat003 = preflight.result(report, "BAT003")
    assert bat003["resource"] == rev1  # the revision it was submitted with, not the latest
    assert preflight.result(report, "BAT002")["resource"] == "ml-queue"
    bat004 = preflight.result(report, "BAT004")
    assert bat004["outcome"] == "failed" and "16384" in bat004["message"], bat004
    assert result.ret == 1


def test_a_job_that_does_not_exist_fails_the_diagnosis(preflight: Any, aws: Any) -> None:
    _world(aws)
    _, report = preflight.run(base_config(job_queue="ml-queue", job_definition="ml-train"), "--mlbatch-job",
                              "00000000-0000-0000-0000-000000000000")
    row = _job_row(report)
    assert row["outcome"] == "failed" and "does not exist" in row["message"], row


def test_cannot_pull_names_the_cause_and_the_failing_image_checks(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws)
    job_id = _submit(aws, rev1)
    reason = ("CannotPullContainerError: Error response from daemon: manifest for 123456789012.dkr.ecr.us-east-1."
              "amazonaws.com/mlmodel:1.0 not found: manifest unknown")
    # moto never reports a pull failure: the reason is patched into its DescribeJobs answer
    junit = preflight.pytester.path / "compliance.xml"
    with job_reported_as(job_id, status="FAILED", statusReason="Task failed to start",
                         container={"reason": reason}):
        result, report = preflight.run(base_config(), "--mlbatch-job", job_id, "--mlbatch-junit", str(junit))
    validate_report(report)
    # the diagnosis is an item like the others: a failed JUnit testcase in the JOB suite, first in the report
    cases = {name: case for (suite, name), (_, case) in junit_cases(validate_junit(junit)).items()
             if suite.startswith("JOB ")}
    assert list(cases) == [f"JOB001 job-diagnosis [{job_id}]"]
    assert case_outcome(cases[f"JOB001 job-diagnosis [{job_id}]"]) == "failure"
    assert report["results"][0]["check_id"] == "JOB001"
    result.stdout.fnmatch_lines(["*= mlbatch: submitted jobs =*",
                                 f"JOB001 {job_id} ({REGION}/job-{job_id}): FAILED — failed (infrastructure)*",
                                 "*= mlbatch preflight =*"])  # each finding once: not in pytest's short summary
    row = _job_row(report)
    assert row["outcome"] == "failed", row
    message = row["message"]
    assert message.startswith("failed (infrastructure)") and reason in message
    assert "IMG002" in message and "checks that fail: IMG001" in message  # the repository does not exist in moto
    assert result.ret == 1


def test_runnable_blocked_for_memory_names_bat004_with_its_finding(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws, memory="16384")  # m5.large registers ~7.5 GiB
    job_id = _submit(aws, rev1)
    with job_reported_as(job_id, status="RUNNABLE", stoppedAt=None, startedAt=None, container={},
                         statusReason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement "
                                      "(vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to "
                                      "the job queue."):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id)
    row = _job_row(report)
    assert row["outcome"] == "failed" and row["message"].startswith("stuck (infrastructure)"), row
    assert "checks that fail: BAT004" in row["message"]
    assert "compute environment ml-ce is VALID/ENABLED" in row["message"]


def test_runnable_with_instances_that_never_joined_the_cluster(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws)
    job_id = _submit(aws, rev1)
    # the compute environment's Auto Scaling group (Batch names it <ce>-asg-<uuid>) has an instance in service,
    # and the ECS cluster of the compute environment has no container instance
    asg = aws.client("autoscaling")
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="m5.large")
    asg.create_auto_scaling_group(AutoScalingGroupName="ml-ce-asg-0a1b2c", LaunchConfigurationName="lc",
                                  MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=[f"{REGION}a"])
    with job_reported_as(job_id, status="RUNNABLE", stoppedAt=None, startedAt=None, container={},
                         statusReason=None):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id)
    row = _job_row(report)
    assert row["outcome"] == "failed", row
    assert "1 instance(s) in service but none joined the ECS cluster" in row["message"]
    assert "0 container instance(s) registered" in row["message"]


def test_runnable_where_no_registered_instance_can_hold_the_job(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws, memory="16384")
    job_id = _submit(aws, rev1)
    batch, ecs, ec2 = aws.client("batch"), aws.client("ecs"), aws.client("ec2")
    cluster = batch.describe_compute_environments(computeEnvironments=["ml-ce"])["computeEnvironments"][0][
        "ecsClusterArn"]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.large")[
        "Instances"][0]["InstanceId"]
    doc = json.dumps({"instanceId": instance, "region": REGION, "instanceType": "m5.large"})
    ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=doc, totalResources=[
        {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 7680}])
    with job_reported_as(job_id, status="RUNNABLE", stoppedAt=None, startedAt=None, statusReason=None,
                         container={"resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                             {"type": "MEMORY", "value": "16384"}]}):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id)
    row = _job_row(report)
    assert row["outcome"] == "failed", row
    assert "no registered instance can hold the job (2 vCPU / 16.0 GiB)" in row["message"], row["message"]


def test_runnable_with_a_failed_scaling_activity_names_the_quota(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws)
    job_id = _submit(aws, rev1)
    asg = aws.client("autoscaling")
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="m5.large")
    asg.create_auto_scaling_group(AutoScalingGroupName="ml-ce-asg-9f8e", LaunchConfigurationName="lc",
                                  MinSize=0, MaxSize=1, DesiredCapacity=0, AvailabilityZones=[f"{REGION}a"])
    message = ("Launching a new EC2 instance. Status Reason: You have requested more vCPU capacity than your "
               "current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to.")
    # moto answers no scaling activities at all: a failed one is patched into its Auto Scaling responses
    with failed_scaling_activity(message), job_reported_as(job_id, status="RUNNABLE", stoppedAt=None,
                                                             startedAt=None, container={}, statusReason=None):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id)
    row = _job_row(report)
    assert row["outcome"] == "failed", row["message"]
    assert "scaling activity Failed" in row["message"] and "vCPU quota" in row["message"]


def test_an_array_child_is_diagnosed_by_its_own_id(preflight: Any, aws: Any) -> None:
    _, rev1 = _world(aws)
    parent = _submit(aws, rev1, arrayProperties={"size": 2})
    _, report = preflight.run(base_config(), "--mlbatch-job", f"{parent}:1", "--mlbatch-job", parent)
    rows = {r["resource"]: r for r in report["results"] if r["check_id"] == "JOB001"}
    assert set(rows) == {f"{parent}:1", parent}
    assert rows[f"{parent}:1"]["outcome"] == "passed", rows
    assert "SUCCEEDED" in rows[parent]["message"]


def test_the_job_options_need_mlbatch(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mlbatch-job", "abc")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--mlbatch-job needs --mlbatch*"])


def test_on_two_xdist_workers_the_diagnosis_matches_and_the_canary_is_submitted_once(preflight: Any,
                                                                                      aws: Any) -> None:
    pytest.importorskip("xdist")
    _, rev1 = _world(aws)
    job_id = _submit(aws, rev1)
    config = base_config(job_queue="ml-queue", job_definition="ml-train")
    with batch_without_docker(aws):
        _, report = preflight.run(config, "--mlbatch-job", job_id, "--mlbatch-canary", "-n", "2")
    rows = {(r["target"], r["check_id"]): r for r in report["results"] if r["area"] == "JOB"}
    assert set(rows) == {(f"{REGION}/job-{job_id}", "JOB001"), (REGION, "JOB002")}
    assert rows[(f"{REGION}/job-{job_id}", "JOB001")]["outcome"] == "passed"
    assert rows[(REGION, "JOB002")]["outcome"] == "passed", rows[(REGION, "JOB002")]
    batch = aws.client("batch")
    names = [j["jobName"] for j in batch.list_jobs(jobQueue="ml-queue", jobStatus="SUCCEEDED")["jobSummaryList"]]
    assert sorted(n.split("-")[0] for n in names) == ["mlbatch", "train"]  # one canary, not one per worker


def test_a_multi_node_node_is_diagnosed_by_its_own_id(preflight: Any, aws: Any) -> None:
    """moto has no multi-node node ids (`id#N`): its DescribeJobs is replaced for this one id, with a node's
    document as AWS returns it (a Host EC2 termination), and the test says so."""
    from bat_fixtures import replaced_backend
    from job_fixtures import moto

    _, rev1 = _world(aws)
    parent = _submit(aws, rev1)
    node = f"{parent}#1"
    original = moto.batch.models.BatchBackend.describe_jobs

    def describe_jobs(self: Any, jobs: list[str] | None) -> list[dict[str, Any]]:
        if jobs == [node]:
            (doc,) = original(self, [parent])
            return [{**doc, "jobId": node, "status": "FAILED", "nodeDetails": {"nodeIndex": 1, "isMainNode": False},
                     "statusReason": "Host EC2 (instance i-0abc) terminated.", "container": {}}]
        return list(original(self, jobs))

    with replaced_backend(moto.batch.models.BatchBackend, "describe_jobs", describe_jobs):
        _, report = preflight.run(base_config(), "--mlbatch-job", node)
    row = _job_row(report)
    assert row["resource"] == node and row["outcome"] == "failed", row
    assert "Host EC2 (instance i-0abc) terminated." in row["message"] and "retryStrategy" in row["message"]
    assert "no Spot compute environment in the queue; the job definition retries 1 time(s) — with attempts 1 a " \
           "lost host fails the job" in row["message"]


def test_a_runnable_job_with_no_reason_and_no_evidence_waits_its_turn_then_counts_as_stuck(preflight: Any,
                                                                                            aws: Any) -> None:
    import time

    _, rev1 = _world(aws)
    job_id = _submit(aws, rev1)
    now_ms = int(time.time() * 1000)
    runnable = {"status": "RUNNABLE", "stoppedAt": None, "startedAt": None, "container": {}, "statusReason": None}
    with job_reported_as(job_id, createdAt=now_ms - 30_000, **runnable):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id, "-k", "JOB001")
    row = _job_row(report)
    assert row["outcome"] == "passed" and row["message"].startswith("waiting its turn: RUNNABLE"), row
    assert "no Auto Scaling group named ml-ce-asg-*" in row["message"]
    with job_reported_as(job_id, createdAt=now_ms - 2 * 3600_000, **runnable):
        _, report = preflight.run(base_config(), "--mlbatch-job", job_id, "-k", "JOB001")
    row = _job_row(report)
    assert row["outcome"] == "failed" and row["message"].startswith("stuck (unknown): RUNNABLE"), row
    assert "(submitted 2.0 h ago)" in row["message"]
