"""Config loading: mlbatch.yaml, [tool.mlbatch], --mlbatch-config, CLI overrides, and usage errors (exit 4)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_mlbatch import config as cfg

FULL = textwrap.dedent("""\
    version: 1
    region: us-east-1
    profile: ml
    account_id: "123456789012"
    image:
      uri: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0
      local: mlmodel:1.0
      pull: false
      scan_fail_at: critical
    key_pair:
      name: ml-batch-key
      private_key_file: ~/.ssh/ml-batch-key.pem
    network:
      vpc_id: vpc-0123
      subnet_ids: [subnet-0a, subnet-0b]
      security_group_ids: [sg-0123]
      security_group:
        name: ml-batch-sg
        ingress:
          - {protocol: tcp, port: 22, cidr: 203.0.113.7/32}
      min_free_ips: 16
    iam:
      service_role: AWSBatchServiceRole
      instance_role: ecsInstanceRole
      instance_profile: ecsInstanceRole
      execution_role: ecsTaskExecutionRole
      job_role:
        name: ml-job-role
        allow:
          - {action: "s3:GetObject", resource: "arn:aws:s3:::ml-data/*"}
    batch:
      compute_environment: ml-ce
      job_queue: ml-queue
      job_definition: ml-train
      job: {vcpus: 4, memory: 16384, gpus: 0}
    fix:
      allow: [internet_gateway, nat_gateway]
      tags: {team: ml}
    checks:
      skip: [IMG008]
      severity: {NET004: medium}
      exempt:
        - {check: SG003, resource: sg-0123, until: 2026-12-31, reason: "bastion, ticket 42"}
    targets:
      - {region: us-east-1}
      - {region: eu-west-1, role_arn: "arn:aws:iam::210987654321:role/preflight"}
    """)


def test_interface_example_is_valid(tmp_path: Path) -> None:
    (tmp_path / "mlbatch.yaml").write_text(FULL)
    s = cfg.load(tmp_path, None)
    assert s.region == "us-east-1" and s.account_id == "123456789012"
    assert s.subnet_ids == ("subnet-0a", "subnet-0b")
    assert s.security_group is not None and str(s.security_group.ingress[0]) == "tcp/22 from 203.0.113.7/32"
    assert s.job_role is not None and s.job_role.allow[0].actions == ("s3:GetObject",)
    assert s.exempt[0].until.isoformat() == "2026-12-31"
    assert s.targets[1].role_arn == "arn:aws:iam::210987654321:role/preflight"
    assert s.job is not None and s.job.memory == 16384


def test_pyproject_table_and_cli_overrides(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mlbatch]\nversion = 1\nregion = "eu-west-1"\nprofile = "a"\n'
                                             '[tool.mlbatch.key_pair]\nname = "k"\n')
    s = cfg.load(tmp_path, None)
    assert (s.region, s.profile, s.key_name) == ("eu-west-1", "a", "k")
    s = cfg.load(tmp_path, None, region="us-west-2", profile="b")
    assert (s.region, s.profile) == ("us-west-2", "b")


def test_yaml_wins_over_pyproject_and_explicit_path_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mlbatch]\nregion = "eu-west-1"\n')
    (tmp_path / "mlbatch.yaml").write_text("region: us-east-2\n")
    (tmp_path / "other.yaml").write_text("region: ap-south-1\n")
    assert cfg.load(tmp_path, None).region == "us-east-2"
    assert cfg.load(tmp_path, "other.yaml").region == "ap-south-1"


@pytest.mark.parametrize(("text", "expected"), [
    ("network:\n  subnet_ids: [subnet-1, 5]\n", "network.subnet_ids[1]: 5 must be a string"),
    ("network:\n  vpcid: vpc-1\n", "network.vpcid: unknown key (allowed here: min_free_ips, security_group"),
    ("colour: red\n", "colour: unknown key"),
    ("account_id: 123456789012\n", "account_id: 123456789012 must be a string (quote it in YAML)"),
    ("account_id: '1234'\n", "account_id: '1234' does not have the expected form (12 digits)"),
    ("image: {pull: maybe}\n", "image.pull: 'maybe' is not of type 'boolean'"),
    ("checks:\n  skip: [NOPE1]\n", "checks.skip[0]: 'NOPE1' does not have the expected form (a check id"),
    ("checks:\n  exempt:\n    - {check: SG003, resource: sg-1, until: 2026-02-30, reason: x}\n",
     "checks.exempt[0].until: '2026-02-30' is not a 'date'"),
    ("network:\n  security_group:\n    name: x\n    ingress: [{protocol: tcp, port: 22}]\n",
     "network.security_group.ingress[0]: a rule needs exactly one of cidr"),
    ("region: [us-east-1\n", "not valid YAML at line 2"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("version: 2\n", "version: 1 was expected"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "mlbatch.yaml").write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(tmp_path, None)
    assert expected in str(info.value)


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match=r"nope\.yaml: config file not found"):
        cfg.load(tmp_path, "nope.yaml")


def test_bad_config_is_usage_error_without_traceback(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", mlbatch="network:\n  subnet_ids: notalist\n")
    result = pytester.runpytest("--mlbatch", "--mlbatch-json", "r.json")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: invalid config *mlbatch.yaml:", "*network.subnet_ids: 'notalist' is not of "
                                 "type 'array'"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "r.json").exists()
    assert not (pytester.path / ".mlbatch").exists()


def test_fix_without_mlbatch_is_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fix")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --fix needs --mlbatch*"])


def test_fix_and_dry_run_exclude_each_other(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mlbatch", "--fix", "--fix-dry-run")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --fix and --fix-dry-run exclude each other*"])


def test_network_trusted_egress() -> None:
    from pytest_mlbatch import config as cfg

    built = cfg.build("t", {"version": 1, "network": {"trusted_egress": ["tgw-0abc", "vpce-0fw"]}})
    assert built.trusted_egress == ("tgw-0abc", "vpce-0fw")
    with pytest.raises(cfg.ConfigError, match=r"network.trusted_egress\[0\]: 'nat-0abc' does not have the expected "
                                              r"form \(a route target id such as tgw-0abc"):
        cfg.build("t", {"version": 1, "network": {"trusted_egress": ["nat-0abc"]}})
