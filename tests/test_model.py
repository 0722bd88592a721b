"""The model of a target built from a moto world (aws/world.py): compute environments, instance types and key
pairs as typed facts, and what is not there is absent rather than guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from backends import REGION, Aws
from bat_fixtures import denied_listing, make_env

from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.world import AwsWorld, job
from pytest_mlbatch.config import JobSize
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.job import ContainerSpec
from pytest_mlbatch.model.principals import Identity
from pytest_mlbatch.model.scope import Scope
from pytest_mlbatch.model.submitted import SUBMITTED_JOB, SUBMITTED_JOB_ID


def world(aws: Aws, **scope: Any) -> AwsWorld:
    inventory = Inventory(boto3.Session(region_name=REGION), REGION)
    return AwsWorld(inventory, Scope(**scope), REGION, Path("."))


def test_compute_environments_are_typed_with_what_their_instances_get(aws: Aws) -> None:
    env = make_env(aws)
    aws.client("ec2").create_key_pair(KeyName="ml-batch-key")
    env.compute_environment("ml-ce", instance_types=["m5.large", "c5"], max_vcpus=32)
    env.compute_environment("ml-fargate", kind="FARGATE_SPOT")

    ces = world(aws, compute_environments=["ml-ce", "ml-fargate", "ml-missing"]).compute_environments()

    assert [ce.name for ce in ces] == ["ml-ce", "ml-fargate"]  # the missing one is absent, not invented
    ec2, fargate = ces
    assert ec2.managed and ec2.orchestration == "ECS" and ec2.provisioning == "EC2"
    assert not ec2.fargate and not ec2.spot and not ec2.eks
    assert ec2.instance_types == ("m5.large", "c5") and ec2.max_vcpus == 32
    assert ec2.subnets == tuple(env.subnets) and ec2.security_groups == (env.sg,)
    assert ec2.instance_profile == env.profile and ec2.key_pair == "ml-batch-key"
    assert ec2.launch_template is None and ec2.state == "ENABLED"
    assert fargate.fargate and fargate.spot and fargate.instance_types == () and fargate.instance_profile is None


def test_instance_types_expand_families_with_their_facts(aws: Aws) -> None:
    types = {t.name: t for t in world(aws).instance_types(["m5.large", "g4dn"])}

    assert types["m5.large"].vcpus == 2 and types["m5.large"].memory_mib == 8192
    assert types["m5.large"].gpus == 0 and "x86_64" in types["m5.large"].architectures
    assert "g4dn.xlarge" in types and types["g4dn.xlarge"].gpus == 1  # a family names all of its sizes


def test_key_pairs_are_the_configured_ones_that_exist(aws: Aws) -> None:
    made = aws.client("ec2").create_key_pair(KeyName="ml-batch-key")
    aws.client("ec2").create_key_pair(KeyName="someone-else")

    pairs = world(aws, key_name="ml-batch-key").key_pairs()
    assert list(pairs) == ["ml-batch-key"]
    assert pairs["ml-batch-key"].fingerprint == made["KeyFingerprint"] and pairs["ml-batch-key"].id
    assert world(aws, key_name="not-there").key_pairs() == {}


def test_the_job_is_its_definition_resolved(aws: Aws) -> None:
    env = make_env(aws)
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ml/token-AbCdEf"
    env.job_definition("ml-train", vcpus="4", memory="16384", gpus="1", executionRoleArn=env.execution_role_arn,
                       secrets=[{"name": "TOKEN", "valueFrom": arn}, {"name": "DB", "valueFrom": "/ml/db"}],
                       logConfiguration={"logDriver": "awslogs", "options": {"awslogs-group": "/ml/train"}})

    job = world(aws, job_definition="ml-train").job()

    assert job is not None and job.name == "ml-train" and job.revision == 1 and job.source == "batch"
    assert job.image and job.image.endswith("/mlmodel:1.0") and job.platforms == ("EC2",)
    assert job.execution_role == env.execution_role_arn and job.job_role == env.job_role_arn
    assert [(s.name, s.store) for s in job.secrets] == [("TOKEN", "secretsmanager"), ("DB", "ssm")]
    assert job.log is not None and job.log.driver == "awslogs" and job.log.option("awslogs-group") == "/ml/train"
    assert (job.size.vcpus, job.size.memory, job.size.gpus) == (4.0, 16384, 1)
    assert not job.multi_node and job.retry_attempts is None
    assert world(aws, job_definition="not-registered").job() is None


def test_a_local_job_definition_file_is_the_job_too(aws: Aws, tmp_path: Path) -> None:
    doc = {"jobDefinitionName": "ml-train", "type": "container", "retryStrategy": {"attempts": 3},
           "containerProperties": {"image": "busybox", "resourceRequirements": [
               {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}}
    (tmp_path / "jd.json").write_text(json.dumps(doc))
    inventory = Inventory(boto3.Session(region_name=REGION), REGION)

    job = AwsWorld(inventory, Scope(job_definition_file="jd.json"), REGION, tmp_path).job()

    assert job is not None and job.source == str(tmp_path / "jd.json") and job.revision is None
    assert job.image == "busybox" and job.retry_attempts == 3 and job.secrets == () and job.log is None


def test_a_job_definition_as_the_bat_checks_judge_it_notes_its_malformed_parts(aws: Aws, tmp_path: Path) -> None:
    """job_definition_file() (and job_definition()) give the definition with what is malformed noted on it, for the
    BAT checks that judge the definition itself; job() refuses it with the first such reason."""
    doc = {"jobDefinitionName": "ml-train", "type": "container", "containerProperties": {
        "image": "pytorch/pytorch:2", "command": ["python", "train.py"], "vcpus": 2, "secrets": "oops",
        "resourceRequirements": [{"type": "MEMORY", "value": "2048"}], "linuxParameters": {"sharedMemorySize": "1g"}}}
    (tmp_path / "jd.json").write_text(json.dumps(doc))
    w = AwsWorld(Inventory(boto3.Session(region_name=REGION), REGION), Scope(job_definition_file="jd.json"), REGION,
                 tmp_path)

    jd = w.job_definition_file("jd.json")

    assert jd.containers == (ContainerSpec("containerProperties", ("vcpus",), ("MEMORY",)),)
    assert jd.command == ("python", "train.py") and jd.image == "pytorch/pytorch:2"
    assert jd.shared_memory_mib is None and jd.shared_memory_malformed == "'1g'"
    assert jd.asks() == JobSize(2.0, 2048, None) and jd.num_nodes == 1 and jd.status == "ACTIVE"
    assert jd.fields_error is not None and jd.fields_error.startswith("job definition ml-train: a field is malformed")
    assert jd.document == doc  # kept for BAT003's schema validation only
    with pytest.raises(NotEvaluable, match="a field is malformed"):
        w.job()
    assert w.current_job_definition() == (jd, "")


def test_a_described_job_definition_and_a_missing_one(aws: Aws) -> None:
    env = make_env(aws)
    env.job_definition("ml-train", vcpus="4", memory="8192", gpus="1", linuxParameters={"sharedMemorySize": 2048})
    w = world(aws, job_definition="ml-train")

    jd, why = w.job_definition("ml-train")
    assert why == "" and jd is not None and jd.label == "ml-train:1" and jd.problem() is None
    assert jd.shared_memory_mib == 2048 and jd.asks() == JobSize(4.0, 8192, 1)
    assert jd.containers == (ContainerSpec("containerProperties", (), ("VCPU", "MEMORY", "GPU")),)
    assert w.job_definition("ml-train:7") == (None, "job definition ml-train:7: revision 7 does not exist "
                                                    "(latest ACTIVE revision is 1)")
    assert w.job_definition("nope") == (None, "job definition nope does not exist")


def test_how_a_job_definition_states_its_size_and_whether_it_has_ecs_properties() -> None:
    """What the canary's request follows: resourceRequirements (a malformed list counts) or the deprecated keys."""
    def container(**props: Any) -> dict[str, Any]:
        return {"jobDefinitionName": "jd", "containerProperties": {"image": "busybox", **props}}

    assert job(container(resourceRequirements=[{"type": "VCPU", "value": "1"}])).uses_resource_requirements()
    assert job(container(resourceRequirements="oops")).uses_resource_requirements()
    assert not job(container(vcpus=1, memory=512)).uses_resource_requirements()
    assert not job(container(resourceRequirements=[])).uses_resource_requirements()
    assert not job({"jobDefinitionName": "jd", "ecsProperties": {"taskProperties": []}}).uses_resource_requirements()
    assert job({"jobDefinitionName": "jd", "ecsProperties": {"taskProperties": [{}]}}).ecs_properties
    assert not job(container()).ecs_properties


def test_the_submitted_job_or_why_it_is_missing(aws: Aws) -> None:
    """The job a target is scoped to (--mlbatch-job) as typed facts; a job Batch does not have is (None, why); a
    read that failed, or none at all, is not evaluable (never a guess)."""
    read = world(aws)
    read.scope.discovered.update({SUBMITTED_JOB_ID: "j-1", SUBMITTED_JOB: {
        "jobId": "j-1", "status": "FAILED", "statusReason": "Essential container in task exited",
        "container": {"exitCode": 3, "logStreamName": "ml/default/abc"}}})
    facts, why = read.submitted_job()
    assert why == "" and facts is not None and facts.job_id == "j-1" and facts.status == "FAILED"
    assert facts.exit_code == 3 and facts.log_stream == "ml/default/abc"

    missing = world(aws)
    missing.scope.discovered.update({SUBMITTED_JOB_ID: "j-2", SUBMITTED_JOB: None})
    missing.scope.problems.append((SUBMITTED_JOB, "job j-2 does not exist in us-east-1", "failed"))
    assert missing.submitted_job() == (None, "job j-2 does not exist in us-east-1")

    missing.scope.problems.append((SUBMITTED_JOB, "could not read job j-2: AccessDenied", "error"))
    with pytest.raises(NotEvaluable, match="could not read job j-2: AccessDenied"):
        missing.submitted_job()
    unread = world(aws)
    unread.scope.discovered.update({SUBMITTED_JOB_ID: "j-3", SUBMITTED_JOB: None})
    with pytest.raises(NotEvaluable, match="job j-3 was not read"):
        unread.submitted_job()


def test_the_target_compute_environments_include_those_the_queue_orders(aws: Aws) -> None:
    env = make_env(aws)
    env.compute_environment("ml-ce")
    arn = env.compute_environment("ml-other", kind="SPOT")
    scope = Scope(compute_environments=["ml-ce"])
    scope.discovered["queue_compute_environment_names"] = ["ml-ce", "ml-other"]

    ces = AwsWorld(Inventory(boto3.Session(region_name=REGION), REGION), scope, REGION,
                   Path(".")).target_compute_environments()

    assert sorted(ces) == sorted(["ml-ce", "ml-other", arn, ces["ml-ce"].arn])
    assert ces[arn] is ces["ml-other"] and ces["ml-other"].spot
    assert ces["ml-ce"].instance_profile_ref == f"arn:aws:iam::123456789012:instance-profile/{env.profile}"


@pytest.mark.parametrize(("kind", "method"), [
    ("job_queue", "describe_job_queues"),
    ("compute_environment", "describe_compute_environments"),
    ("job_definition", "describe_job_definitions"),
])
def test_a_batch_listing_that_cannot_be_read_is_not_evaluable_never_empty(aws: Aws, kind: str, method: str) -> None:
    env = make_env(aws)
    env.compute_environment("ml-ce")
    env.queue()
    env.job_definition("ml-train")
    assert "ml-" + {"job_queue": "queue", "compute_environment": "ce", "job_definition": "train"}[kind] \
        in world(aws).names(kind)
    with denied_listing(method), pytest.raises(NotEvaluable, match="denied listing"):
        world(aws).names(kind)


def test_identity_or_why_there_are_no_credentials(aws: Aws) -> None:
    assert world(aws).identity() == Identity("123456789012", "arn:aws:sts::123456789012:user/moto")

    def no_session() -> Inventory:
        raise AwsError("sts:GetCallerIdentity", "credentials", "NoCredentialsError", "Unable to locate credentials")

    found = AwsWorld(no_session, Scope(), REGION, Path(".")).identity()
    assert found == Identity(None, None, "Unable to locate credentials")
    assert AwsWorld(no_session, Scope(), REGION, Path(".")).known_region("eu-west-1")
    assert not AwsWorld(no_session, Scope(), REGION, Path(".")).known_region("eu-west-9")
