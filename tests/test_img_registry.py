"""IMG005 (platforms from manifest lists / OCI indexes / config blobs vs compute environments), IMG007 (size),
IMG008 (scan findings) and private-registry credentials from the job definition's repositoryCredentials secret."""

from __future__ import annotations

import json
import os
from typing import Any

from backends import ACCOUNT, REGION, Aws
from img_fixtures import TOKEN_PASSWORD, RegistryApi, auth_registry, ecr_config
from test_img import batch_ce, make_repo, row, run, seeded

__all__ = ["auth_registry"]


def with_ce(cfg: dict[str, Any], ce: str, **batch: Any) -> dict[str, Any]:
    cfg["batch"] = {"compute_environment": ce, **batch}
    return cfg


def test_multi_arch_index_runs_on_x86_and_scan_below_threshold(preflight: Any, aws: Aws, auth_registry: str) -> None:
    make_repo(aws, "multi")
    digest = seeded(aws, RegistryApi(auth_registry), "multi", "1.0", index=["amd64", "arm64"])
    batch_ce(aws, "x86-ce", ["m5.large", "c5"])
    aws.client("ecr").start_image_scan(repositoryName="multi", imageId={"imageTag": "1.0"})
    _, report = run(preflight, with_ce(ecr_config("multi:1.0", auth_registry, scan_fail_at="critical"), "x86-ce"))
    r = row(preflight, report, "IMG005")
    assert r["outcome"] == "passed", r
    assert "linux/amd64, linux/arm64/v8" in r["message"] and "m5.large" in r["message"]
    assert row(preflight, report, "IMG004")["outcome"] == "passed" and digest in row(preflight, report,
                                                                                        "IMG004")["message"]
    r8 = row(preflight, report, "IMG008")  # moto's scan: one HIGH finding
    assert r8["outcome"] == "passed" and "nothing at or above CRITICAL (HIGH 1)" in r8["message"]


def test_arm64_image_on_x86_instances_fails_and_high_finding_fails(preflight: Any, aws: Aws,
                                                                  auth_registry: str) -> None:
    make_repo(aws, "armonly")
    seeded(aws, RegistryApi(auth_registry), "armonly", "1.0", arch="arm64")  # single manifest: config blob says arm64
    batch_ce(aws, "x86-ce", ["m5.large"])
    aws.client("ecr").start_image_scan(repositoryName="armonly", imageId={"imageTag": "1.0"})
    _, report = run(preflight, with_ce(ecr_config("armonly:1.0", auth_registry, scan_fail_at="high"), "x86-ce"))
    r = row(preflight, report, "IMG005")
    assert r["outcome"] == "failed"
    assert "built for linux/arm64" in r["message"] and "x86-ce: m5.large (amd64)" in r["message"]
    assert "exec format error" in r["message"]
    r8 = row(preflight, report, "IMG008")
    assert r8["outcome"] == "failed" and "1 HIGH" in r8["message"]


def test_oci_index_arm64_on_graviton_passes(preflight: Any, aws: Aws, auth_registry: str) -> None:
    make_repo(aws, "ocimodel")
    seeded(aws, RegistryApi(auth_registry), "ocimodel", "2.0", index=["arm64"], oci=True)
    batch_ce(aws, "arm-ce", ["m6g.large"])
    _, report = run(preflight, with_ce(ecr_config("ocimodel:2.0", auth_registry), "arm-ce"))
    r = row(preflight, report, "IMG005")
    assert r["outcome"] == "passed" and "unknown" not in r["message"] and "m6g.large" in r["message"], r
    assert row(preflight, report, "IMG008")["outcome"] == "failed"  # never scanned


def test_fargate_runtime_platform(preflight: Any, aws: Aws, auth_registry: str) -> None:
    make_repo(aws, "fgmodel")
    seeded(aws, RegistryApi(auth_registry), "fgmodel", "1.0", arch="amd64")
    batch_ce(aws, "fg-ce", fargate=True)
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fgmodel:1.0"
    arn = aws.client("batch").register_job_definition(
        jobDefinitionName="fg-train", type="container", platformCapabilities=["FARGATE"],
        containerProperties={"image": uri, "command": ["true"], "runtimePlatform": {"cpuArchitecture": "ARM64"},
                             "ephemeralStorage": {"sizeInGiB": 50},
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "2048"}]})["jobDefinitionArn"]
    _, report = run(preflight, with_ce(ecr_config("fgmodel:1.0", auth_registry), "fg-ce", job_definition=arn))
    r = row(preflight, report, "IMG005")
    assert r["outcome"] == "failed" and "fg-ce: Fargate ARM64 (arm64)" in r["message"], r
    r7 = row(preflight, report, "IMG007")
    assert r7["outcome"] == "passed" and "Fargate ephemeral storage 50 GiB" in r7["message"], r7


def test_private_registry_secret_and_size(preflight: Any, aws: Aws, auth_registry: str) -> None:
    """A non-ECR image on a registry with auth: credentials from the secret named by repositoryCredentials."""
    api = RegistryApi(auth_registry)
    api.image("team/big", "1.0", "amd64", layer=os.urandom(600 * 1024))
    secret = aws.client("secretsmanager").create_secret(
        Name="registry-creds", SecretString=json.dumps({"username": "AWS", "password": TOKEN_PASSWORD}))["ARN"]
    uri = f"{auth_registry}/team/big:1.0"
    arn = aws.client("batch").register_job_definition(
        jobDefinitionName="priv", type="container",
        containerProperties={"image": uri, "command": ["true"], "repositoryCredentials": {"credentialsParameter":
                                                                                          secret},
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "2048"}]})["jobDefinitionArn"]
    cfg = {"version": 1, "region": REGION, "image": {"uri": uri, "max_size_mib": 1},
           "batch": {"job_definition": arn}}
    result, report = run(preflight, cfg, "-rA")
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "passed" and f"AWS (secret {secret})" in r["message"], r
    assert TOKEN_PASSWORD not in result.stdout.str() + result.stderr.str() + json.dumps(report)
    assert row(preflight, report, "IMG002")["outcome"] == "passed"
    r7 = row(preflight, report, "IMG007")
    assert r7["outcome"] == "failed" and "too large for image.max_size_mib (1 MiB" in r7["message"], r7
    assert row(preflight, report, "IMG001")["outcome"] == "skipped"

    # without the job definition there are no credentials: the registry's 401 is an error naming it
    _, report = run(preflight, {"version": 1, "region": REGION, "image": {"uri": uri}})
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "error" and f"registry {auth_registry}" in r["message"] and "HTTP 401" in r["message"]
    assert row(preflight, report, "IMG002")["outcome"] == "error"

    # a job definition naming a secret that does not exist: the job could not log in, a failure
    missing = secret.replace("registry-creds", "gone")
    arn = aws.client("batch").register_job_definition(
        jobDefinitionName="priv-gone", type="container",
        containerProperties={"image": uri, "command": ["true"], "repositoryCredentials": {"credentialsParameter":
                                                                                          missing},
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "2048"}]})["jobDefinitionArn"]
    _, report = run(preflight, {"version": 1, "region": REGION, "image": {"uri": uri},
                                "batch": {"job_definition": arn}})
    r = row(preflight, report, "IMG004")
    assert r["outcome"] == "failed" and f"the secret {missing} that the job definition's" in r["message"], r


def test_credentials_never_shown() -> None:
    from pytest_mlbatch.oci import Credentials

    creds = Credentials("AWS", TOKEN_PASSWORD, "test")
    assert TOKEN_PASSWORD not in repr(creds) + str(creds) + repr([creds])


def test_launch_template_volume(preflight: Any, aws: Aws, auth_registry: str) -> None:
    """ECR size (moto reports the config size as imageSizeInBytes) against the launch template's volume that holds
    Docker's storage: the root device on the default (AL2023) AMI, not a larger second volume."""
    make_repo(aws, "sized")
    api = RegistryApi(auth_registry)
    config = json.dumps({"architecture": "amd64", "os": "linux", "pad": "x" * (900 * 1024)}).encode()
    cfg_blob = api.blob("sized", config)
    layer = api.blob("sized", b"layer")
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **cfg_blob},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **layer}]}
    digest, raw = api.put_manifest("sized", "1.0", doc)
    aws.client("ecr").put_image(repositoryName="sized", imageManifest=raw.decode(), imageTag="1.0",
                                imageDigest=digest)
    lt = aws.client("ec2").create_launch_template(LaunchTemplateName="ml-lt", LaunchTemplateData={
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30}},
                                {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 100}}]})["LaunchTemplate"]
    batch_ce(aws, "lt-ce", ["m5.large"], launch_template={"launchTemplateId": lt["LaunchTemplateId"]})
    _, report = run(preflight, with_ce(ecr_config("sized:1.0", auth_registry, max_size_mib=1), "lt-ce"))
    r = row(preflight, report, "IMG007")
    assert r["outcome"] == "passed", r
    assert "Docker's storage on /dev/xvda, 30 GiB from launch template" in r["message"], r
    assert "not counted: /dev/xvdb 100 GiB" in r["message"], r
