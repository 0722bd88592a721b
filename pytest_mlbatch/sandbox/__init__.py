"""--mlbatch-sandbox: an embedded moto server seeded with a sample ML batch environment with real problems.

What it contains (region us-east-1, account 123456789012; the caller is role `ml-engineer`, assumed, which may submit
the job and pass its role; the account's EC2 vCPU quotas are seeded: 64 standard, 0 G and P):
- VPC 10.20.0.0/16 with DNS on; a public subnet (route to an attached internet gateway, public IPs on launch)
  and a private subnet whose route table has no 0.0.0.0/0 route, no NAT and no VPC endpoints
                                                       -> NET003 fails, fixable (needs fix.allow: [nat_gateway])
- security group `ml-batch-sg` with HTTPS egress, but SSH open to 0.0.0.0/0     -> SG003 fails, needs a person
- ECR repository `mlmodel` holding tag `1.0` only, while the job definition runs `:latest`
                                                       -> IMG002 fails, needs a person (or image.local to push)
                                                       -> IMG009 fails, needs a person
- IAM: the compute environment names instance profile `ecsInstanceRole`, of which only the role is left (the classic
  mistake: a role where an instance profile belongs)     -> IAM003 fails, fixable
- no EC2 key pair `ml-batch-key`                          -> KEY001 fails, fixable
- Batch compute environment `ml-ce` (m5.large, maxvCpus 16), job queue `ml-queue`, job definition `ml-train`
  asking 16384 MiB, more than an m5.large can give        -> BAT004 fails, needs a person
- the job queue has no jobStateTimeLimitActions          -> BAT008 fails, needs a person

`pytest --mlbatch-sandbox --fix` repairs what is marked fixable; NET003's NAT gateway needs the opt-in, given with
`--mlbatch-config` naming a file whose `fix:` section says so (only `fix.allow` and `fix.tags` of it apply here):
`fix: {allow: [nat_gateway]}`. What needs a person stays: --fix never revokes a rule, moves a tag or resizes a job.
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


def point_env_at(endpoint: str, credentials: dict[str, str] | None = None) -> dict[str, str | None]:
    """The sandbox's credentials (by default moto's fake ones) and endpoint for this process; returns the previous
    values to restore."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    creds = credentials or {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, **creds})
    return saved


# The account's EC2 vCPU quotas (Service Quotas), which moto does not model: the sandbox seeds them in its
# embedded server so BAT009 decides on the sample account, not on what the emulator lacks.
EC2_QUOTAS = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 64.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 64.0),
    "L-DB2E81BA": ("Running On-Demand G and VT instances", 0.0),
    "L-417A185B": ("Running On-Demand P instances", 0.0),
}


def seed_quotas() -> None:
    """Answer GetServiceQuota for the EC2 vCPU quotas above in the embedded moto (same process)."""
    from moto.servicequotas.models import ServiceQuotasBackend

    if getattr(ServiceQuotasBackend.get_service_quota, "mlbatch_sandbox", False):
        return
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code == "ec2" and quota_code in EC2_QUOTAS:
            name, value = EC2_QUOTAS[quota_code]
            return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                    "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ec2/{quota_code}",
                    "QuotaCode": quota_code, "QuotaName": name, "Value": value, "Unit": "None",
                    "Adjustable": True, "GlobalQuota": False}
        return original(self, service_code, quota_code)

    get_service_quota.mlbatch_sandbox = True  # type: ignore[attr-defined]
    get_service_quota.original = original  # type: ignore[attr-defined]
    ServiceQuotasBackend.get_service_quota = get_service_quota  # type: ignore[method-assign]


def caller_credentials(endpoint: str) -> dict[str, str]:
    """Credentials of the sandbox's caller: role ml-engineer, assumed as people and CI jobs do (moto's default
    identity is no IAM principal at all, so IAM006 could not decide on it)."""
    import boto3

    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ml-engineer",
                            RoleSessionName="sandbox")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"]}


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
    # The classic mistake, in AWS itself: the compute environment names instance profile ecsInstanceRole, of which
    # only the role is left (the profile is made for CreateComputeEnvironment, which checks it, then deleted).
    iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
    profile_arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole"
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
    iam.delete_instance_profile(InstanceProfileName="ecsInstanceRole")
    queue = batch.create_job_queue(jobQueueName="ml-queue", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
    batch.register_job_definition(
        jobDefinitionName="ml-train", type="container",
        containerProperties={
            "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlmodel:latest",
            "command": ["python", "train.py"],
            "jobRoleArn": job_role,
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "16384"}],
        },
    )
    # the caller: an engineer's role that may submit the job and pass its role
    iam.create_role(RoleName="ml-engineer", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="ml-engineer", PolicyName="submit", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "batch:SubmitJob",
             "Resource": [queue, f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/ml-train:*"]},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": job_role}]}))
    seed_quotas()
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


def _fix_opt_ins(config: pytest.Config) -> dict[str, Any]:
    """`fix.allow` (and `fix.tags`) from --mlbatch-config, if given: how a sandbox run opts in to the structural
    fixes (internet_gateway, nat_gateway, move_tag). Nothing else of that file applies to the sandbox."""
    explicit = config.getoption("mlbatch_config", None)
    if not explicit:
        return {}
    _, raw = cfg.find_config(Path(config.rootpath), explicit)
    fix = raw.get("fix") or {}
    cfg.build("(sandbox fix options)", {"version": 1, "fix": fix})
    return {k: v for k, v in fix.items() if k in ("allow", "tags")}


class Sandbox:
    """Owns the embedded server for one pytest run (the xdist controller starts it; workers reuse it)."""

    def __init__(self, server: Any, endpoint: str, raw: dict[str, Any], saved_env: dict[str, str | None],
                 credentials: dict[str, str] | None = None) -> None:
        self.server = server
        self.endpoint = endpoint
        self.raw = raw
        self.saved_env = saved_env
        self.credentials = credentials
        self.settings = cfg.build("(sandbox)", raw)

    @classmethod
    def for_config(cls, config: pytest.Config) -> Sandbox:
        shared = getattr(config, "workerinput", {}).get("mlbatch_sandbox")
        if shared:  # an xdist worker: same server, same seeded environment and caller as the controller
            saved = point_env_at(shared["endpoint"], shared.get("credentials"))
            return cls(None, shared["endpoint"], shared["config"], saved, shared.get("credentials"))
        state_dir = Path(config.rootpath) / ".mlbatch" / "sandbox"
        server, endpoint = start_server()
        saved = point_env_at(endpoint)
        try:
            raw = seed(endpoint, state_dir)
            raw["fix"] = {**raw["fix"], **_fix_opt_ins(config)}
            credentials = caller_credentials(endpoint)
        except cfg.ConfigError as exc:
            server.stop()
            raise pytest.UsageError(str(exc)) from None
        except Exception:
            server.stop()
            raise
        point_env_at(endpoint, credentials)
        return cls(server, endpoint, raw, saved, credentials)

    def stop(self) -> None:
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.server is not None:
            self.server.stop()
            self.server = None
