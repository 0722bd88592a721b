"""IMG001-IMG005, IMG007-IMG009 against moto (ECR metadata), a real docker-registry with htpasswd auth holding
moto's ECR token, and the private dockerd."""

from __future__ import annotations

import json
from typing import Any

import pytest
from backends import ACCOUNT, REGION, Aws
from img_fixtures import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    ECR_HOST,
    OCI_INDEX,
    TOKEN_PASSWORD,
    RegistryApi,
    auth_registry,
    ecr_config,
    mirror_to_ecr,
)

__all__ = ["auth_registry"]  # the session fixture, imported so pytest finds it


def make_repo(aws: Aws, name: str = "mlmodel", **kwargs: Any) -> None:
    aws.client("ecr").create_repository(repositoryName=name, **kwargs)


def seeded(aws: Aws, api: RegistryApi, repo: str, tag: str, arch: str = "amd64", *,
           index: list[str] | None = None, oci: bool = False) -> str:
    """An image in the real registry and its metadata (same digest) in moto's ECR."""
    if index:
        digest, raw = api.index(repo, tag, index, oci=oci)
        media = OCI_INDEX if oci else DOCKER_LIST
    else:
        digest, raw = api.image(repo, tag, arch)
        media = DOCKER_MANIFEST
    mirror_to_ecr(aws, repo, tag, digest, raw, media)
    return digest


def batch_ce(aws: Aws, name: str, instance_types: list[str] | None = None, *, fargate: bool = False,
             launch_template: dict[str, Any] | None = None) -> str:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"sg-{name}", Description="x", VpcId=vpc)["GroupId"]
    iam = aws.client("iam")
    role = iam.create_role(RoleName=f"svc-{name}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    resources: dict[str, Any] = {"type": "FARGATE" if fargate else "EC2", "maxvCpus": 16, "subnets": [subnet],
                                 "securityGroupIds": [sg]}
    if not fargate:
        iam.create_instance_profile(InstanceProfileName=f"prof-{name}")
        resources.update(minvCpus=0, instanceTypes=instance_types or ["m5.large"],
                         instanceRole=f"arn:aws:iam::{ACCOUNT}:instance-profile/prof-{name}")
        if launch_template:
            resources["launchTemplate"] = launch_template
    return str(aws.client("batch").create_compute_environment(
        computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources=resources)["computeEnvironmentArn"])


def run(preflight: Any, cfg: dict[str, Any], *args: str) -> tuple[Any, dict[str, Any]]:
    return preflight.run(cfg, "-k", "IMG", *args)


def row(preflight: Any, report: dict[str, Any], check_id: str) -> dict[str, Any]:
    r: dict[str, Any] = preflight.result(report, check_id)
    return r


# -- IMG001 / IMG002 / IMG009 on ECR metadata ---------------------------------------------------------------
def test_repository_and_tag_missing_then_present(preflight: Any, aws: Aws) -> None:
    cfg = ecr_config("mlmodel:1.0", None)
    _, report = run(preflight, cfg)
    r1, r2 = row(preflight, report, "IMG001"), row(preflight, report, "IMG002")
    assert r1["outcome"] == "failed"
    assert f"'mlmodel' does not exist in account {ACCOUNT}, region {REGION}" in r1["message"]
    assert r2["outcome"] == "failed" and "see IMG001" in r2["message"]
    for other in ("IMG004", "IMG005", "IMG007", "IMG008", "IMG009"):
        assert row(preflight, report, other)["outcome"] == "skipped", other

    make_repo(aws)
    aws.client("ecr").put_image(repositoryName="mlmodel", imageTag="0.9", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": "sha256:" + "1" * 64, "size": 10,
         "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}))
    _, report = run(preflight, cfg)
    assert row(preflight, report, "IMG001")["outcome"] == "passed"
    r2 = row(preflight, report, "IMG002")
    assert r2["outcome"] == "failed" and "1.0 is not in repository mlmodel" in r2["message"]
    assert "tags there: 0.9" in r2["message"]


def test_a_misspelt_repository_or_tag_says_which_one_was_meant(preflight: Any, aws: Aws) -> None:
    make_repo(aws, "ml-model")
    aws.client("ecr").put_image(repositoryName="ml-model", imageTag="1.0.0", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": "sha256:" + "2" * 64, "size": 10,
         "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}))
    _, report = run(preflight, ecr_config("mlmodel:1.0.0", None))
    assert "did you mean 'ml-model'?" in row(preflight, report, "IMG001")["message"]
    _, report = run(preflight, ecr_config("ml-model:1.0.1", None))
    r2 = row(preflight, report, "IMG002")
    assert r2["outcome"] == "failed" and "did you mean '1.0.0'?" in r2["message"], r2


def test_region_and_account_come_from_the_uri(preflight: Any, aws: Aws) -> None:
    aws.client("ecr", "eu-west-1").create_repository(repositoryName="mlmodel")
    cfg = {"version": 1, "region": REGION, "image": {"uri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mlmodel"}}
    _, report = run(preflight, cfg)
    assert row(preflight, report, "IMG001")["outcome"] == "passed"
    assert "region eu-west-1" in row(preflight, report, "IMG001")["message"]
    r9 = row(preflight, report, "IMG009")
    assert r9["outcome"] == "failed" and "no tag (so latest)" in r9["message"]


def test_malformed_uri_fails_with_reason_and_others_go_on(preflight: Any, aws: Aws) -> None:
    cfg = {"version": 1, "region": REGION, "image": {"uri": f"{ECR_HOST}/MLModel:1.0"}}
    _, report = preflight.run(cfg)
    for cid in ("IMG001", "IMG004"):
        r = row(preflight, report, cid)
        assert r["outcome"] == "failed" and "must be lowercase" in r["message"], r
    assert row(preflight, report, "IMG009")["outcome"] == "skipped"
    assert row(preflight, report, "ENV001")["outcome"] == "passed"


def test_pinning(preflight: Any, aws: Aws) -> None:
    """Mutable tags fail in test_sandbox_image (latest) and test_region_and_account_come_from_the_uri (no tag)."""
    make_repo(aws, "imm", imageTagMutability="IMMUTABLE")
    digest = "sha256:" + "a" * 64
    _, report = run(preflight, ecr_config(f"mut@{digest}", None))
    assert row(preflight, report, "IMG009")["outcome"] == "passed"
    _, report = run(preflight, ecr_config("imm:1.0", None))
    r = row(preflight, report, "IMG009")
    assert r["outcome"] == "passed" and "immutable" in r["message"]
    # outside ECR a tag's immutability cannot be seen: not verifiable, not stated as a fact
    _, report = run(preflight, {"version": 1, "region": REGION, "image": {"uri": "python:3.11"}})
    r = row(preflight, report, "IMG009")
    assert r["outcome"] == "error", r
    assert r["message"].startswith("docker.io/library/python:3.11: whether tag 3.11 is immutable cannot be seen in "
                                   "a registry other than ECR")
    assert row(preflight, report, "IMG001")["outcome"] == "skipped"
    _, report = run(preflight, {"version": 1, "region": REGION, "image": {"uri": "python:latest"}})
    r = row(preflight, report, "IMG009")
    assert r["outcome"] == "failed" and "the mutable tag latest" in r["message"]


# -- IMG001 fixer ---------------------------------------------------------------------------------------
def test_fix_creates_repository_once(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    cfg = ecr_config("mlmodel:1.0", None)
    cfg["fix"] = {"tags": {"team": "ml"}}
    result, report = run(preflight, cfg, "--fix-dry-run")
    assert row(preflight, report, "IMG001")["outcome"] == "failed"
    result.stdout.fnmatch_lines(["*IMG001*create ECR repository mlmodel in us-east-1*",
                                 "*calls: ecr:CreateRepository*"])
    assert aws.client("ecr").describe_repositories()["repositories"] == []

    _, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG001")["outcome"] == "fixed"
    repo = aws.client("ecr").describe_repositories()["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    tags = aws.client("ecr").list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {"Key": "team", "Value": "ml"} in tags and {"Key": "pytest-mlbatch:managed", "Value": "true"} in tags
    # IMG002's fixer declines without image.local, saying why
    assert "image.local is not set" in row(preflight, report, "IMG002")["message"]

    journal = pytester.path / ".mlbatch" / "journal.jsonl"
    before = journal.read_text()
    _, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG001")["outcome"] == "passed"
    assert journal.read_text() == before  # no second mutating call


# -- IMG004 against a registry with htpasswd auth holding moto's ECR token ------------------------------
def test_pullable_with_ecr_token(preflight: Any, aws: Aws, auth_registry: str) -> None:
    make_repo(aws)
    api = RegistryApi(auth_registry)
    digest = seeded(aws, api, "mlmodel", "1.0")
    _, report = run(preflight, ecr_config("mlmodel:1.0", auth_registry))
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "passed", r
    assert digest in r["message"] and "ECR authorization token" in r["message"]
    assert row(preflight, report, "IMG002")["outcome"] == "passed"


def test_registry_missing_manifest_fails(preflight: Any, aws: Aws, auth_registry: str) -> None:
    """ECR lists the tag but the registry does not serve it: IMG004 fails (and never passes)."""
    make_repo(aws, "nomodel")
    api = RegistryApi(auth_registry)
    digest, raw = api.image("elsewhere", "1.0", "amd64")  # not in repository nomodel
    mirror_to_ecr(aws, "nomodel", "1.0", digest, raw, DOCKER_MANIFEST)
    _, report = run(preflight, ecr_config("nomodel:1.0", auth_registry))
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "failed" and f"registry {auth_registry} has no manifest for nomodel:1.0" in r["message"]


def test_wrong_token_and_unreachable_registry_are_errors(preflight: Any, aws: Aws, auth_registry: str,
                                                         tmp_path: Any) -> None:
    from backends import free_port, start_registry
    from img_fixtures import ACCOUNT as acct

    make_repo(aws)
    seeded(aws, RegistryApi(auth_registry), "mlmodel", "1.0")
    # a second registry whose htpasswd holds another password: moto's token is refused
    import subprocess

    line = subprocess.run(["htpasswd", "-Bbn", "AWS", "other-password"], capture_output=True, check=True,
                          text=True).stdout
    (tmp_path / "htpasswd").write_text(line)
    proc, other = start_registry(tmp_path / "reg", htpasswd=tmp_path / "htpasswd")
    try:
        _, report = run(preflight, ecr_config("mlmodel:1.0", other))
    finally:
        proc.stop()
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "error"
    assert f"registry {other}" in r["message"] and "HTTP 401" in r["message"] and "credentials refused" in r["message"]
    assert f"AWS (ECR authorization token of {acct}" in r["message"]

    port = free_port()
    _, report = run(preflight, ecr_config("mlmodel:1.0", f"127.0.0.1:{port}"))
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "error" and f"registry 127.0.0.1:{port}: unreachable" in r["message"]


def test_ecr_registry_unknown_under_an_emulated_endpoint(preflight: Any, aws: Aws, auth_registry: str) -> None:
    """Without image.registry_endpoint, moto's ECR has no registry: error with the reason, never a real AWS call."""
    make_repo(aws)
    seeded(aws, RegistryApi(auth_registry), "mlmodel", "1.0")
    _, report = run(preflight, ecr_config("mlmodel:1.0", None))
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "error" and "set image.registry_endpoint" in r["message"]


def test_no_secret_in_any_output(preflight: Any, aws: Aws, auth_registry: str, pytester: pytest.Pytester,
                                 caplog: pytest.LogCaptureFixture) -> None:
    import base64

    make_repo(aws)
    seeded(aws, RegistryApi(auth_registry), "mlmodel", "1.0")
    token = base64.b64encode(f"AWS:{TOKEN_PASSWORD}".encode()).decode()
    caplog.set_level("DEBUG")
    outputs = []
    for extra in (("-v", "-rA", "--log-level=DEBUG", "-o", "log_cli=true", "--log-cli-level=DEBUG"),):
        result, report = run(preflight, ecr_config("mlmodel:1.0", auth_registry), *extra)
        assert row(preflight, report, "IMG004")["outcome"] == "passed"
        outputs += [result.stdout.str(), result.stderr.str(), json.dumps(report)]
    _, report = run(preflight, ecr_config("mlmodel:1.0", f"127.0.0.1:{1}"))  # an error path too
    outputs.append(json.dumps(report))
    outputs.append(caplog.text)
    for path in pytester.path.rglob("*"):
        if path.is_file():
            outputs.append(path.read_text(errors="replace"))
    everything = "\n".join(outputs)
    assert TOKEN_PASSWORD not in everything
    assert token not in everything


def test_sandbox_image(pytester: pytest.Pytester, aws: Aws) -> None:
    """The sandbox's job runs mlmodel:latest while ECR holds only 1.0; there is no Docker and no real registry.
    (`aws` resets moto's in-process backends, which the sandbox's embedded server shares.)"""
    report_path = pytester.path / "sandbox.json"
    result = pytester.runpytest("--mlbatch", "--mlbatch-sandbox", "-p", "no:cacheprovider", "-k", "IMG",
                                "--mlbatch-json", str(report_path))
    report = json.loads(report_path.read_text())
    rows = {r["check_id"]: r for r in report["results"]}
    assert rows["IMG001"]["outcome"] == "passed"
    assert rows["IMG002"]["outcome"] == "failed" and "tags there: 1.0" in rows["IMG002"]["message"]
    assert rows["IMG009"]["outcome"] == "failed" and "mutable tag latest" in rows["IMG009"]["message"]
    assert rows["IMG003"]["outcome"] == "skipped" and "image.local is not set" in rows["IMG003"]["message"]
    for cid in ("IMG004", "IMG005", "IMG007", "IMG008"):
        assert rows[cid]["outcome"] == "skipped" and "see IMG002" in rows[cid]["message"], rows[cid]
    assert "passed" not in {rows[c]["outcome"] for c in ("IMG003", "IMG004", "IMG005", "IMG007", "IMG008")}
    assert result.ret == 1
