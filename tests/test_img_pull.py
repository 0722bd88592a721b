"""IMG006 (pull permissions) on real moto roles, job definitions and repository policies; the cross-account
repository policy read is stubbed (botocore Stubber, validated against ECR's model) because moto serves
GetRepositoryPolicy only from the caller's own account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, REGION, Aws
from botocore.stub import Stubber
from iam_fixtures import IMAGE, base_config, batch_setup, make_role, policy_doc, run_check
from pytest_mlbatch.checks.img_pull import parse_ecr

from pytest_mlbatch import config
from pytest_mlbatch.engine import runner as engine
from pytest_mlbatch.engine.runtime import Runtime
from pytest_mlbatch.findings import Resource

OTHER = "210987654321"
OTHER_IMAGE = f"{OTHER}.dkr.ecr.{REGION}.amazonaws.com/shared/mlmodel:1.0"
PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]


@pytest.mark.parametrize(("uri", "expected"), [
    (IMAGE, (ACCOUNT, REGION, "mlmodel", "1.0")),
    (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/team/model@sha256:{'a' * 64}",
     (ACCOUNT, "eu-west-1", "team/model", f"sha256:{'a' * 64}")),
    (f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/m", (ACCOUNT, "cn-north-1", "m", None)),
    ("python:3.11", None),
    ("127.0.0.1:5000/mlmodel:1.0", None),
    ("12345.dkr.ecr.us-east-1.amazonaws.com/m:1", None),
])
def test_parse_ecr(uri: str, expected: Any) -> None:
    assert parse_ecr(uri) == expected


def ec2_config(image: str = IMAGE, role: str = "ecsInstanceRole") -> dict[str, Any]:
    cfg = base_config(instance_role=role)
    cfg["image"] = {"uri": image}
    cfg["batch"] = {"compute_environment": "ml-ce"}
    return cfg


def test_ec2_instance_role_with_the_ecs_policy_may_pull(tmp_path: Path, aws: Aws) -> None:
    batch_setup(aws)
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    row = run_check(tmp_path, ec2_config(), "IMG006")
    assert row["outcome"] == "passed", row["message"]
    assert row["message"].startswith(f"instance role (EC2) arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole pulling "
                                     f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlmodel: all 4 allowed")
    assert ("[answered by local evaluation of identity policies (organization SCPs not visible); "
            "iam:SimulatePrincipalPolicy not available") in row["message"]


def test_ec2_instance_role_without_ecr_rights_fails(preflight, aws: Aws) -> None:
    batch_setup(aws)
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", inline={"ecs": policy_doc(
        {"Effect": "Allow", "Action": ["ecs:*", "ecr:GetAuthorizationToken"], "Resource": "*"})})
    _, report = preflight.run(ec2_config(), "-k", "IMG006")
    row = preflight.result(report, "IMG006")
    assert row["outcome"] == "failed"
    assert "3 of 4 not allowed: ecr:BatchGetImage on " in row["message"]
    assert "(no statement allows it (implicit deny))" in row["message"]


def test_fargate_uses_the_execution_role_and_a_repository_policy_can_grant(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))  # not the one that pulls on Fargate
    exec_arn = make_role(aws, "exec-role", "ecs-tasks.amazonaws.com", inline={"token": policy_doc(
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"})})
    batch_setup(aws, execution_role_arn=exec_arn, fargate=True)
    aws.client("ecr").create_repository(repositoryName="mlmodel")
    cfg = ec2_config()
    cfg["batch"]["job_definition"] = "ml-train"
    row = run_check(tmp_path, cfg, "IMG006")
    assert row["outcome"] == "failed"
    assert f"execution role (Fargate) {exec_arn} pulling" in row["message"]
    assert "3 of 4 not allowed: ecr:BatchGetImage" in row["message"]  # and no repository policy grants it

    aws.client("ecr").set_repository_policy(repositoryName="mlmodel", policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": exec_arn}, "Action": PULL}]}))
    row = run_check(tmp_path, cfg, "IMG006")
    assert row["outcome"] == "passed", row["message"]
    assert "repository policy" in row["message"]


def test_cross_account_repository_that_cannot_be_seen_is_an_error(tmp_path: Path, aws: Aws) -> None:
    batch_setup(aws)
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    row = run_check(tmp_path, ec2_config(OTHER_IMAGE), "IMG006")
    assert row["outcome"] == "error"
    assert f"repository shared/mlmodel of account {OTHER} ({REGION}) cannot be seen" in row["message"]


def cross_account_run(tmp_path: Path, policy_text: str | None) -> dict[str, Any]:
    """IMG006 through the real engine with IAM on moto, and ECR's GetRepositoryPolicy for the other account's
    repository answered by a Stubber (validated against ECR's service model)."""
    runtime = Runtime(config.build("test", ec2_config(OTHER_IMAGE)), tmp_path)
    target = runtime.targets[0]
    stub = Stubber(target.inventory.client("ecr", REGION))
    params = {"registryId": OTHER, "repositoryName": "shared/mlmodel"}
    if policy_text is None:
        stub.add_client_error("get_repository_policy", "RepositoryPolicyNotFoundException", "no policy", 400,
                              expected_params=params)
    else:
        stub.add_response("get_repository_policy", {"registryId": OTHER, "repositoryName": "shared/mlmodel",
                                                    "policyText": policy_text}, params)
    with stub:
        result = engine.run(runtime, runtime.registry.get("IMG006"), target, Resource("image", OTHER_IMAGE))
        stub.assert_no_pending_responses()
    return result.as_json()


def repo_policy(principal: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": PULL}]})


def test_cross_account_repository_policy_must_grant_the_role(tmp_path: Path, aws: Aws) -> None:
    batch_setup(aws)
    role_arn = make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))

    row = cross_account_run(tmp_path, repo_policy(role_arn))
    assert row["outcome"] == "passed", row["message"]

    row = cross_account_run(tmp_path, repo_policy(f"arn:aws:iam::{ACCOUNT}:root"))
    assert row["outcome"] == "passed", row["message"]  # the account is granted; the role's own policy allows

    row = cross_account_run(tmp_path, repo_policy("arn:aws:iam::333333333333:root"))
    assert row["outcome"] == "failed"
    assert f"3 of 4 not allowed: ecr:BatchGetImage on arn:aws:ecr:{REGION}:{OTHER}:repository/shared/mlmodel" \
           in row["message"]

    row = cross_account_run(tmp_path, None)
    assert row["outcome"] == "failed"
    assert f"repository shared/mlmodel in account {OTHER} has no repository policy granting this account" \
           in row["message"]


def test_not_an_ecr_image_is_skipped(tmp_path: Path, aws: Aws) -> None:
    row = run_check(tmp_path, ec2_config("python:3.11"), "IMG006")
    assert row["outcome"] == "skipped"
    assert "is not an ECR image" in row["message"]


def test_role_found_through_the_instance_profile(tmp_path: Path, aws: Aws) -> None:
    batch_setup(aws)
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    iam = aws.client("iam")
    iam.create_instance_profile(InstanceProfileName="ml-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="ml-profile", RoleName="ecsInstanceRole")
    cfg = base_config(instance_profile=f"arn:aws:iam::{ACCOUNT}:instance-profile/ml-profile")
    cfg["image"] = {"uri": IMAGE}
    row = run_check(tmp_path, cfg, "IMG006")
    assert row["outcome"] == "passed", row["message"]
    # discovery may already have put the profile's role in the scope; either way the profile's role pulls
    assert row["message"].startswith("instance role (EC2")
    assert f"arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole pulling" in row["message"]


def test_fargate_job_without_execution_role_fails(tmp_path: Path, aws: Aws) -> None:
    batch_setup(aws, fargate=True)
    cfg = base_config()
    cfg["image"] = {"uri": IMAGE}
    cfg["batch"] = {"job_definition": "ml-train"}
    row = run_check(tmp_path, cfg, "IMG006")
    assert row["outcome"] == "failed"
    assert row["message"] == ("the job runs on Fargate, and no execution role is configured or in the job "
                              f"definition: nothing can pull {IMAGE}")


def test_arn_wildcards_ending_a_segment_and_a_2008_repository_policy(tmp_path: Path, aws: Aws) -> None:
    """`arn:aws:ecr:*` matches every repository (a * that ends an ARN segment crosses colons); an ECR repository
    policy in the console's default Version 2008-10-17 is evaluated with ${...} as literal text."""
    batch_setup(aws)
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", inline={"pull": policy_doc(
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Allow", "Action": PULL, "Resource": "arn:aws:ecr:*"})})
    row = run_check(tmp_path, ec2_config(), "IMG006")
    assert row["outcome"] == "passed", row["message"]

    exec_arn = make_role(aws, "token-only", "ec2.amazonaws.com", inline={"token": policy_doc(
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"})})
    aws.client("ecr").create_repository(repositoryName="mlmodel")
    aws.client("ecr").set_repository_policy(repositoryName="mlmodel", policyText=json.dumps({
        "Version": "2008-10-17", "Statement": [
            {"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": exec_arn}, "Action": PULL,
             "Condition": {"StringNotLike": {"aws:RequestedRegion": "${aws:PrincipalTag/region}"}}}]}))
    row = run_check(tmp_path, ec2_config(role="token-only"), "IMG006")
    assert row["outcome"] == "passed", row["message"]
    assert "repository policy" in row["message"]


def deny_pull_policy(role_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "no-ml-pulls", "Effect": "Deny", "Principal": {"AWS": role_arn}, "Action": "ecr:BatchGetImage"}]})


def test_same_account_repository_policy_deny_wins_over_the_role(tmp_path: Path, aws: Aws) -> None:
    """The role's own policies allow the pull, the repository's policy denies it: the Deny wins (issue 14, item 5)."""
    arn = make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    aws.client("ecr").create_repository(repositoryName="mlmodel")
    aws.client("ecr").set_repository_policy(repositoryName="mlmodel", policyText=deny_pull_policy(arn))
    row = run_check(tmp_path, ec2_config(), "IMG006")
    assert row["outcome"] == "failed"
    assert "1 of 4 not allowed: ecr:BatchGetImage on " in row["message"]
    assert "Deny statement 'no-ml-pulls' of repository policy of mlmodel" in row["message"]


def test_repository_policy_deny_wins_on_the_simulator_path_too(tmp_path: Path, aws: Aws) -> None:
    """SimulatePrincipalPolicy does not see repository policies, so its 'allowed' is joined with the repository's
    policy. moto does not implement SimulatePrincipalPolicy: the run's IAM client is a botocore Stubber (every request
    and response validated against IAM's model); ECR and STS answer from moto."""
    from iam_fixtures import trust

    arn = f"arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole"
    aws.client("ecr").create_repository(repositoryName="mlmodel")
    aws.client("ecr").set_repository_policy(repositoryName="mlmodel", policyText=deny_pull_policy(arn))
    runtime = Runtime(config.build("test", ec2_config() | {"batch": {}}), tmp_path)
    target = runtime.targets[0]
    stub = Stubber(target.inventory.client("iam"))
    stub.add_response("get_role", {"Role": {
        "RoleName": "ecsInstanceRole", "Arn": arn, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1",
        "CreateDate": "2026-01-01", "AssumeRolePolicyDocument": trust("ec2.amazonaws.com")}},
        {"RoleName": "ecsInstanceRole"})
    context = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "stringList"}
               for k, v in (("aws:RequestedRegion", REGION), ("aws:PrincipalAccount", ACCOUNT))]
    stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
        {"EvalActionName": "ecr:GetAuthorizationToken", "EvalDecision": "allowed"}]},
        {"PolicySourceArn": arn, "ActionNames": ["ecr:GetAuthorizationToken"], "ContextEntries": context})
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlmodel"
    stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
        {"EvalActionName": a, "EvalDecision": "allowed"} for a in sorted(PULL)]},
        {"PolicySourceArn": arn, "ActionNames": sorted(PULL), "ResourceArns": [repo], "ContextEntries": context})
    with stub:
        row = engine.run(runtime, runtime.registry.get("IMG006"), target, Resource("image", IMAGE)).as_json()
        stub.assert_no_pending_responses()
    assert row["outcome"] == "failed", row["message"]
    assert "ecr:BatchGetImage on " in row["message"] and "no-ml-pulls" in row["message"]
    assert "iam:SimulatePrincipalPolicy" in row["message"] and "repository policy" in row["message"]
