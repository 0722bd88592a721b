"""IAM007 (secrets exist, and the execution role may read and decrypt them), IAM008 (the awslogs group exists or may
be created, and may be written), and trust conditions on aws:SourceArn, on real moto secrets, SSM parameters, KMS
keys with key policies, log groups and roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, REGION, Aws
from iam_fixtures import IMAGE, base_config, batch_setup, make_role, policy_doc, run_check, trust

EXEC = "ecsTaskExecutionRole"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def job_definition(aws: Aws, exec_arn: str | None, *, secrets: list[dict[str, str]] | None = None,
                   log: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"image": IMAGE, "command": ["true"], "resourceRequirements": [
        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
    if exec_arn:
        props["executionRoleArn"] = exec_arn
    if secrets:
        props["secrets"] = secrets
    if log:
        props["logConfiguration"] = log
    aws.client("batch").register_job_definition(jobDefinitionName="ml-train", type="container",
                                                containerProperties=props)
    cfg = base_config(execution_role=EXEC)
    cfg["batch"] = {"job_definition": "ml-train"}
    return cfg


def allow(aws: Aws, name: str, *statements: dict[str, Any]) -> None:
    aws.client("iam").put_role_policy(RoleName=EXEC, PolicyName=name, PolicyDocument=policy_doc(*statements))


def key_with_policy(aws: Aws, *statements: dict[str, Any]) -> str:
    return str(aws.client("kms").create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": list(
        statements)}))["KeyMetadata"]["Arn"])


# -- IAM007 --------------------------------------------------------------------------------------------------
def test_secrets_manager_secret_missing_fails_and_an_existing_one_must_be_readable(tmp_path: Path, aws: Aws) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    missing = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-password-AbCdEf"
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "DB", "valueFrom": missing}])
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed"
    assert f"secret {missing} does not exist" in row["message"] and "create it, or correct valueFrom" in row["message"]

    real = aws.client("secretsmanager").create_secret(Name="db-password", SecretString='{"password": "x"}')["ARN"]
    # the ARN without its random suffix, with a JSON key and version stage: the secret Batch will read
    partial = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-password:password:AWSCURRENT:"
    aws.client("batch").register_job_definition(
        jobDefinitionName="ml-train", type="container", containerProperties={
            "image": IMAGE, "command": ["true"], "executionRoleArn": exec_arn,
            "secrets": [{"name": "DB", "valueFrom": partial}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]})
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed"
    assert f"secretsmanager:GetSecretValue on {real}: denied" in row["message"]

    allow(aws, "secrets", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-password-*"})
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "passed", row["message"]
    assert row["message"].startswith("1 secret(s) exist; execution role")


def test_ssm_parameter_by_name_missing_fails(tmp_path: Path, aws: Aws) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}])
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed"
    assert "SSM parameter /ml/api-token does not exist" in row["message"]


@pytest.mark.parametrize(("key_policy", "identity_decrypt", "outcome"), [
    ("role", False, "passed"),  # the key policy names the role: enough on its own
    ("account", True, "passed"),  # the key policy delegates to IAM, and the role's policy allows kms:Decrypt
    ("account", False, "failed"),  # delegated, but no identity policy allows it
    ("other", True, "failed"),  # the key policy allows someone else only: IAM cannot grant it
    ("deny", True, "failed"),  # an explicit Deny in the key policy wins
])
def test_customer_managed_key_needs_key_policy_and_identity_policy(tmp_path: Path, aws: Aws, key_policy: str,
                                                                   identity_decrypt: bool, outcome: str) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    admin = {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"},
             "Action": "kms:*", "Resource": "*"}
    grant = {"role": [admin, {"Effect": "Allow", "Principal": {"AWS": exec_arn}, "Action": "kms:Decrypt",
                              "Resource": "*"}],
             "account": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}],
             "other": [admin],
             "deny": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
                      {"Sid": "no-batch", "Effect": "Deny", "Principal": {"AWS": exec_arn}, "Action": "kms:Decrypt",
                       "Resource": "*"}]}[key_policy]
    key = key_with_policy(aws, *grant)
    aws.client("ssm").put_parameter(Name="/ml/api-token", Value="t0k3n", Type="SecureString", KeyId=key)
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}])
    allow(aws, "read", {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*"},
          *([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}] if identity_decrypt else []))
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == outcome, row["message"]
    if outcome == "failed":
        assert f"kms:Decrypt on {key}" in row["message"]
    if key_policy == "deny":
        assert "no-batch" in row["message"]


def test_aws_managed_key_needs_no_grant_and_no_execution_role_fails(tmp_path: Path, aws: Aws) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    aws.client("ssm").put_parameter(Name="/ml/api-token", Value="t0k3n", Type="SecureString")  # alias/aws/ssm
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}])
    allow(aws, "read", {"Effect": "Allow", "Action": "ssm:GetParameters",
                        "Resource": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ml/*"})
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "passed", row["message"]

    cfg = job_definition(aws, None, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}])
    cfg["iam"] = {}
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed" and "no execution role" in row["message"]


# -- IAM008 --------------------------------------------------------------------------------------------------
def awslogs(group: str, create: bool = False) -> dict[str, Any]:
    options = {"awslogs-group": group, "awslogs-region": REGION}
    if create:
        options["awslogs-create-group"] = "true"
    return {"logDriver": "awslogs", "options": options}


def test_log_group_missing_fails_existing_passes(tmp_path: Path, aws: Aws) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    cfg = job_definition(aws, exec_arn, log=awslogs("/ml/train"))
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "failed"
    assert "log group /ml/train (awslogs-group of job definition ml-train) does not exist" in row["message"]

    aws.client("logs").create_log_group(logGroupName="/ml/train")
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "passed", row["message"]
    assert row["message"].startswith("log group /ml/train exists; execution role")


@pytest.mark.parametrize("allowed", [True, False])
def test_log_group_created_by_the_job_needs_create_log_group(tmp_path: Path, aws: Aws, allowed: bool) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))  # no CreateLogGroup in it
    cfg = job_definition(aws, exec_arn, log=awslogs("/ml/train", create=True))
    if allowed:
        allow(aws, "logs", {"Effect": "Allow", "Action": "logs:CreateLogGroup",
                            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ml/*"})
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == ("passed" if allowed else "failed"), row["message"]
    if not allowed:
        assert f"logs:CreateLogGroup on arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ml/train: denied" in row["message"]


# -- trust conditions (item 6) -------------------------------------------------------------------------------
@pytest.mark.parametrize(("condition", "outcome"), [
    ({"ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"}}, "passed"),
    ({"ArnLike": {"aws:SourceArn": f"arn:aws:ecs:*:{ACCOUNT}:*"}}, "passed"),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:111111111111:*"}}, "failed"),
    ({"StringLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:111111111111:*"}}, "failed"),
    ({"ArnEquals": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/ml/abc"}}, "error"),
    ({"StringEquals": {"aws:SourceAccount": ACCOUNT},
      "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"}}, "passed"),
    ({"StringEquals": {"aws:PrincipalTag/team": "ml"}}, "error"),
])
def test_execution_role_trust_conditions(tmp_path: Path, aws: Aws, condition: dict[str, Any], outcome: str) -> None:
    make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",),
              trust_doc=trust("ecs-tasks.amazonaws.com", Condition=condition))
    row = run_check(tmp_path, base_config(execution_role=EXEC), "IAM004")
    assert row["outcome"] == outcome, row["message"]
    if outcome == "error":
        key = next(iter(next(iter(condition.values()))))
        assert key in row["message"], row["message"]
    if outcome == "failed":
        assert "only under a condition the job does not meet" in row["message"]


@pytest.mark.parametrize(("pattern", "outcome"), [
    (f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/ml-*", "passed"),
    (f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/other-*", "failed"),
])
def test_service_role_source_arn_is_the_compute_environment(tmp_path: Path, aws: Aws, pattern: str,
                                                            outcome: str) -> None:
    setup = batch_setup(aws)
    aws.client("iam").update_assume_role_policy(
        RoleName="AWSBatchServiceRole",
        PolicyDocument=trust("batch.amazonaws.com", Condition={"ArnLike": {"aws:SourceArn": pattern}}))
    cfg = base_config(service_role=setup["service_role"])
    cfg["batch"] = {"compute_environment": "ml-ce"}
    row = run_check(tmp_path, cfg, "IAM001")
    assert row["outcome"] == outcome, row["message"]


def test_execution_role_is_asked_about_the_secrets_full_arn(tmp_path: Path, aws: Aws) -> None:
    """valueFrom without the random suffix: IAM sees the secret's full ARN, so a policy naming exactly that ARN
    grants it (IAM004 asked about the suffix-less ARN before, a false failure)."""
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    real = aws.client("secretsmanager").create_secret(Name="db-password", SecretString="x")["ARN"]
    cfg = job_definition(aws, exec_arn, secrets=[
        {"name": "DB", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-password"}])
    allow(aws, "secrets", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": real})
    for check_id in ("IAM004", "IAM007"):
        row = run_check(tmp_path, cfg, check_id)
        assert row["outcome"] == "passed", (check_id, row["message"])


def test_preflight_reads_secrets_keys_and_log_group_in_the_first_wave(preflight: Any, aws: Aws) -> None:
    """End to end (prefetch on): the first wave's 'secrets' part reads what IAM007/IAM008 decide on; the outcomes
    are the serial ones."""
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    key = key_with_policy(aws, {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"})
    aws.client("ssm").put_parameter(Name="/ml/api-token", Value="t0k3n", Type="SecureString", KeyId=key)
    aws.client("logs").create_log_group(logGroupName="/ml/train")
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}],
                         log=awslogs("/ml/train"))
    allow(aws, "read", {"Effect": "Allow", "Action": ["ssm:GetParameters", "kms:Decrypt"], "Resource": "*"})
    _, report = preflight.run(cfg, "-k", "IAM007 or IAM008")
    assert preflight.result(report, "IAM007")["outcome"] == "passed"
    assert preflight.result(report, "IAM008")["outcome"] == "passed"


def test_a_version_stage_the_secret_does_not_have_fails(tmp_path: Path, aws: Aws) -> None:
    exec_arn = make_role(aws, EXEC, "ecs-tasks.amazonaws.com", managed=("exec",))
    real = aws.client("secretsmanager").create_secret(Name="db-password", SecretString='{"password": "x"}')["ARN"]
    allow(aws, "secrets", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": real})
    cfg = job_definition(aws, exec_arn, secrets=[{"name": "DB", "valueFrom": f"{real}:password:AWSPREVIOUS:"}])
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "failed"
    assert f"secret {real} has no version stage AWSPREVIOUS" in row["message"]

    aws.client("secretsmanager").put_secret_value(SecretId=real, SecretString='{"password": "y"}')  # now there is
    row = run_check(tmp_path, cfg, "IAM007")
    assert row["outcome"] == "passed", row["message"]


def test_key_policy_is_joined_with_the_simulators_answer(tmp_path: Path, aws: Aws) -> None:
    """The simulator allows kms:Decrypt, the key policy allows someone else only: denied (the simulator never sees
    key policies). moto does not implement SimulatePrincipalPolicy: the run's IAM client is a botocore Stubber (every
    request and response validated against IAM's model); SSM, KMS, Batch and STS answer from moto."""
    from botocore.stub import Stubber

    from pytest_mlbatch import config
    from pytest_mlbatch.engine import runner as engine
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.findings import Resource

    arn = f"arn:aws:iam::{ACCOUNT}:role/{EXEC}"
    key = key_with_policy(aws, {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"},
                                "Action": "kms:*", "Resource": "*"})
    aws.client("ssm").put_parameter(Name="/ml/api-token", Value="t0k3n", Type="SecureString", KeyId=key)
    cfg = job_definition(aws, arn, secrets=[{"name": "TOKEN", "valueFrom": "/ml/api-token"}])
    runtime = Runtime(config.build("test", cfg), tmp_path)
    target = runtime.targets[0]
    target.scope()  # discovery first (it reads no IAM here); then only the check's IAM calls are stubbed
    stub = Stubber(target.inventory.client("iam"))
    stub.add_response("get_role", {"Role": {
        "RoleName": EXEC, "Arn": arn, "Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE2", "CreateDate": "2026-01-01",
        "AssumeRolePolicyDocument": trust("ecs-tasks.amazonaws.com")}}, {"RoleName": EXEC})
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ml/api-token"
    known = [("aws:RequestedRegion", REGION), ("aws:PrincipalAccount", ACCOUNT)]
    stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
        {"EvalActionName": "ssm:GetParameters", "EvalDecision": "allowed"}]},
        {"PolicySourceArn": arn, "ActionNames": ["ssm:GetParameters"], "ResourceArns": [parameter],
         "ContextEntries": [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "stringList"}
                            for k, v in known]})
    stub.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
        {"EvalActionName": "kms:Decrypt", "EvalDecision": "allowed"}]},
        {"PolicySourceArn": arn, "ActionNames": ["kms:Decrypt"], "ResourceArns": [key],
         "ContextEntries": [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "stringList"}
                            for k, v in [("kms:ViaService", f"ssm.{REGION}.amazonaws.com"), *known]]})
    with stub:
        row = engine.run(runtime, runtime.registry.get("IAM007"), target,
                         Resource("job_definition", "ml-train")).as_json()
        stub.assert_no_pending_responses()
    assert row["outcome"] == "failed", row["message"]
    assert f"kms:Decrypt on {key}" in row["message"]
    assert f"the key policy of {key} allows neither {EXEC} nor the account's IAM policies" in row["message"]


# -- which role awslogs writes with on EC2 (ECS agent: ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE) -------------
LOGS = {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ml/train:*"}
PULL = {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                                      "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        "Resource": "*"}


def ec2_batch(aws: Aws, *, execution: bool, launch_template: str | None = None) -> dict[str, Any]:
    """A managed EC2 compute environment (instance profile ml-ce-profile holding ecsInstanceRole, no policies), a
    queue, log group /ml/train, and job definition ml-train logging there with awslogs, with or without the
    execution role ecsTaskExecutionRole (allowed to pull, not to log)."""
    from bat_fixtures import make_env

    env = make_env(aws)
    extra = {"launchTemplate": {"launchTemplateName": launch_template}} if launch_template else {}
    env.compute_environment("ml-ce", **extra)
    env.queue("ml-queue")
    aws.client("iam").put_role_policy(RoleName=EXEC, PolicyName="pull", PolicyDocument=policy_doc(PULL))
    aws.client("logs").create_log_group(logGroupName="/ml/train")
    container: dict[str, Any] = {"logConfiguration": awslogs("/ml/train")}
    if execution:
        container["executionRoleArn"] = env.execution_role_arn
    env.job_definition("ml-train", **container)
    return {**base_config(execution_role=EXEC),
            "batch": {"compute_environment": "ml-ce", "job_queue": "ml-queue", "job_definition": "ml-train"}}


def test_awslogs_on_ec2_without_an_execution_role_writes_with_the_instance_role(tmp_path: Path, aws: Aws) -> None:
    cfg = ec2_batch(aws, execution=False)
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "failed", row["message"]
    assert f"instance role arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole (on compute environment ml-ce awslogs uses " \
           "the instance role (in instance profile ml-ce-profile of compute environment ml-ce): job definition " \
           "ml-train names no execution role)" in row["message"]
    assert f"logs:CreateLogStream on arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ml/train:log-stream:" \
        in row["message"]
    # the execution role is not what writes the logs here: IAM004 does not ask it for them
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "passed", row["message"]
    assert "(logs not asked of it: on compute environment ml-ce awslogs uses the instance role" in row["message"]

    aws.client("iam").put_role_policy(RoleName="ecsInstanceRole", PolicyName="logs", PolicyDocument=policy_doc(LOGS))
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "passed", row["message"]
    assert f"instance role arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole" in row["message"]


def test_awslogs_on_ec2_with_an_execution_role_writes_with_it(tmp_path: Path, aws: Aws) -> None:
    cfg = ec2_batch(aws, execution=True)
    aws.client("iam").put_role_policy(RoleName="ecsInstanceRole", PolicyName="logs", PolicyDocument=policy_doc(LOGS))
    row = run_check(tmp_path, cfg, "IAM008")  # the instance role may log, but it is not the one that does
    assert row["outcome"] == "failed", row["message"]
    assert f"execution role arn:aws:iam::{ACCOUNT}:role/{EXEC} (on compute environment ml-ce the ECS agent lets " \
           "awslogs use job definition ml-train's execution role" in row["message"]
    row = run_check(tmp_path, cfg, "IAM004")
    assert row["outcome"] == "failed", row["message"]
    assert "logs:CreateLogStream" in row["message"]

    allow(aws, "logs", LOGS)
    for check_id in ("IAM004", "IAM008"):
        row = run_check(tmp_path, cfg, check_id)
        assert row["outcome"] == "passed", (check_id, row["message"])


def test_user_data_that_turns_the_override_off_makes_the_instance_role_write(tmp_path: Path, aws: Aws) -> None:
    import base64

    user_data = ("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"==B==\"\n\n--==B==\n"
                 "Content-Type: text/x-shellscript; charset=\"us-ascii\"\n\n#!/bin/bash\n"
                 "echo ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=false >> /etc/ecs/ecs.config\n\n--==B==--\n")
    aws.client("ec2").create_launch_template(LaunchTemplateName="ml-lt", LaunchTemplateData={
        "UserData": base64.b64encode(user_data.encode()).decode()})
    cfg = ec2_batch(aws, execution=True, launch_template="ml-lt")
    allow(aws, "logs", LOGS)
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "failed", row["message"]
    assert "instance role" in row["message"] and \
        "launch template ml-lt version 1 sets ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=false" in row["message"]
    aws.client("iam").put_role_policy(RoleName="ecsInstanceRole", PolicyName="logs", PolicyDocument=policy_doc(LOGS))
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "passed", row["message"]


def test_a_custom_ami_makes_both_roles_write(tmp_path: Path, aws: Aws) -> None:
    """A launch template with its own ImageId: whether that AMI's ecs-init turns the override on is not known, so the
    execution role and the instance role must both be allowed to write (never a pass on the default's assumption)."""
    aws.client("ec2").create_launch_template(LaunchTemplateName="ml-lt", LaunchTemplateData={
        "ImageId": "ami-0123456789abcdef0"})
    cfg = ec2_batch(aws, execution=True, launch_template="ml-lt")
    allow(aws, "logs", LOGS)  # the execution role may log
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "failed", row["message"]
    assert "instance role" in row["message"] and "launch template ml-lt ImageId ami-0123456789abcdef0" in row["message"]
    aws.client("iam").put_role_policy(RoleName="ecsInstanceRole", PolicyName="logs", PolicyDocument=policy_doc(LOGS))
    row = run_check(tmp_path, cfg, "IAM008")
    assert row["outcome"] == "passed", row["message"]
    row = run_check(tmp_path, cfg, "IAM004")  # the execution role is still asked for the logs
    assert row["outcome"] == "passed" and ", logs" in row["message"], row["message"]
