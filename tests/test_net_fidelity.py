"""Issue 14 on moto: what the network must let through for this job, hop by hop: DHCP options and DNS (NET006),
network ACLs on every hop (NET005), the job's own destinations (NET003), endpoint policies (NET007), and HTTPS
egress over the union of a compute environment's groups (SG004)."""

from __future__ import annotations

import pytest
from backends import Aws
from net_fixtures import Net, run_checks


@pytest.fixture
def net(aws: Aws) -> Net:
    return Net(aws)


def test_dhcp_options_with_custom_dns_are_not_passed(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    amazon = net.vpc("10.0.0.0/16", hostnames=True)
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers",
                                                        "Values": ["AmazonProvidedDNS"]}])
    ec2.associate_dhcp_options(DhcpOptionsId=dopt["DhcpOptions"]["DhcpOptionsId"], VpcId=amazon)
    custom = net.vpc("10.1.0.0/16", hostnames=True)
    corp = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers",
                                                        "Values": ["10.1.0.53", "10.1.0.54"]}])
    corp_id = corp["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=corp_id, VpcId=custom)

    run = run_checks({"network": {"vpc_id": amazon}}, tmp_path, prefixes=("NET006",))
    assert run.outcome(f"NET006[{amazon}]") == "passed"
    assert "uses the VPC resolver (AmazonProvidedDNS)" in run.message(f"NET006[{amazon}]")

    run = run_checks({"network": {"vpc_id": custom}}, tmp_path, prefixes=("NET006",))
    assert run.outcome(f"NET006[{custom}]") == "error"
    assert run.message(f"NET006[{custom}]").startswith(
        f"{custom}'s DHCP option set {corp_id} names custom DNS servers 10.1.0.53, 10.1.0.54: whether they forward")


def _acl(net: Net, vpc: str, subnet: str, entries: list[tuple[int, bool, str, tuple[int, int], str]]) -> str:
    """A network ACL with these (number, egress, action, ports, cidr) TCP entries, associated with the subnet."""
    ec2 = net.ec2
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    for n, egress, action, ports, cidr in entries:
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=n, Protocol="6", RuleAction=action, Egress=egress,
                                     CidrBlock=cidr, PortRange={"From": ports[0], "To": ports[1]})
    assoc = next(a["NetworkAclAssociationId"] for x in ec2.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"] for a in x["Associations"]
        if a["SubnetId"] == subnet)
    ec2.replace_network_acl_association(AssociationId=assoc, NetworkAclId=acl)
    return str(acl)


WORLD = "0.0.0.0/0"


def test_network_acl_of_the_nat_gateways_subnet_is_a_hop(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16", hostnames=True)
    public = net.subnet(vpc, "10.0.0.0/24")
    private = net.subnet(vpc, "10.0.1.0/24")
    net.default_route(net.table(vpc, public), GatewayId=net.igw(vpc))
    nat = net.nat(public)
    net.default_route(net.table(vpc, private), NatGatewayId=nat)
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [private]}}

    run = run_checks(cfg, tmp_path, prefixes=("NET005",))  # default ACLs everywhere: allow all
    assert run.outcome(f"NET005[{private}]") == "passed"
    assert f"NAT gateway {nat}'s subnet {public}: network ACL" in run.message(f"NET005[{private}]")

    # the NAT's subnet lets HTTPS out but not the replies from the internet back in to the NAT's ports
    acl = _acl(net, vpc, public, [(100, True, "allow", (0, 65535), WORLD), (100, False, "allow", (443, 443), WORLD)])
    run = run_checks(cfg, tmp_path, prefixes=("NET005",))
    assert run.outcome(f"NET005[{private}]") == "failed"
    message = run.message(f"NET005[{private}]")
    assert message.startswith(f"NAT gateway {nat}'s subnet {public}: network ACL {acl}: ")
    assert "inbound 1024-65535 (the NAT gateway's ports) from 0.0.0.0/0: no rule allows tcp/1024-65535 from " \
           "0.0.0.0/0" in message
    assert "inbound 443 from 10.0.1.0/24" not in message  # allowed by rule 100


def test_network_acl_of_the_endpoints_subnet_is_a_hop(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.3.0.0/16", hostnames=True)
    job = net.subnet(vpc, "10.3.1.0/24")
    hub = net.subnet(vpc, "10.3.9.0/24")  # where the endpoints' network interfaces are
    rt = net.table(vpc, job)
    net.endpoints(vpc, [hub], [net.endpoint_group(vpc, "10.3.0.0/16")], s3_tables=[rt])
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [job]}}
    run = run_checks(cfg, tmp_path, prefixes=("NET005", "NET003"))
    assert run.outcome(f"NET003[{job}]") == "passed"
    assert run.outcome(f"NET005[{job}]") == "passed"
    assert f"endpoint subnet {hub}: network ACL" in run.message(f"NET005[{job}]")

    # the endpoints' subnet admits 443 from the job's subnet, but its replies cannot go back out
    acl = _acl(net, vpc, hub, [(100, False, "allow", (443, 443), "10.3.0.0/16"),
                               (100, True, "allow", (443, 443), "10.3.0.0/16")])
    run = run_checks(cfg, tmp_path, prefixes=("NET005",))
    assert run.outcome(f"NET005[{job}]") == "failed"
    assert run.message(f"NET005[{job}]") == (
        f"endpoint subnet {hub}: network ACL {acl}: outbound 32768-60999 (ephemeral) to 10.3.1.0/24: no rule allows "
        "tcp/32768-60999 to 10.3.1.0/24")


ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-train:1"
LAYERS = "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"


def _job(aws: Aws, image: str = ECR_IMAGE, **container: object) -> None:
    aws.client("batch").register_job_definition(
        jobDefinitionName="ml-train", type="container",
        containerProperties={"image": image, "vcpus": 1, "memory": 512, **container})


def _policy(*statements: dict[str, object]) -> str:
    import json
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_s3_gateway_endpoint_policy_on_the_nat_path_must_allow_ecr_layers(net: Net, aws: Aws, tmp_path) -> None:
    vpc = net.vpc("10.4.0.0/16", hostnames=True)
    private, rt = net.nat_path(vpc, "10.4.0.0/24", "10.4.1.0/24")
    data_only = _policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                         "Resource": "arn:aws:s3:::ml-datasets/*"})
    s3 = net.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
                                     RouteTableIds=[rt], PolicyDocument=data_only)["VpcEndpoint"]["VpcEndpointId"]
    _job(aws)
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [private]}, "batch": {"job_definition": "ml-train"}}

    run = run_checks(cfg, tmp_path, prefixes=("NET007", "NET003"))
    assert run.outcome(f"NET003[{private}]") == "passed"  # the route is fine: the policy is what breaks the pull
    assert run.outcome(f"NET007[{private}]") == "failed"
    assert run.message(f"NET007[{private}]") == (
        f"{private}: s3 endpoint {s3} (on {private}'s route table {rt}): its policy does not allow s3:GetObject on "
        "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/sha256:pytest-mlbatch-layer: denied (no statement allows "
        "it (implicit deny))")

    net.ec2.modify_vpc_endpoint(VpcEndpointId=s3, PolicyDocument=_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": [LAYERS,
                                                                                    "arn:aws:s3:::ml-datasets/*"]}))
    run = run_checks(cfg, tmp_path, prefixes=("NET007",))
    assert run.outcome(f"NET007[{private}]") == "passed"
    assert run.message(f"NET007[{private}]") == (f"{private}: s3 endpoint {s3} (on {private}'s route table {rt}) "
                                                 "allows 1 request of the job")


def test_interface_endpoint_policies_are_evaluated_like_iam(net: Net, aws: Aws, tmp_path) -> None:
    vpc = net.vpc("10.5.0.0/16", hostnames=True)
    job = net.subnet(vpc, "10.5.1.0/24")
    rt = net.table(vpc, job)
    eps = net.endpoints(vpc, [job], [net.endpoint_group(vpc, "10.5.0.0/16")], s3_tables=[rt],
                        services=("ecs", "ecs-agent", "ecs-telemetry", "ecr.api", "ecr.dkr", "logs",
                                  "secretsmanager"))
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ml-token-AbCdEf"
    _job(aws, secrets=[{"name": "TOKEN", "valueFrom": f"{secret}:token::"}],
         logConfiguration={"logDriver": "awslogs", "options": {"awslogs-group": "/ml/train"}})
    net.ec2.modify_vpc_endpoint(VpcEndpointId=eps["secretsmanager"], PolicyDocument=_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:*", "Resource": secret}))
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [job]}, "batch": {"job_definition": "ml-train"}}

    run = run_checks(cfg, tmp_path, prefixes=("NET007", "NET003"))
    assert run.outcome(f"NET003[{job}]") == "passed", run.message(f"NET003[{job}]")
    assert run.outcome(f"NET007[{job}]") == "failed"
    assert run.message(f"NET007[{job}]") == (
        f"{job}: secretsmanager endpoint {eps['secretsmanager']} (private DNS in {vpc}): its policy does not allow "
        f"secretsmanager:GetSecretValue on {secret}: denied (Deny statement #2 of policy of secretsmanager interface "
        f"endpoint {eps['secretsmanager']})")

    net.ec2.modify_vpc_endpoint(VpcEndpointId=eps["secretsmanager"], PolicyDocument=_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": secret}))
    run = run_checks(cfg, tmp_path, prefixes=("NET007",))
    assert run.outcome(f"NET007[{job}]") == "passed", run.message(f"NET007[{job}]")


def test_destinations_come_from_the_job(net: Net, aws: Aws, tmp_path) -> None:
    """An endpoint-only subnet reaches ECR of its region, not Docker Hub nor ECR of another region; secrets need
    their endpoint; awslogs needs logs."""
    vpc = net.vpc("10.6.0.0/16", hostnames=True)
    job = net.subnet(vpc, "10.6.1.0/24")
    rt = net.table(vpc, job)
    net.endpoints(vpc, [job], [net.endpoint_group(vpc, "10.6.0.0/16")], s3_tables=[rt],
                  services=("ecs", "ecs-agent", "ecs-telemetry", "ecr.api", "ecr.dkr"))  # no logs endpoint
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [job]}, "batch": {"job_definition": "ml-train"}}
    _job(aws)  # ECR in us-east-1, no awslogs: the endpoints it has are enough
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "passed", run.message(f"NET003[{job}]")

    _job(aws, image="pytorch/pytorch:2.3.0")
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "failed"
    assert "but the job also reaches the image's registry docker.io (not ECR: no VPC endpoint reaches it): only a " \
           "NAT gateway or an internet gateway with public IPs gets there" in run.message(f"NET003[{job}]")

    _job(aws, image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml-train:1")
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert "the image's registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com (ECR in eu-west-1, not us-east-1" \
           in run.message(f"NET003[{job}]")

    _job(aws, logConfiguration={"logDriver": "awslogs"},
         secrets=[{"name": "T", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/ml/token"}])
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "failed"
    assert "VPC endpoints missing: ssm, logs" in run.message(f"NET003[{job}]")


def _compute_environment(aws: Aws, name: str, subnets: list[str], groups: list[str]) -> None:
    import json

    iam = aws.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName=f"svc-{name}", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName=f"ip-{name}")
    aws.client("batch").create_compute_environment(
        computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["m5.large"],
                          "subnets": subnets, "securityGroupIds": groups,
                          "instanceRole": f"arn:aws:iam::123456789012:instance-profile/ip-{name}"})


def test_https_egress_over_the_union_of_a_compute_environments_groups(net: Net, aws: Aws, tmp_path) -> None:
    from net_fixtures import https

    vpc = net.vpc("10.7.0.0/16")
    sub = net.subnet(vpc, "10.7.1.0/24")
    quiet = net.group(vpc, "app", egress=[])  # no egress of its own
    web = net.group(vpc, "egress", egress=[https("0.0.0.0/0")])
    alone = net.group(vpc, "alone", egress=[])
    _compute_environment(aws, "ml-ce", [sub], [quiet, web])
    _compute_environment(aws, "ml-lonely", [sub], [alone])
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub], "security_group_ids": [quiet, web]},
           "batch": {"compute_environment": "ml-ce"}}
    run = run_checks(cfg, tmp_path, prefixes=("SG004",))
    assert run.outcome(f"SG004[{quiet}]") == "passed"
    assert run.message(f"SG004[{quiet}]") == (
        f"{quiet} (app) with {web} (egress) (compute environment ml-ce: an instance has all of them) allows tcp/443 "
        "to the internet (tcp/443 0.0.0.0/0)")
    assert run.outcome(f"SG004[{web}]") == "passed"
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub], "security_group_ids": [alone]},
           "batch": {"compute_environment": "ml-lonely"}}
    run = run_checks(cfg, tmp_path, prefixes=("SG004",))
    assert run.outcome(f"SG004[{alone}]") == "failed"  # its compute environment has no other group
    assert run.message(f"SG004[{alone}]") == f"{alone} (alone) has no egress rule allowing tcp/443 to 0.0.0.0/0"


def test_ipv6_only_subnet_has_no_ipv4_path(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]
    block = ec2.describe_vpcs(VpcIds=[vpc["VpcId"]])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    v6 = block.replace("::/56", "::/64")
    dual = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.8.1.0/24", Ipv6CidrBlock=v6)["Subnet"]["SubnetId"]
    only = ec2.create_subnet(VpcId=vpc["VpcId"], Ipv6CidrBlock=v6.replace("00::/64", "01::/64"),
                             Ipv6Native=True)["Subnet"]["SubnetId"]
    net.default_route(net.table(vpc["VpcId"], dual, only), GatewayId=net.igw(vpc["VpcId"]))
    ec2.modify_subnet_attribute(SubnetId=dual, MapPublicIpOnLaunch={"Value": True})
    run = run_checks({"network": {"vpc_id": vpc["VpcId"], "subnet_ids": [dual, only]}}, tmp_path,
                     prefixes=("NET003", "NET005"))
    assert run.outcome(f"NET003[{dual}]") == "passed"
    assert run.outcome(f"NET003[{only}]") == "failed"
    assert run.message(f"NET003[{only}]").startswith(f"{only} is IPv6-only: it has no IPv4 path")
    # the dual-stack subnet's ACLs are checked for ::/0 too; the IPv6-only one only for ::/0
    assert "to ::/0" in run.message(f"NET005[{dual}]") and "0.0.0.0/0" not in run.message(f"NET005[{only}]")


DATA_READ = {"iam": {"job_role": {"name": "ml-job-role",
                                  "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"}]}}}


def _bucket(aws: Aws, name: str, region: str = "us-east-1") -> None:
    s3 = aws.client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


def test_s3_gateway_endpoint_policy_must_allow_the_buckets_the_job_role_reads(net: Net, aws: Aws, tmp_path) -> None:
    """The S3 gateway endpoint on the route table takes the job's own S3 traffic (NAT path included) for buckets of
    its region: its policy must allow what iam.job_role.allow declares; a bucket of another region does not go
    through it."""
    vpc = net.vpc("10.7.0.0/16", hostnames=True)
    private, rt = net.nat_path(vpc, "10.7.0.0/24", "10.7.1.0/24")
    s3 = net.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
                                     RouteTableIds=[rt], PolicyDocument=_policy(
                                         {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                          "Resource": LAYERS}))["VpcEndpoint"]["VpcEndpointId"]
    _job(aws)
    _bucket(aws, "ml-data")
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [private]}, "batch": {"job_definition": "ml-train"}, **DATA_READ}

    run = run_checks(cfg, tmp_path, prefixes=("NET007", "NET003"))
    assert run.outcome(f"NET003[{private}]") == "passed", run.message(f"NET003[{private}]")
    assert run.outcome(f"NET007[{private}]") == "failed"
    assert run.message(f"NET007[{private}]") == (
        f"{private}: s3 endpoint {s3} (on {private}'s route table {rt}): its policy does not allow the job role's "
        "declared s3:GetObject on arn:aws:s3:::ml-data/*: denied (no statement allows it (implicit deny))")

    # the same denial for a bucket of another region: its traffic takes the NAT gateway, not the endpoint
    _bucket(aws, "ml-data-eu", "eu-west-1")
    eu = {"iam": {"job_role": {"name": "ml-job-role",
                               "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data-eu/*"}]}}}
    run = run_checks({**cfg, **eu}, tmp_path, prefixes=("NET007",))
    assert run.outcome(f"NET007[{private}]") == "passed", run.message(f"NET007[{private}]")
    assert "note: S3 bucket ml-data-eu is in eu-west-1: S3 endpoint " + s3 + " does not carry its traffic" \
        in run.message(f"NET007[{private}]")

    # a bucket whose region cannot be read is not passed
    gone = {"iam": {"job_role": {"name": "ml-job-role",
                                 "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-gone/*"}]}}}
    run = run_checks({**cfg, **gone}, tmp_path, prefixes=("NET007",))
    assert run.outcome(f"NET007[{private}]") == "error"
    assert "S3 bucket ml-gone does not exist (s3:GetBucketLocation: NoSuchBucket)" in run.message(f"NET007[{private}]")

    net.ec2.modify_vpc_endpoint(VpcEndpointId=s3, PolicyDocument=_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": [LAYERS, "arn:aws:s3:::ml-data/*"]}))
    run = run_checks(cfg, tmp_path, prefixes=("NET007",))
    assert run.outcome(f"NET007[{private}]") == "passed", run.message(f"NET007[{private}]")
    assert run.message(f"NET007[{private}]") == (f"{private}: s3 endpoint {s3} (on {private}'s route table {rt}) "
                                                 "allows 2 requests of the job")


def test_endpoint_only_subnet_reaches_only_its_regions_buckets(net: Net, aws: Aws, tmp_path) -> None:
    """Without a NAT or internet gateway, the S3 gateway endpoint is the only way to S3, and it serves only its
    region's buckets: a declared bucket in another region is unreachable; one whose region cannot be read is an
    error naming it."""
    vpc = net.vpc("10.8.0.0/16", hostnames=True)
    job = net.subnet(vpc, "10.8.1.0/24")
    rt = net.table(vpc, job)
    eps = net.endpoints(vpc, [job], [net.endpoint_group(vpc, "10.8.0.0/16")], s3_tables=[rt])
    _job(aws)
    _bucket(aws, "ml-data")
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [job]}, "batch": {"job_definition": "ml-train"}, **DATA_READ}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "passed", run.message(f"NET003[{job}]")
    assert f"the buckets the job role is declared to reach (iam.job_role.allow), ml-data, are in us-east-1, " \
           f"reached through S3 gateway endpoint {eps['s3']} on route table {rt}" in run.message(f"NET003[{job}]")

    _bucket(aws, "ml-data-eu", "eu-west-1")
    eu = {"iam": {"job_role": {"name": "ml-job-role",
                               "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"},
                                         {"action": "s3:ListBucket", "resource": "arn:aws:s3:::ml-data-eu"}]}}}
    run = run_checks({**cfg, **eu}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "failed"
    message = run.message(f"NET003[{job}]")
    assert f"but of the buckets the job role is declared to reach (iam.job_role.allow): S3 bucket ml-data-eu is in " \
           f"eu-west-1, and S3 gateway endpoint {eps['s3']} on route table {rt} serves only us-east-1's buckets; " \
           "only a NAT gateway or an internet gateway with public IPs gets there (route table " \
           f"{rt} has no 0.0.0.0/0 route)" in message, message

    gone = {"iam": {"job_role": {"name": "ml-job-role",
                                 "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-gone/*"}]}}}
    run = run_checks({**cfg, **gone}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{job}]") == "error"
    assert "S3 bucket ml-gone does not exist (s3:GetBucketLocation: NoSuchBucket)" in run.message(f"NET003[{job}]")
