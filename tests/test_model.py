"""The model of a target built from a moto world (aws/world.py): compute environments, instance types and key
pairs as typed facts, and what is not there is absent rather than guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from backends import REGION, Aws
from bat_fixtures import make_env

from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.model.scope import Scope


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
