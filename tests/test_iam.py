"""IAM001-IAM006 on real moto roles, profiles and users (managed policies loaded), and their create-only fixers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, Aws
from iam_fixtures import base_config, batch_setup, make_role, managed_document, policy_doc, run_check, trust

TAG = {"Key": "pytest-mlbatch:managed", "Value": "true"}
SERVICE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBatchServiceRole"


def journal(root: pytest.Pytester | Path) -> str:
    path = (root.path if isinstance(root, pytest.Pytester) else root) / ".mlbatch" / "journal.jsonl"
    return path.read_text() if path.exists() else ""


# -- IAM001 ------------------------------------------------------------------------------------------------
def test_service_role_with_managed_policy_at_its_real_arn_passes(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "AWSBatchServiceRole", "batch.amazonaws.com", path="/service-role/", managed=("batch",))
    row = run_check(tmp_path, base_config(service_role=SERVICE_ROLE_ARN), "IAM001")
    assert row["outcome"] == "passed", row["message"]
    assert "AWSBatchServiceRole trusts batch.amazonaws.com" in row["message"]
    # the managed policy's current version, whatever AWS (here moto's copy of it) has made it by now
    version = aws.client("iam").get_policy(
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")["Policy"]["DefaultVersionId"]
    assert f"for AWSBatchServiceRole ({version}) actions: all" in row["message"]
    # moto answers SimulatePrincipalPolicy with an HTML 500 page: the message names the method that answered
    assert ("answered by local evaluation of identity policies (organization SCPs not visible); "
            "iam:SimulatePrincipalPolicy not available") in row["message"]


def test_service_role_arn_without_its_path_fails(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "AWSBatchServiceRole", "batch.amazonaws.com", path="/service-role/", managed=("batch",))
    row = run_check(tmp_path, base_config(service_role=f"arn:aws:iam::{ACCOUNT}:role/AWSBatchServiceRole"), "IAM001")
    assert row["outcome"] == "failed"
    assert (f"arn:aws:iam::{ACCOUNT}:role/AWSBatchServiceRole is not the role's ARN: role AWSBatchServiceRole is "
            f"{SERVICE_ROLE_ARN} (path /service-role/)") in row["message"]


def test_equivalent_custom_service_policy_passes_and_a_narrower_one_fails(tmp_path: Path, aws: Aws) -> None:
    document = managed_document(aws, "batch")
    for statement in document["Statement"]:  # written differently, but grants the same outside China
        if statement["Action"] == "iam:PassRole":
            statement["Condition"] = {"StringLike": {"iam:PassedToService": ["ec2.amazonaws.com", "ecs-tasks.*"]}}
    make_role(aws, "custom-batch", "batch.amazonaws.com", inline={"copy": json.dumps(document)})
    narrower = copy.deepcopy(document)
    narrower["Statement"][0]["Action"].remove("autoscaling:DescribeScalingActivities")
    make_role(aws, "narrow-batch", "batch.amazonaws.com", inline={"narrow": json.dumps(narrower)})

    row = run_check(tmp_path, base_config(service_role="custom-batch"), "IAM001")
    assert row["outcome"] == "passed", row["message"]

    row = run_check(tmp_path, base_config(service_role="narrow-batch"), "IAM001")
    assert row["outcome"] == "failed"
    assert "1 of" in row["message"] and "autoscaling:DescribeScalingActivities: denied" in row["message"]


def test_service_role_trusting_another_service_fails(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "AWSBatchServiceRole", "ec2.amazonaws.com", path="/service-role/", managed=("batch",))
    row = run_check(tmp_path, base_config(service_role=SERVICE_ROLE_ARN), "IAM001")
    assert row["outcome"] == "failed"
    assert "does not let batch.amazonaws.com assume it; it trusts ec2.amazonaws.com" in row["message"]


def test_conditional_trust_is_unknown_never_passed(tmp_path: Path, aws: Aws) -> None:
    """aws:SourceArn (which resource the service acts for) is not known: unknown, never passed."""
    make_role(aws, "AWSBatchServiceRole", "batch.amazonaws.com", path="/service-role/", managed=("batch",),
              trust_doc=trust("batch.amazonaws.com", Condition={"ArnLike": {
                  "aws:SourceArn": f"arn:aws:batch:*:{ACCOUNT}:compute-environment/ml-*"}}))
    row = run_check(tmp_path, base_config(service_role=SERVICE_ROLE_ARN), "IAM001")
    assert row["outcome"] == "error"
    assert "cannot tell whether AWSBatchServiceRole trusts batch.amazonaws.com" in row["message"]


@pytest.mark.parametrize(("account", "outcome"), [(ACCOUNT, "passed"), ("111111111111", "failed")])
def test_trust_with_source_account_is_judged_with_the_roles_account(tmp_path: Path, aws: Aws, account: str,
                                                                    outcome: str) -> None:
    """The recommended confused-deputy condition (aws:SourceAccount): the service acts for the role's account."""
    make_role(aws, "AWSBatchServiceRole", "batch.amazonaws.com", path="/service-role/", managed=("batch",),
              trust_doc=trust("batch.amazonaws.com", Condition={"StringEquals": {"aws:SourceAccount": account}}))
    row = run_check(tmp_path, base_config(service_role=SERVICE_ROLE_ARN), "IAM001")
    assert row["outcome"] == outcome, row["message"]


def test_service_linked_role_by_name_arn_or_path_is_judged_as_one(tmp_path: Path, aws: Aws) -> None:
    """AWSServiceRoleForBatch is not judged against AWSBatchServiceRole: AWS manages its permissions."""
    for value in ("AWSServiceRoleForBatch", "aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"):
        row = run_check(tmp_path, base_config(service_role=value), "IAM001")
        assert row["outcome"] == "failed"
        assert "the AWS Batch service-linked role does not exist" in row["message"]
    iam = aws.client("iam")
    slr = iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]
    ecs = iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")["Role"]
    for value in ("AWSServiceRoleForBatch", slr["Arn"], "aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"):
        row = run_check(tmp_path, base_config(service_role=value), "IAM001")
        assert row["outcome"] == "passed", row["message"]
        assert row["message"] == f"the service-linked role {slr['Arn']} exists (its permissions are managed by AWS)"
    row = run_check(tmp_path, base_config(service_role=ecs["Arn"]), "IAM001")
    assert row["outcome"] == "failed"
    assert row["message"] == f"{ecs['Arn']} is the service-linked role of ecs.amazonaws.com, not of batch.amazonaws.com"


def test_service_linked_role_missing_fix_creates_it_once(tmp_path: Path, aws: Aws) -> None:
    cfg = base_config(service_role="service-linked")
    row = run_check(tmp_path, cfg, "IAM001")
    assert row["outcome"] == "failed"
    assert "the AWS Batch service-linked role does not exist" in row["message"]

    row = run_check(tmp_path, cfg, "IAM001", fix=True)
    assert row["outcome"] == "fixed"
    assert row["fix"]["calls"] == ["iam:CreateServiceLinkedRole", "iam:TagRole"]
    roles = aws.client("iam").list_roles(PathPrefix="/aws-service-role/batch.amazonaws.com/")["Roles"]
    assert len(roles) == 1
    assert TAG in aws.client("iam").list_role_tags(RoleName=roles[0]["RoleName"])["Tags"]

    before = journal(tmp_path)
    assert '"status": "applied"' in before  # the fix was journaled
    row = run_check(tmp_path, cfg, "IAM001", fix=True)
    assert row["outcome"] == "passed"
    assert row["message"].startswith("the service-linked role arn:aws:iam::123456789012:role/aws-service-role/")
    assert journal(tmp_path) == before  # a second --fix makes no mutating call


def test_missing_custom_service_role_is_not_created(tmp_path: Path, aws: Aws) -> None:
    row = run_check(tmp_path, base_config(service_role="my-batch-role"), "IAM001", fix=True)
    assert row["outcome"] == "failed"
    assert "role my-batch-role does not exist" in row["message"]
    assert "not fixed: my-batch-role is a custom role" in row["message"]
    assert aws.client("iam").list_roles()["Roles"] == []


# -- IAM002 ------------------------------------------------------------------------------------------------
def test_instance_role_missing_fix_creates_role_with_policy(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    cfg = base_config(instance_role="ecsInstanceRole")
    _, report = preflight.run(cfg, "-k", "IAM002", "--fix-dry-run")
    row = preflight.result(report, "IAM002")
    assert row["outcome"] == "failed"
    assert row["message"].startswith("role ecsInstanceRole does not exist (dry run: would create role "
                                     "/ecsInstanceRole trusted by ec2.amazonaws.com, attach "
                                     "AmazonEC2ContainerServiceforEC2Role)")
    assert report["fixes"][0]["calls"] == ["iam:CreateRole", "iam:AttachRolePolicy"]
    assert aws.client("iam").list_roles()["Roles"] == []

    _, report = preflight.run(cfg, "-k", "IAM002", "--fix")
    assert preflight.result(report, "IAM002")["outcome"] == "fixed"
    iam = aws.client("iam")
    role = iam.get_role(RoleName="ecsInstanceRole")["Role"]
    assert TAG in role["Tags"]
    attached = iam.list_attached_role_policies(RoleName="ecsInstanceRole")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]

    before = journal(pytester)

    assert '"status": "applied"' in before  # the fix was journaled
    _, report = preflight.run(cfg, "-k", "IAM002", "--fix")
    assert preflight.result(report, "IAM002")["outcome"] == "passed"
    assert journal(pytester) == before


def test_instance_role_lacking_ecr_and_logs_fails_and_is_never_edited(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", inline={"ecs": policy_doc(
        {"Effect": "Allow", "Action": ["ecs:*", "ec2:DescribeTags"], "Resource": "*"})})
    row = run_check(tmp_path, base_config(instance_role="ecsInstanceRole"), "IAM002", fix=True)
    assert row["outcome"] == "failed"
    assert "4 of 21 not allowed" not in row["message"]  # counts come from the managed policy, not hard-coded
    assert "ecr:GetAuthorizationToken: denied (no statement allows it (implicit deny))" in row["message"]
    assert "logs:PutLogEvents" in row["message"]
    assert "not fixed: role ecsInstanceRole exists; --fix never edits an existing role or policy" in row["message"]
    assert aws.client("iam").list_attached_role_policies(RoleName="ecsInstanceRole")["AttachedPolicies"] == []


def test_instance_role_explicit_deny_names_the_statement(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",), inline={"guard": policy_doc(
        {"Sid": "NoRegister", "Effect": "Deny", "Action": "ecs:RegisterContainerInstance", "Resource": "*"})})
    row = run_check(tmp_path, base_config(instance_role="ecsInstanceRole"), "IAM002")
    assert row["outcome"] == "failed"
    assert ("ecs:RegisterContainerInstance: denied (Deny statement 'NoRegister' of inline policy guard)"
            in row["message"])


# -- IAM003 ------------------------------------------------------------------------------------------------
def test_role_named_as_instance_profile_fails_and_fix_creates_profile(preflight, aws: Aws,
                                                                      pytester: pytest.Pytester) -> None:
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    cfg = base_config(instance_role="ecsInstanceRole", instance_profile="ecsInstanceRole")
    _, report = preflight.run(cfg, "-k", "IAM003", "--fix")
    row = preflight.result(report, "IAM003")
    assert row["outcome"] == "fixed"
    assert "(ecsInstanceRole is a role, not an instance profile" in row["message"]  # what failed before the fix
    profile = aws.client("iam").get_instance_profile(InstanceProfileName="ecsInstanceRole")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["ecsInstanceRole"]
    assert TAG in profile["Tags"]

    before = journal(pytester)

    assert '"status": "applied"' in before  # the fix was journaled
    _, report = preflight.run(cfg, "-k", "IAM003", "--fix")
    row = preflight.result(report, "IAM003")
    assert row["outcome"] == "passed"
    assert row["message"] == (f"instance profile arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole "
                              "contains role ecsInstanceRole")
    assert journal(pytester) == before


def test_profile_holding_another_role_fails(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    make_role(aws, "other", "ec2.amazonaws.com")
    iam = aws.client("iam")
    iam.create_instance_profile(InstanceProfileName="ml-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="ml-profile", RoleName="other")
    cfg = base_config(instance_role="ecsInstanceRole",
                      instance_profile=f"arn:aws:iam::{ACCOUNT}:instance-profile/ml-profile")
    row = run_check(tmp_path, cfg, "IAM003", fix=True)
    assert row["outcome"] == "failed"
    assert "instance profile ml-profile contains other, not the instance role ecsInstanceRole" in row["message"]
    assert "not fixed: instance profile ml-profile already holds a role" in row["message"]


def test_missing_profile_without_role_fails(tmp_path: Path, aws: Aws) -> None:
    row = run_check(tmp_path, base_config(instance_profile="nothing-here"), "IAM003")
    assert (row["outcome"], row["message"]) == ("failed", "instance profile nothing-here does not exist")


def test_a_misspelt_role_or_profile_says_which_one_was_meant(tmp_path: Path, aws: Aws) -> None:
    iam = aws.client("iam")
    iam.create_role(RoleName="ml-ecs-instance-role", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}))
    iam.create_instance_profile(InstanceProfileName="ml-ce-profile")
    row = run_check(tmp_path, base_config(instance_profile="ml-ce-profle"), "IAM003")
    assert row["outcome"] == "failed" and "did you mean 'ml-ce-profile'?" in row["message"], row
    row = run_check(tmp_path, base_config(instance_role="ml-ecs-instance-rol"), "IAM002")
    assert row["outcome"] == "failed" and "did you mean 'ml-ecs-instance-role'?" in row["message"], row


# -- IAM004 ------------------------------------------------------------------------------------------------
def test_execution_role_needs_the_job_definitions_secrets(tmp_path: Path, aws: Aws) -> None:
    """IAM004 (CHECKS.md: the execution role can read the job definition's secrets) names the secrets it may not
    read and points at IAM007, which owns each secret's decision; IAM007 says IAM004 names them too."""
    exec_arn = make_role(aws, "ecsTaskExecutionRole", "ecs-tasks.amazonaws.com", managed=("exec",))
    secret = aws.client("secretsmanager").create_secret(Name="db-password", SecretString="x")["ARN"]
    aws.client("ssm").put_parameter(Name="/ml/api-token", Value="t", Type="String")
    parameter = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ml/api-token"
    batch_setup(aws, execution_role_arn=exec_arn, secrets=[
        {"name": "DB_PASSWORD", "valueFrom": secret},
        {"name": "API_TOKEN", "valueFrom": "/ml/api-token"}])
    cfg = base_config(execution_role="ecsTaskExecutionRole")
    cfg["batch"] = {"job_definition": "ml-train"}
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "failed"
    assert row["message"] == (
        f"role {exec_arn} for ECR pull, logs and 2 secret(s): 2 of the job's 2 secret(s) not readable ({secret}, "
        f"{parameter}): IAM007 (secrets-readable) has the decision for each")
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed"
    assert f"secretsmanager:GetSecretValue on {secret}: denied" in row["message"]
    assert f"ssm:GetParameters on {parameter}: denied" in row["message"]
    assert row["message"].endswith("(IAM004 names these secrets too, and points here)")

    aws.client("iam").put_role_policy(RoleName="ecsTaskExecutionRole", PolicyName="secrets", PolicyDocument=policy_doc(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-password-*"},
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": f"arn:aws:ssm:*:{ACCOUNT}:parameter/ml/*"}))
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "passed", row["message"]
    assert "ecsTaskExecutionRole trusts ecs-tasks.amazonaws.com" in row["message"]


def test_execution_role_missing_fix_creates_it(tmp_path: Path, aws: Aws) -> None:
    cfg = base_config(execution_role="ecsTaskExecutionRole")
    assert run_check(tmp_path, cfg, "IAM004", fix=True)["outcome"] == "fixed"
    iam = aws.client("iam")
    role = iam.get_role(RoleName="ecsTaskExecutionRole")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    attached = iam.list_attached_role_policies(RoleName="ecsTaskExecutionRole")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSTaskExecutionRolePolicy"]
    before = journal(tmp_path)
    assert '"status": "applied"' in before  # the fix was journaled
    assert run_check(tmp_path, cfg, "IAM004", fix=True)["outcome"] == "passed"
    assert journal(tmp_path) == before


def test_execution_role_trusting_ec2_fails(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ecsTaskExecutionRole", "ec2.amazonaws.com", managed=("exec",))
    row = run_check(tmp_path, base_config(execution_role="ecsTaskExecutionRole"), "IAM004")
    assert row["outcome"] == "failed"
    assert "does not let ecs-tasks.amazonaws.com assume it" in row["message"]


# -- IAM005 ------------------------------------------------------------------------------------------------
JOB_ROLE = {"name": "ml-job-role", "path": "/ml/", "allow": [
    {"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"},
    {"action": ["s3:PutObject"], "resource": ["arn:aws:s3:::ml-out/*"]}]}


def test_job_role_missing_fix_creates_exactly_the_declared_statements(tmp_path: Path, aws: Aws) -> None:
    cfg = base_config(job_role=JOB_ROLE)
    row = run_check(tmp_path, cfg, "IAM005")
    assert (row["outcome"], row["message"]) == ("failed", "role ml-job-role does not exist")

    row = run_check(tmp_path, cfg, "IAM005", fix=True)
    assert row["outcome"] == "fixed"
    iam = aws.client("iam")
    role = iam.get_role(RoleName="ml-job-role")["Role"]
    assert role["Path"] == "/ml/" and TAG in role["Tags"]
    assert iam.list_attached_role_policies(RoleName="ml-job-role")["AttachedPolicies"] == []
    doc = iam.get_role_policy(RoleName="ml-job-role", PolicyName="pytest-mlbatch-job-role")["PolicyDocument"]
    assert doc["Statement"] == [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::ml-data/*"]},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::ml-out/*"]}]

    before = journal(tmp_path)

    assert '"status": "applied"' in before  # the fix was journaled
    assert run_check(tmp_path, cfg, "IAM005", fix=True)["outcome"] == "passed"
    assert journal(tmp_path) == before


def test_job_role_missing_a_declared_action_fails(tmp_path: Path, aws: Aws) -> None:
    make_role(aws, "ml-job-role", "ecs-tasks.amazonaws.com", path="/ml/", inline={"data": policy_doc(
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::ml-data/*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::ml-data/*"})})
    row = run_check(tmp_path, base_config(job_role=JOB_ROLE), "IAM005", fix=True)
    assert row["outcome"] == "failed"
    assert "1 of 2 not allowed: s3:PutObject on arn:aws:s3:::ml-out/*: denied" in row["message"]
    assert "never edits an existing role" in row["message"]


# -- IAM006 ------------------------------------------------------------------------------------------------
def submit_config() -> dict[str, Any]:
    cfg = base_config(job_role={"name": "ml-job-role"}, execution_role="ecsTaskExecutionRole")
    cfg["batch"] = {"job_queue": "ml-queue", "job_definition": "ml-train"}
    return cfg


def submit_setup(aws: Aws) -> dict[str, str]:
    job = make_role(aws, "ml-job-role", "ecs-tasks.amazonaws.com")
    execution = make_role(aws, "ecsTaskExecutionRole", "ecs-tasks.amazonaws.com", managed=("exec",))
    arns = batch_setup(aws, job_role_arn=job, execution_role_arn=execution)
    return {**arns, "job_role": job, "execution_role": execution}


def submitter_policy(arns: dict[str, str], pass_roles: list[str]) -> str:
    return policy_doc(
        {"Effect": "Allow", "Action": "batch:SubmitJob",
         "Resource": [arns["queue"], arns["job_definition"].rsplit(":", 1)[0] + ":*"]},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": pass_roles})


def use_credentials(monkeypatch: pytest.MonkeyPatch, creds: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    if creds.get("SessionToken"):
        monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])


def test_caller_not_an_iam_principal_is_an_error_not_a_pass(tmp_path: Path, aws: Aws) -> None:
    submit_setup(aws)
    row = run_check(tmp_path, submit_config(), "IAM006")
    # moto's default identity (arn:aws:sts::...:user/moto) has no IAM user behind it: nothing to evaluate
    assert row["outcome"] == "error"
    assert "is neither an IAM user nor an assumed role" in row["message"]


def test_iam_user_may_submit_or_not(tmp_path: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    arns = submit_setup(aws)
    iam = aws.client("iam")
    iam.create_user(UserName="alice")
    iam.create_group(GroupName="submitters")
    iam.add_user_to_group(GroupName="submitters", UserName="alice")
    iam.put_group_policy(GroupName="submitters", PolicyName="submit",
                         PolicyDocument=submitter_policy(arns, [arns["job_role"], arns["execution_role"]]))
    iam.create_user(UserName="bob")
    iam.put_user_policy(UserName="bob", PolicyName="submit",
                        PolicyDocument=submitter_policy(arns, [arns["job_role"]]))
    alice = iam.create_access_key(UserName="alice")["AccessKey"]
    bob = iam.create_access_key(UserName="bob")["AccessKey"]

    use_credentials(monkeypatch, alice)
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "passed", row["message"]
    assert row["message"].startswith(f"caller arn:aws:iam::{ACCOUNT}:user/alice: all 4 allowed")

    use_credentials(monkeypatch, bob)
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "failed"
    assert (f"1 of 4 not allowed: iam:PassRole on {arns['execution_role']} (iam:PassedToService="
            "batch.amazonaws.com): denied") in row["message"]


def test_assumed_role_caller(tmp_path: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    arns = submit_setup(aws)
    submitter = make_role(aws, "submitter", "", trust_doc=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}),
        inline={"submit": submitter_policy(arns, [arns["job_role"], arns["execution_role"]])})
    creds = aws.client("sts").assume_role(RoleArn=submitter, RoleSessionName="ci")["Credentials"]
    use_credentials(monkeypatch, creds)
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "passed", row["message"]
    assert f"caller {submitter} (session policies, if any, are not visible): all 4 allowed" in row["message"]


def test_check_answered_by_simulate_principal_policy(tmp_path: Path, aws: Aws) -> None:
    """IAM002 where the account answers iam:SimulatePrincipalPolicy. moto does not implement it, so the IAM client
    of the run's inventory is a botocore Stubber (every request and response validated against IAM's model);
    STS still answers from moto."""
    from botocore.stub import Stubber

    from pytest_mlbatch import config
    from pytest_mlbatch.engine import runner as engine
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.findings import Resource

    runtime = Runtime(config.build("test", base_config(instance_role="ecsInstanceRole")), tmp_path)
    target = runtime.targets[0]
    stub = Stubber(target.inventory.client("iam"))
    arn = f"arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole"
    reference = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    stub.add_response("get_role", {"Role": {
        "RoleName": "ecsInstanceRole", "Arn": arn, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE1",
        "CreateDate": "2026-01-01",
        "AssumeRolePolicyDocument": trust("ec2.amazonaws.com")}}, {"RoleName": "ecsInstanceRole"})
    stub.add_response("get_policy", {"Policy": {"PolicyName": "AmazonEC2ContainerServiceforEC2Role",
                                                "DefaultVersionId": "v10"}}, {"PolicyArn": reference})
    stub.add_response("get_policy_version", {"PolicyVersion": {"VersionId": "v10", "IsDefaultVersion": True,
                                                               "Document": policy_doc({
                                                                   "Effect": "Allow", "Resource": "*", "Action": [
                                                                       "ecs:RegisterContainerInstance",
                                                                       "ecr:GetAuthorizationToken"]})}},
                      {"PolicyArn": reference, "VersionId": "v10"})
    stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
        {"EvalActionName": "ecr:GetAuthorizationToken", "EvalDecision": "implicitDeny"},
        {"EvalActionName": "ecs:RegisterContainerInstance", "EvalDecision": "allowed", "MatchedStatements": [
            {"SourcePolicyId": "ecs-only", "SourcePolicyType": "IAM Policy"}]}]},
        {"PolicySourceArn": arn, "ActionNames": ["ecr:GetAuthorizationToken", "ecs:RegisterContainerInstance"],
         "ContextEntries": [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "stringList"}
                            for k, v in (("aws:RequestedRegion", "us-east-1"), ("aws:PrincipalAccount", ACCOUNT))]})
    with stub:
        row = engine.run(runtime, runtime.registry.get("IAM002"), target,
                         Resource("instance_role", "ecsInstanceRole")).as_json()
        stub.assert_no_pending_responses()
    assert row["outcome"] == "failed"
    assert row["message"] == (
        f"role {arn} for AmazonEC2ContainerServiceforEC2Role (v10) actions: 1 of 2 not allowed: "
        "ecr:GetAuthorizationToken: denied (no statement allows it (implicit deny)) "
        "[answered by iam:SimulatePrincipalPolicy]")


def test_sandbox_iam_outcomes_and_the_instance_profile_fix(pytester: pytest.Pytester) -> None:
    """The sandbox's compute environment names instance profile 'ecsInstanceRole' while only a role has that name:
    IAM003 fails and --fix creates the profile with the role, the one the compute environment uses."""
    pytester.runpytest_subprocess("--mlbatch-sandbox", "--mlbatch-json", "r.json", "-p", "no:cacheprovider",
                                  "-k", "IAM or IMG006", "--fix")
    data = json.loads((pytester.path / "r.json").read_text())
    rows = {r["check_id"]: r for r in data["results"]}
    assert {k: r["outcome"] for k, r in rows.items()} == {
        "IAM001": "passed", "IAM002": "passed", "IAM003": "fixed", "IAM004": "passed", "IAM005": "passed",
        "IAM006": "passed", "IAM007": "skipped", "IAM008": "skipped", "IMG006": "passed"}
    message = rows["IAM003"]["message"]
    assert message.startswith("fixed: create instance profile ecsInstanceRole and add role ecsInstanceRole: created ")
    assert "Arn arn:aws:iam::123456789012:instance-profile/ecsInstanceRole" in message
    assert message.endswith(
        "(ecsInstanceRole is a role, not an instance profile: the compute environment's instanceRole must name an "
        "instance profile that contains the role (no instance profile ecsInstanceRole exists))")
    assert [f["calls"] for f in data["fixes"]] == [["iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile"]]
    # the sandbox's caller is an assumed role allowed to submit: IAM006 decides on it
    assert "caller arn:aws:iam::123456789012:role/ml-engineer" in rows["IAM006"]["message"]


def test_log_group_of_the_job_definition() -> None:
    from pytest_mlbatch.checks.iam import log_group

    from pytest_mlbatch.aws.world import job

    assert log_group(None) == "/aws/batch/job"
    custom = {"containerProperties": {"image": "busybox", "logConfiguration": {
        "logDriver": "awslogs", "options": {"awslogs-group": "/ml/train"}}}}
    assert log_group(job(custom)) == "/ml/train"


def test_role_arn_given_as_instance_role_of_the_compute_environment(tmp_path: Path, aws: Aws) -> None:
    arn = make_role(aws, "ecsInstanceRole", "ec2.amazonaws.com", managed=("ec2",))
    row = run_check(tmp_path, base_config(instance_profile=arn), "IAM003", fix=True)
    assert row["outcome"] == "failed"
    assert row["message"].startswith(f"{arn} is a role, not an instance profile")
    assert "not fixed: the compute environment names a role ARN" in row["message"]
    aws.client("iam").create_instance_profile(InstanceProfileName="ecsInstanceRole")
    row = run_check(tmp_path, base_config(instance_profile=arn), "IAM003")
    assert row["outcome"] == "failed"  # a profile of that name exists, but the compute environment names the role
    assert row["message"].endswith("(instance profile ecsInstanceRole exists: use its name or ARN)")


def test_root_caller_may_submit(tmp_path: Path, aws: Aws) -> None:
    """moto never answers GetCallerIdentity with the root user, so STS here is a botocore Stubber (validated
    against STS's model)."""
    from botocore.stub import Stubber

    from pytest_mlbatch import config
    from pytest_mlbatch.engine import runner as engine
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.findings import Resource

    runtime = Runtime(config.build("test", submit_config()), tmp_path)
    target = runtime.targets[0]
    stub = Stubber(target.inventory.client("sts"))
    stub.add_response("get_caller_identity", {"UserId": ACCOUNT, "Account": ACCOUNT,
                                              "Arn": f"arn:aws:iam::{ACCOUNT}:root"}, {})
    with stub:
        row = engine.run(runtime, runtime.registry.get("IAM006"), target, Resource("caller", "caller")).as_json()
    assert row["outcome"] == "passed"
    assert row["message"] == (f"the caller is the root user of account {ACCOUNT}: IAM policies do not limit it "
                              "(only an organization SCP could)")


def test_permissions_boundary_limits_the_caller(tmp_path: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """An assumed role with an admin policy whose permissions boundary allows only batch:* (moto returns a role's
    boundary, not a user's)."""
    submit_setup(aws)
    iam = aws.client("iam")
    boundary = iam.create_policy(PolicyName="batch-only", PolicyDocument=policy_doc(
        {"Effect": "Allow", "Action": "batch:*", "Resource": "*"}))["Policy"]["Arn"]
    arn = iam.create_role(RoleName="bounded", PermissionsBoundary=boundary, AssumeRolePolicyDocument=json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName="bounded", PolicyName="admin", PolicyDocument=policy_doc(
        {"Effect": "Allow", "Action": "*", "Resource": "*"}))
    use_credentials(monkeypatch, aws.client("sts").assume_role(RoleArn=arn, RoleSessionName="ci")["Credentials"])
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "failed"
    assert "2 of 4 not allowed: iam:PassRole on" in row["message"]
    assert "(the permissions boundary does not allow it)" in row["message"]


# -- the evaluator on real policies: region guardrails, ABAC variables, wildcard ARNs, PassedToService ---------
PULL_AND_LOG = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability", "logs:CreateLogStream", "logs:PutLogEvents"]


def _execution_role(aws: Aws, name: str, *statements: dict[str, Any]) -> dict[str, Any]:
    make_role(aws, name, "ecs-tasks.amazonaws.com", inline={"p": policy_doc(*statements)})
    return base_config(execution_role=name)


def test_region_guardrail_passes_in_its_region_and_fails_outside(tmp_path: Path, aws: Aws) -> None:
    """Deny StringNotEqualsIfExists aws:RequestedRegion: the request's region (us-east-1) is known."""
    allow_all = {"Effect": "Allow", "Action": PULL_AND_LOG, "Resource": "*"}

    def guardrail(region: str) -> dict[str, Any]:
        return {"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*",
                "Condition": {"StringNotEqualsIfExists": {"aws:RequestedRegion": [region]}}}

    row = run_check(tmp_path, _execution_role(aws, "in-region", allow_all, guardrail("us-east-1")), "IAM004")
    assert row["outcome"] == "passed", row["message"]
    row = run_check(tmp_path, _execution_role(aws, "out-of-region", allow_all, guardrail("eu-west-1")), "IAM004")
    assert row["outcome"] == "failed"
    assert "6 of 6 not allowed" in row["message"] and "(Deny statement #2 of inline policy p)" in row["message"]


def test_allow_if_exists_for_another_region_is_no_false_allow(tmp_path: Path, aws: Aws) -> None:
    row = run_check(tmp_path, _execution_role(aws, "eu-only", {
        "Effect": "Allow", "Action": PULL_AND_LOG, "Resource": "*",
        "Condition": {"StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}}}), "IAM004")
    assert row["outcome"] == "failed"
    assert "6 of 6 not allowed" in row["message"]
    row = run_check(tmp_path, _execution_role(aws, "us-only", {
        "Effect": "Allow", "Action": PULL_AND_LOG, "Resource": "*",
        "Condition": {"StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"}}}), "IAM004")
    assert row["outcome"] == "passed", row["message"]


def test_unresolvable_policy_variable_is_undecidable_not_a_deny(tmp_path: Path, aws: Aws) -> None:
    allow_all = {"Effect": "Allow", "Action": PULL_AND_LOG, "Resource": "*"}
    abac = {"Effect": "Deny", "Action": "ecr:*", "Resource": "*",
            "Condition": {"StringNotLike": {"ecr:ResourceTag/svc": "${aws:PrincipalTag/svc}"}}}
    row = run_check(tmp_path, _execution_role(aws, "abac", allow_all, abac), "IAM004")
    assert row["outcome"] == "error"
    assert "cannot tell whether" in row["message"] and "a Deny with a condition or variable may apply" in \
        row["message"]
    # (2008-10-17, where the text is literal: IAM refuses that version for role policies; see tests/test_policy.py)


def test_arn_wildcard_ending_a_segment_covers_repositories_and_log_streams(tmp_path: Path, aws: Aws) -> None:
    token = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    cfg = _execution_role(aws, "wide", token,
                          {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:*"},
                          {"Effect": "Allow", "Action": "logs:*", "Resource": "arn:aws:logs:*"})
    cfg["image"] = {"uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0"}
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "passed", row["message"]
    cfg = _execution_role(aws, "other-region", token,
                          {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:eu-west-1:*"},
                          {"Effect": "Allow", "Action": "logs:*", "Resource": "arn:aws:logs:eu-*1:*"})
    cfg["image"] = {"uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0"}
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "failed"
    assert "5 of 6 not allowed" in row["message"]


def test_pass_role_is_judged_with_the_service_it_is_passed_to(tmp_path: Path, aws: Aws,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    arns = submit_setup(aws)
    iam = aws.client("iam")

    def user(name: str, service: str) -> dict[str, str]:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="submit", PolicyDocument=policy_doc(
            {"Effect": "Allow", "Action": "batch:SubmitJob",
             "Resource": [arns["queue"], arns["job_definition"].rsplit(":", 1)[0] + ":*"]},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": [arns["job_role"], arns["execution_role"]],
             "Condition": {"StringEquals": {"iam:PassedToService": service}}}))
        return dict(iam.create_access_key(UserName=name)["AccessKey"])

    use_credentials(monkeypatch, user("to-batch", "batch.amazonaws.com"))
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "passed", row["message"]
    use_credentials(monkeypatch, user("to-ec2", "ec2.amazonaws.com"))
    row = run_check(tmp_path, submit_config(), "IAM006")
    assert row["outcome"] == "failed"
    assert "2 of 4 not allowed" in row["message"]
