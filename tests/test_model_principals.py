"""The principals part of a target's model built from a moto world (aws/world.py, aws/principals.py, aws/secrets.py):
roles, instance profiles, the caller, secrets and parameters with their keys, KMS keys, log groups, as typed facts;
what is not there is absent rather than guessed."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from backends import ACCOUNT, REGION, Aws
from iam_fixtures import make_role

from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.scope import Scope


def world() -> AwsWorld:
    return AwsWorld(Inventory(boto3.Session(region_name=REGION), REGION), Scope(), REGION, Path("."))


def test_roles_profiles_and_the_caller(aws: Aws) -> None:
    arn = make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", path="/ml/", managed=("ec2",))
    iam = aws.client("iam")
    iam.create_instance_profile(InstanceProfileName="ecs-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="ecs-profile", RoleName="ecsInstanceRole")
    w = world()

    role = w.role("ecsInstanceRole")
    assert role is not None and role.arn == arn and role.path == "/ml/" and role.role_id
    assert role.principal.kind == "role" and role.principal.arn == arn and role.boundary_arn is None
    assert w.role("not-there") is None
    profile = w.instance_profile("ecs-profile")
    assert profile is not None and profile.roles == ("ecsInstanceRole",)
    assert w.instance_profile("not-there") is None
    attached, inline = w.role_policy_names("ecsInstanceRole")
    assert attached == ("arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",) and inline == ()
    assert w.partition == "aws"
    managed = w.managed_policy("service-role/AmazonEC2ContainerServiceforEC2Role")
    assert managed.version and managed.document["Statement"]
    with pytest.raises(NotEvaluable, match="neither an IAM user nor an assumed role"):
        w.caller()  # moto's default identity, arn:aws:sts::ACCOUNT:user/moto, is no principal IAM can describe


def test_secret_sources_resolve_suffixes_names_and_keys(aws: Aws) -> None:
    key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    secret = aws.client("secretsmanager").create_secret(Name="ml/token", SecretString="x", KmsKeyId=key)["ARN"]
    aws.client("ssm").put_parameter(Name="/ml/db", Value="v", Type="SecureString", KeyId=key)
    aws.client("ssm").put_parameter(Name="plain", Value="v", Type="String")
    base = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ml/token"
    values = [f"{base}:password::", secret, "/ml/db", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ml/db", "plain",
              "/ml/missing", f"{base}-gone-XyZ123"]

    found = world().secret_sources(values)

    assert [s.value_from for s in found] == values
    by_json_key, full, db, db_arn, plain, missing, gone = found
    assert by_json_key.exists and by_json_key.arn == secret and by_json_key.kms_key == key
    assert full.exists and full.arn == secret
    assert db.exists and db.store == "ssm" and db.kms_key == key and db.encrypted
    assert db.arn == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ml/db"
    assert db_arn.exists and db_arn.arn == db.arn
    assert plain.exists and not plain.encrypted
    assert not missing.exists and not gone.exists


def test_kms_keys_with_their_policies_and_log_groups(aws: Aws) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]}
    arn = aws.client("kms").create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    aws.client("logs").create_log_group(logGroupName="/ml/train")
    w = world()

    key = w.kms_key(arn)
    assert key is not None and key.arn == arn and not key.aws_managed and key.enabled
    assert key.policy is not None and key.policy["Statement"][0]["Principal"]["AWS"].endswith(":root")
    assert w.kms_key("1234abcd-12ab-34cd-56ef-1234567890ab") is None
    group = w.log_group("/ml/train")
    assert group is not None and group.name == "/ml/train"
    assert w.log_group("/ml") is None  # a prefix of a group is not the group
