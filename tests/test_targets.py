"""Several targets in one run on moto: regions, accounts reached by AssumeRole, and one target's failure to assume."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from backends import Aws
from wsgi_backend import Fault, MotoMiddleware

pytest_plugins = ("scale_fixtures",)

OTHER = "210987654321"
ROLE = f"arn:aws:iam::{OTHER}:role/preflight"


def assumed_client(endpoint: str, service: str, region: str = "us-east-1") -> Any:
    """A client in the other account, as moto gives it to whoever assumes a role there."""
    sts = boto3.client("sts", region_name=region, endpoint_url=endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    creds = sts.assume_role(RoleArn=ROLE, RoleSessionName="arrange")["Credentials"]
    return boto3.client(service, region_name=region, endpoint_url=endpoint, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def rows(report: dict[str, Any], check_id: str) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in report["results"] if r["check_id"] == check_id}


def test_regions_each_checked_in_one_run(preflight, aws: Aws) -> None:
    aws.client("ec2", "eu-west-1").create_key_pair(KeyName="ml-batch-key")
    config = {"version": 1, "key_pair": {"name": "ml-batch-key"},
              "targets": [{"region": "us-east-1"}, {"region": "eu-west-1"}]}
    result, report = preflight.run(config)
    assert [(t["region"], t["account"]) for t in report["targets"]] == [("us-east-1", aws.account),
                                                                         ("eu-west-1", aws.account)]
    key = rows(report, "KEY001")
    assert key["us-east-1"]["outcome"] == "failed"
    assert "does not exist in us-east-1" in key["us-east-1"]["message"]
    assert key["eu-west-1"]["outcome"] == "passed"
    assert {r["region"] for r in key.values()} == {"us-east-1", "eu-west-1"}
    assert rows(report, "ENV002")["eu-west-1"]["message"] == "eu-west-1 (from targets[1].region)"
    result.stdout.fnmatch_lines(["*KEY001 ml-batch-key (us-east-1) — key pair 'ml-batch-key' does not exist*"])
    assert result.ret == 1


def test_assumed_role_target_checks_the_other_account(preflight, counted: MotoMiddleware) -> None:
    assumed_client(counted.endpoint, "ec2").create_key_pair(KeyName="ml-batch-key")
    counted.clear()
    config = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"},
              "targets": [{}, {"role_arn": ROLE, "external_id": "ext-4242", "session_name": "preflight-ci"}]}
    result, report = preflight.run(config)
    label = f"{OTHER}/us-east-1"
    assert [t["label"] for t in report["targets"]] == ["us-east-1", label]
    assert [t["account"] for t in report["targets"]] == ["123456789012", OTHER]
    env = rows(report, "ENV001")
    assert env[label]["outcome"] == "passed"
    assert f"account {OTHER} as arn:aws:sts::{OTHER}:assumed-role/preflight/preflight-ci" == env[label]["message"]
    key = rows(report, "KEY001")
    assert key[label]["outcome"] == "passed" and key[label]["account"] == OTHER
    assert key["us-east-1"]["outcome"] == "failed" and key["us-east-1"]["account"] == "123456789012"
    assert result.ret == 1
    assumes = [c for c in counted.calls if c.name == "sts:AssumeRole"]
    assert len(assumes) == 1
    assert assumes[0].params["RoleArn"] == ROLE
    assert assumes[0].params["RoleSessionName"] == "preflight-ci"
    assert assumes[0].params["ExternalId"] == "ext-4242"
    # the other account's calls are signed with the assumed credentials, not the caller's
    describes = [c for c in counted.calls if c.name == "ec2:DescribeKeyPairs"]
    assert sorted(c.access_key == "testing" for c in describes) == [False, True]


def test_refused_assume_role_is_that_targets_error_only(preflight, counted: MotoMiddleware) -> None:
    boto3.client("ec2", region_name="us-east-1", endpoint_url=counted.endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_key_pair(KeyName="ml-batch-key")
    counted.set(Fault("denied", "sts:AssumeRole"))
    config = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"},
              "targets": [{}, {"role_arn": ROLE}]}
    result, report = preflight.run(config)
    label = f"{OTHER}/us-east-1"
    key = rows(report, "KEY001")
    assert key["us-east-1"]["outcome"] == "passed"
    assert key[label]["outcome"] == "error"
    assert key[label]["message"] == (f"target {label}: could not assume {ROLE}: AccessDenied: "
                                     "injected by tests/wsgi_backend.py")
    assert key[label]["account"] == OTHER  # from the role ARN, since no identity could be read
    env = rows(report, "ENV001")
    assert env[label]["outcome"] == "failed"
    assert "could not assume" in env[label]["message"]
    assert env["us-east-1"]["outcome"] == "passed"
    assert rows(report, "ENV002")[label]["outcome"] == "passed"
    # tried once for the whole run, not once per check
    assert counted.counts("sts:AssumeRole") == {"sts:AssumeRole": 1}
    # every AWS check of the refused target is `error`; nothing of the other target is
    errors = sorted((r["target"], r["check_id"]) for r in report["results"] if r["outcome"] == "error")
    assert errors == [(label, "KEY001"), (label, "KEY002")]
    assert result.ret == 1
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("region", ["eu-central-1"])
def test_cli_region_overrides_every_target(preflight, aws: Aws, region: str) -> None:
    aws.client("ec2", region).create_key_pair(KeyName="ml-batch-key")
    config = {"version": 1, "key_pair": {"name": "ml-batch-key"}, "targets": [{"region": "us-east-1"}]}
    _, report = preflight.run(config, "--aws-region", region)
    assert rows(report, "KEY001")[region]["outcome"] == "passed"
