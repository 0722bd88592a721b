"""--mlbatch-sandbox: an embedded moto server seeded with a sample ML batch environment with real problems.

What it contains (region us-east-1, account 123456789012):
- VPC 10.20.0.0/16 with DNS on; a public subnet (route to an attached internet gateway, public IPs on launch)
  and a private subnet whose route table has no 0.0.0.0/0 route, no NAT and no VPC endpoints   -> NET003 fails
- security group `ml-batch-sg` with HTTPS egress, but SSH open to 0.0.0.0/0                    -> SG003 fails
- ECR repository `mlmodel` holding tag `1.0` (and the job definition runs `:latest`)             -> IMG009 fails
- IAM: AWSServiceRoleForBatch-style service role, ecsInstanceRole role *without* an instance profile of that name
  (the classic mistake)                                                                    -> IAM003 fails, fixable
- no EC2 key pair `ml-batch-key`                                                           -> KEY001 fails, fixable
- Batch compute environment `ml-ce` (m5.large, maxvCpus 16), job queue `ml-queue`, job definition `ml-train`
  asking 16384 MiB, more than an m5.large can give                                               -> BAT004 fails
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_mlbatch import config as cfg

REGION = "us-east-1"
ACCOUNT = "123456789012"
ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "MOTO_IAM_LOAD_MANAGED_POLICIES")

TRUST = {
    service: json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    for service in ("batch", "ec2", "ecs-tasks")
}


def start_server() -> tuple[Any, str]:
    """A moto server on a free loopback port, in this process."""
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    try:
        from pytest_mlbatch.sandbox.motoserver import MotoServer

        server = MotoServer().start()
    except ImportError as exc:
        raise pytest.UsageError(
            f"--mlbatch-sandbox needs moto's server: pip install 'pytest-mlbatch[sandbox]' ({exc})") from None
    return server, server.endpoint


def point_env_at(endpoint: str) -> dict[str, str | None]:
    """Fake credentials and the endpoint for this process; returns the previous values to restore."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    })
    return saved


def seed(endpoint: str, state_dir: Path) -> dict[str, Any]:
    """Create the sample environment; return the config (raw mapping) that describes it."""
    import boto3

    s = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2 = s.client("ec2", endpoint_url=endpoint)
    iam = s.client("iam", endpoint_url=endpoint)
    ecr = s.client("ecr", endpoint_url=endpoint)
    batch = s.client("batch", endpoint_url=endpoint)

    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{REGION}b")["Subnet"]
    public, private = public["SubnetId"], private["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=public, MapPublicIpOnLaunch={"Value": True})
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rtb_public = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rtb_public, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rtb_public, SubnetId=public)
    rtb_private = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=rtb_private, SubnetId=private)

    sg = ec2.create_security_group(GroupName="ml-batch-sg", Description="ML batch instances", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    ecr.create_repository(repositoryName="mlmodel")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                                      "digest": "sha256:" + "0" * 64}, "layers": []})
    ecr.put_image(repositoryName="mlmodel", imageManifest=manifest, imageTag="1.0")

    service_role = iam.create_role(RoleName="AWSBatchServiceRole", Path="/service-role/",
                                   AssumeRolePolicyDocument=TRUST["batch"])["Role"]["Arn"]
    iam.attach_role_policy(RoleName="AWSBatchServiceRole",
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
    iam.create_role(RoleName="ecsInstanceRole", AssumeRolePolicyDocument=TRUST["ec2"])
    iam.attach_role_policy(RoleName="ecsInstanceRole",
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role")
    # The compute environment needs *an* instance profile; the config names the role instead (the classic mistake).
    iam.create_instance_profile(InstanceProfileName="ml-ce-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="ml-ce-profile", RoleName="ecsInstanceRole")
    profile_arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/ml-ce-profile"
    iam.create_role(RoleName="ecsTaskExecutionRole", AssumeRolePolicyDocument=TRUST["ecs-tasks"])
    iam.attach_role_policy(RoleName="ecsTaskExecutionRole",
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    job_role = iam.create_role(RoleName="ml-job-role", AssumeRolePolicyDocument=TRUST["ecs-tasks"])["Role"]["Arn"]
    iam.put_role_policy(RoleName="ml-job-role", PolicyName="data", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ml-data/*"}]}))

    ce = batch.create_compute_environment(
        computeEnvironmentName="ml-ce", type="MANAGED", state="ENABLED", serviceRole=service_role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["m5.large"],
                          "subnets": [public, private], "securityGroupIds": [sg], "instanceRole": profile_arn,
                          "ec2KeyPair": "ml-batch-key"},
    )["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName="ml-queue", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    batch.register_job_definition(
        jobDefinitionName="ml-train", type="container",
        containerProperties={
            "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlmodel:latest",
            "command": ["python", "train.py"],
            "jobRoleArn": job_role,
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "16384"}],
        },
    )
    return {
        "version": 1,
        "region": REGION,
        "account_id": ACCOUNT,
        "image": {"uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlmodel:latest"},
        "key_pair": {"name": "ml-batch-key", "private_key_file": str(state_dir / "ml-batch-key.pem")},
        "network": {"vpc_id": vpc, "subnet_ids": [public, private], "security_group_ids": [sg],
                    "security_group": {"name": "ml-batch-sg", "egress": [
                        {"protocol": "tcp", "port": 443, "cidr": "0.0.0.0/0"}]}},
        "iam": {"service_role": service_role, "instance_role": "ecsInstanceRole",
                "instance_profile": "ecsInstanceRole", "execution_role": "ecsTaskExecutionRole",
                "job_role": {"name": "ml-job-role",
                             "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"}]}},
        "batch": {"compute_environment": "ml-ce", "job_queue": "ml-queue", "job_definition": "ml-train"},
        "fix": {"tags": {"purpose": "pytest-mlbatch-sandbox"}},
    }


class Sandbox:
    """Owns the embedded server for one pytest run (the xdist controller starts it; workers reuse it)."""

    def __init__(self, server: Any, endpoint: str, raw: dict[str, Any], saved_env: dict[str, str | None]) -> None:
        self.server = server
        self.endpoint = endpoint
        self.raw = raw
        self.saved_env = saved_env
        self.settings = cfg.build("(sandbox)", raw)

    @classmethod
    def for_config(cls, config: pytest.Config) -> Sandbox:
        shared = getattr(config, "workerinput", {}).get("mlbatch_sandbox")
        if shared:  # an xdist worker: same server, same seeded environment as the controller
            saved = point_env_at(shared["endpoint"])
            return cls(None, shared["endpoint"], shared["config"], saved)
        state_dir = Path(config.rootpath) / ".mlbatch" / "sandbox"
        server, endpoint = start_server()
        saved = point_env_at(endpoint)
        try:
            raw = seed(endpoint, state_dir)
        except Exception:
            server.stop()
            raise
        return cls(server, endpoint, raw, saved)

    def stop(self) -> None:
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.server is not None:
            self.server.stop()
            self.server = None
