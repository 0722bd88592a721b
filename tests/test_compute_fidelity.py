"""Issue 14 items 8-10 on moto worlds: the memory ECS registers (BAT004), the AMI and disk Batch really uses (BAT005,
IMG005, IMG007), placement in the subnets' zones (BAT010), Spot interruption (BAT011) and launch template user data
(BAT012). Each mode fails and passes.

moto's ECS registers no container instances in the clusters its Batch makes, so the registered-memory case answers
ecs:ListContainerInstances / DescribeContainerInstances from botocore's Stubber (every request and response
validated against ECS's model); everything else is moto."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, REGION, Aws
from bat_fixtures import IMAGE, BatchEnv, base_config, make_env, run_check, runtime_for, world_env

_STATE: dict[str, Any] = {}
MIME = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==MYBOUNDARY=="

--==MYBOUNDARY==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
echo ECS_IMAGE_PULL_BEHAVIOR=prefer-cached >> /etc/ecs/ecs.config

--==MYBOUNDARY==--
"""
PLAIN = "#!/bin/bash\necho hello\n"
CLUSTER = MIME.replace("echo ECS_IMAGE_PULL_BEHAVIOR=prefer-cached >> /etc/ecs/ecs.config",
                       "echo ECS_CLUSTER=my-cluster > /etc/ecs/ecs.config")
BIG_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/huge:1.0"


def ami_named(aws: Aws, prefix: str, arch: str = "x86_64") -> str:
    """One of moto's bundled Amazon AMIs by name prefix and architecture (their ids are moto's, so found by name)."""
    found = aws.client("ec2").describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": [prefix + "*"]}, {"Name": "architecture", "Values": [arch]}])
    return str(sorted(found["Images"], key=lambda i: i["Name"])[-1]["ImageId"])


def template(aws: Aws, name: str, user_data: str | None = None, **data: Any) -> str:
    if user_data is not None:
        data["UserData"] = base64.b64encode(user_data.encode()).decode()
    return str(aws.client("ec2").create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
               ["LaunchTemplate"]["LaunchTemplateId"])


def build_fidelity_world(aws: Aws) -> BatchEnv:
    env = make_env(aws)
    ec2 = aws.client("ec2")
    zone_e = ec2.create_subnet(VpcId=env.vpc, CidrBlock="10.30.9.0/24", AvailabilityZone=f"{REGION}e")["Subnet"]
    ce = env.compute_environment
    ce("ml-ce")
    ce("ce-zone-e", subnets=[zone_e["SubnetId"]])
    ce("ce-spot", kind="SPOT", bidPercentage=60)
    # AMIs: moto's bundled ECS-optimized ones, and a private one whose name says nothing
    ecs_x86 = ami_named(aws, "amzn2-ami-ecs-hvm-2.0")
    ecs_gpu = ami_named(aws, "amzn2-ami-ecs-gpu-hvm-2.0")
    ecs_arm = ami_named(aws, "al2023-ami-ecs-hvm-2023.0", "arm64")
    custom = ec2.register_image(Name="team-trainer-2026", Description="our image")["ImageId"]
    ce("ce-gpu-cpu-ami", instance_types=["g4dn.xlarge"],
       ec2Configuration=[{"imageType": "ECS_AL2_NVIDIA", "imageIdOverride": ecs_x86}])
    ce("ce-gpu-gpu-ami", instance_types=["g4dn.xlarge"],
       ec2Configuration=[{"imageType": "ECS_AL2_NVIDIA", "imageIdOverride": ecs_gpu}])
    ce("ce-gpu-custom-ami", instance_types=["g4dn.xlarge"],
       ec2Configuration=[{"imageType": "ECS_AL2_NVIDIA", "imageIdOverride": custom}])
    lt_arm = template(aws, "lt-arm", ImageId=ecs_arm)
    ce("ce-arm-ami", launchTemplate={"launchTemplateId": lt_arm, "version": "1"})
    # launch template overrides win over the template's own AMI for the types they target
    lt_x86 = template(aws, "lt-x86", ImageId=ecs_x86)
    ce("ce-arm-override", instance_types=["m5.large"], launchTemplate={
        "launchTemplateId": lt_arm, "version": "1",
        "overrides": [{"launchTemplateId": lt_x86, "version": "1", "targetInstanceTypes": ["m5.large"]}]})
    # disk: Docker's storage is the root volume on AL2/AL2023; a big /dev/xvdcz does not count
    lt_xvdcz = template(aws, "lt-xvdcz", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvdcz", "Ebs": {"VolumeSize": 500}}])
    ce("ce-xvdcz", launchTemplate={"launchTemplateId": lt_xvdcz})
    lt_root = template(aws, "lt-root", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 500}}])
    ce("ce-root", launchTemplate={"launchTemplateId": lt_root})
    # a pinned version: version 1 has a 30 GiB root, version 2 (the CE pins it) 500 GiB
    lt_pin = template(aws, "lt-pinned", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30}}])
    ec2.create_launch_template_version(LaunchTemplateId=lt_pin, SourceVersion="1", LaunchTemplateData={
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 500}}]})
    ce("ce-pinned", launchTemplate={"launchTemplateId": lt_pin, "version": "2"})
    ce("ce-pinned-default", launchTemplate={"launchTemplateId": lt_pin})
    ce("ce-gone-template", launchTemplate={"launchTemplateName": "no-such-template"})
    # user data
    ce("ce-ud-mime", launchTemplate={"launchTemplateId": template(aws, "lt-ud-mime", MIME)})
    ce("ce-ud-plain", launchTemplate={"launchTemplateId": template(aws, "lt-ud-plain", PLAIN)})
    ce("ce-ud-cluster", launchTemplate={"launchTemplateId": template(aws, "lt-ud-cluster", CLUSTER)})
    q = env.queue
    q("ml-queue", ["ml-ce"])
    q("q-spot", ["ce-spot"])
    for name in ("ce-gpu-cpu-ami", "ce-gpu-gpu-ami", "ce-gpu-custom-ami"):
        q(f"q-{name}", [name])
    jd = env.job_definition
    jd("ml-train")
    jd("jd-band", memory="7800")
    jd("jd-gpu", gpus="1")
    jd("jd-retry", retryStrategy={"attempts": 3, "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]})
    jd("jd-exit-all", retryStrategy={"attempts": 3, "evaluateOnExit": [{"onStatusReason": "*", "action": "EXIT"}]})
    env.batch.register_job_definition(jobDefinitionName="jd-mnp", type="multinode", nodeProperties={
        "numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": {
            "image": IMAGE, "command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]}}]})
    # an ECR image of 40 GiB compressed (moto reports the manifest's config size as imageSizeInBytes)
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="huge")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 40 << 30,
                           "digest": "sha256:" + "a" * 64},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 40 << 30,
                            "digest": "sha256:" + "b" * 64}]}
    ecr.put_image(repositoryName="huge", imageManifest=json.dumps(manifest), imageTag="1.0")
    return env


@pytest.fixture
def env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> BatchEnv:
    return world_env(moto_endpoint, monkeypatch, _STATE, build_fidelity_world)


def outcome(check_id: str, tmp_path: Path, resource: str | None = None, image: str | None = None,
            **batch: Any) -> tuple[str, str]:
    config = base_config(**batch)
    if image:
        config["image"] = {"uri": image}
    r = run_check(check_id, config, tmp_path, resource)
    return r.outcome, r.message


# -- item 8: memory ECS registers (BAT004) ----------------------------------------------------------------------
def test_memory_inside_the_band_may_not_fit(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT004", tmp_path, job_queue="ml-queue", job_definition="jd-band")
    assert state == "failed"
    assert ("may not fit: job asks 7800 MiB; m5.large (8192 MiB installed) registers between 7668 and 7953 MiB with "
            "ECS") in message
    assert "ask at most 7668 MiB" in message and "docs/batch.md" in message
    assert outcome("BAT004", tmp_path, job_queue="ml-queue", job_definition="ml-train")[0] == "passed"


def test_registered_memory_decides(env: BatchEnv, tmp_path: Path) -> None:
    """A compute environment with registered container instances: their registeredResources MEMORY is the truth.
    moto's ECS registers no instances for Batch's clusters, so ECS answers from a validated botocore Stubber."""
    from botocore.stub import Stubber

    cluster = env.batch.describe_compute_environments(computeEnvironments=["ml-ce"])["computeEnvironments"][0][
        "ecsClusterArn"]
    instance = f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster.rsplit('/', 1)[-1]}/0123456789abcdef"

    def stubbed(memory: int) -> tuple[str, str]:
        runtime = runtime_for(base_config(job_queue="ml-queue", job_definition="jd-band"), tmp_path)
        stub = Stubber(runtime.targets[0].inventory.client("ecs"))
        stub.add_response("list_container_instances", {"containerInstanceArns": [instance]}, {"cluster": cluster})
        stub.add_response("describe_container_instances", {"containerInstances": [{
            "containerInstanceArn": instance, "status": "ACTIVE",
            "attributes": [{"name": "ecs.instance-type", "value": "m5.large"}],
            "registeredResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                                    {"name": "MEMORY", "type": "INTEGER", "integerValue": memory}]}], "failures": []},
            {"cluster": cluster, "containerInstances": [instance]})
        with stub:
            r = run_check("BAT004", base_config(job_queue="ml-queue", job_definition="jd-band"), tmp_path,
                          runtime=runtime)
        return r.outcome, r.message

    assert stubbed(7810) == ("passed", "job definition jd-band:1: ml-ce: fits m5.large (2 vCPU, 7810 MiB registered "
                                       "with ECS); 1 of 1 allowed types fit")
    state, message = stubbed(7700)
    assert state == "failed"
    assert "largest usable memory in m5.large is 7700 MiB registered with ECS, 100 MiB over" in message


# -- item 9: the AMI and the disk really used (BAT005, IMG005, IMG007) ----------------------------------------
def test_gpu_job_on_an_override_ami_without_nvidia(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT005", tmp_path, job_queue="q-ce-gpu-cpu-ami", job_definition="jd-gpu")
    assert state == "failed"
    assert "g4dn.xlarge boots AMI ami-" in message and "(amzn2-ami-ecs-hvm-2.0" in message
    assert "from ec2Configuration imageIdOverride (ECS_AL2_NVIDIA)" in message and "without NVIDIA drivers" in message


def test_gpu_job_on_the_gpu_ami_passes(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT005", tmp_path, job_queue="q-ce-gpu-gpu-ami", job_definition="jd-gpu")
    assert state == "passed" and "amzn2-ami-ecs-gpu-hvm" in message, message


def test_gpu_job_on_a_custom_ami_is_not_passed(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT005", tmp_path, job_queue="q-ce-gpu-custom-ami", job_definition="jd-gpu")
    assert state == "error"
    assert "(team-trainer-2026)" in message and "cannot be verified" in message


def test_ami_architecture_from_the_launch_template(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("IMG005", tmp_path, image=IMAGE, compute_environment="ce-arm-ami")
    assert state == "failed", message
    assert "ce-arm-ami: m5.large (amd64) cannot boot AMI ami-" in message
    assert "(arm64) from launch template lt-" in message and "version 1" in message


def test_launch_template_override_wins_for_its_types(env: BatchEnv, tmp_path: Path) -> None:
    """The override's x86 AMI is what m5.large boots, not the template's arm64 one: no conflict (the image itself is
    then looked up, and it is not in ECR here)."""
    state, message = outcome("IMG005", tmp_path, image=IMAGE, compute_environment="ce-arm-override")
    assert "cannot boot" not in message and state == "skipped", (state, message)


def test_docker_storage_is_the_root_volume_not_xvdcz(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("IMG007", tmp_path, image=BIG_IMAGE, compute_environment="ce-xvdcz")
    assert state == "failed"
    assert "Docker's storage on /dev/xvda, 30 GiB root volume of Batch's default ECS_AL2023 AMI" in message
    assert "not counted: /dev/xvdcz 500 GiB" in message
    state, message = outcome("IMG007", tmp_path, image=BIG_IMAGE, compute_environment="ce-root")
    assert state == "passed" and "/dev/xvda, 500 GiB from launch template" in message, message


def test_the_pinned_launch_template_version_is_used(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("IMG007", tmp_path, image=BIG_IMAGE, compute_environment="ce-pinned")
    assert state == "passed" and "500 GiB from launch template lt-" in message and "version 2" in message
    state, message = outcome("IMG007", tmp_path, image=BIG_IMAGE, compute_environment="ce-pinned-default")
    assert state == "failed" and "30 GiB from launch template" in message and "version 1" in message


def test_a_missing_launch_template_is_not_passed(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("IMG007", tmp_path, image=BIG_IMAGE, compute_environment="ce-gone-template")
    assert state == "error" and "launch template no-such-template version $Default does not exist" in message


# -- item 10: placement, Spot, user data (BAT010-BAT012) ------------------------------------------------------
def test_types_not_offered_in_the_subnets_zones(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT010", tmp_path, compute_environment="ce-zone-e")
    assert state == "failed"
    assert "none of its instance types (m5.large) is offered in the zones of its subnets, us-east-1e" in message
    state, message = outcome("BAT010", tmp_path, compute_environment="ml-ce")
    assert state == "passed" and "1 of 1 allowed types offered in us-east-1a" in message, message


def test_spot_without_retries_fails(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT011", tmp_path, job_queue="q-spot", job_definition="ml-train")
    assert state == "failed"
    assert "runs on Spot (ce-spot (SPOT)), and it has no retryStrategy (one attempt)" in message
    state, message = outcome("BAT011", tmp_path, job_queue="q-spot", job_definition="jd-exit-all")
    assert state == "failed" and "evaluateOnExit[0] (onStatusReason '*') says EXIT" in message
    state, message = outcome("BAT011", tmp_path, job_queue="q-spot", job_definition="jd-retry")
    assert state == "passed" and "retryStrategy.attempts 3" in message
    assert outcome("BAT011", tmp_path, job_queue="ml-queue", job_definition="ml-train")[0] == "skipped"


def test_multi_node_on_spot_fails(env: BatchEnv, tmp_path: Path) -> None:
    state, message = outcome("BAT011", tmp_path, job_queue="q-spot", job_definition="jd-mnp")
    assert state == "failed" and "multi-node parallel job, which Batch does not run on Spot" in message


@pytest.mark.parametrize(("ce", "expected", "text"), [
    ("ce-ud-mime", "passed", "MIME multi-part, leaves ECS_CLUSTER to Batch"),
    ("ce-ud-plain", "failed", "it is not a MIME multi-part archive"),
    ("ce-ud-cluster", "failed", "it sets ECS_CLUSTER"),
    ("ml-ce", "skipped", "uses no launch template"),
])
def test_launch_template_user_data(env: BatchEnv, tmp_path: Path, ce: str, expected: str, text: str) -> None:
    state, message = outcome("BAT012", tmp_path, compute_environment=ce)
    assert state == expected and text in message, message
    if ce == "ce-ud-cluster":
        assert "overwrites /etc/ecs/ecs.config" in message
