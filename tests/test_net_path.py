"""NET003 on real moto resources: every path passing and failing, and the derived NAT placement and blackholes."""

from __future__ import annotations

import pytest
from backends import Aws
from net_fixtures import Net, https, run_checks


@pytest.fixture
def net(aws: Aws) -> Net:
    return Net(aws)


def test_internet_and_nat_paths(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    vpc = net.vpc("10.0.0.0/16")
    igw = net.igw(vpc)
    pub = net.subnet(vpc, "10.0.1.0/24", "a", public_ip=True)
    pub_noip = net.subnet(vpc, "10.0.2.0/24", "b")
    rt_pub = net.table(vpc, pub, pub_noip)
    net.default_route(rt_pub, GatewayId=igw)

    priv = net.subnet(vpc, "10.0.5.0/24", "a")
    rt_priv = net.table(vpc, priv)  # explicit table without a default route beats a public main table

    nat_good = net.nat(pub)
    via_nat = net.subnet(vpc, "10.0.3.0/24", "a")
    net.default_route(net.table(vpc, via_nat), NatGatewayId=nat_good)

    nat_in_private = net.nat(priv)  # moto accepts it; the check must see that its subnet has no public route
    via_bad_nat = net.subnet(vpc, "10.0.4.0/24", "b")
    net.default_route(net.table(vpc, via_bad_nat), NatGatewayId=nat_in_private)

    nat_gone = net.nat(pub)
    via_gone = net.subnet(vpc, "10.0.6.0/24", "b")
    rt_gone = net.table(vpc, via_gone)
    net.default_route(rt_gone, NatGatewayId=nat_gone)
    ec2.delete_nat_gateway(NatGatewayId=nat_gone)  # moto keeps the route "active": a derived blackhole

    main_public = net.subnet(vpc, "10.0.7.0/24", "c", public_ip=True)
    main = net.main_table(vpc)
    net.default_route(main, GatewayId=igw)

    subnets = [pub, pub_noip, priv, via_nat, via_bad_nat, via_gone, main_public]
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": subnets}}, tmp_path, prefixes=("NET003",))

    assert run.outcome(f"NET003[{pub}]") == "passed"
    assert run.message(f"NET003[{pub}]") == (
        f"{pub}: public: route table {rt_pub} (explicitly associated) sends 0.0.0.0/0 to {igw}; "
        "public IPs on launch (MapPublicIpOnLaunch is on)")

    assert run.outcome(f"NET003[{pub_noip}]") == "failed"
    assert run.message(f"NET003[{pub_noip}]").startswith(
        f"{pub_noip}: public route (route table {rt_pub} (explicitly associated) sends 0.0.0.0/0 to {igw}) but no "
        "public IPs on launch (MapPublicIpOnLaunch is off); no NAT; VPC endpoints missing: ecs, ecs-agent, "
        "ecs-telemetry, ecr.api, ecr.dkr, logs, s3")

    assert run.outcome(f"NET003[{priv}]") == "failed"
    assert run.message(f"NET003[{priv}]") == (
        f"{priv}: private (route table {rt_priv} has no 0.0.0.0/0 route); no NAT; VPC endpoints missing: ecs, "
        "ecs-agent, ecs-telemetry, ecr.api, ecr.dkr, logs, s3")

    assert run.outcome(f"NET003[{via_nat}]") == "passed"
    assert "private via NAT" in run.message(f"NET003[{via_nat}]")
    assert f"{nat_good} (available, " in run.message(f"NET003[{via_nat}]")
    assert f"in public subnet {pub}" in run.message(f"NET003[{via_nat}]")

    assert run.outcome(f"NET003[{via_bad_nat}]") == "failed"
    assert (f"NAT gateway {nat_in_private} sits in {priv}, which has no public route (route table {rt_priv} has "
            "no 0.0.0.0/0 route)") in run.message(f"NET003[{via_bad_nat}]")

    assert run.outcome(f"NET003[{via_gone}]") == "failed"
    assert f"private (0.0.0.0/0 on {rt_gone} goes to {nat_gone}); NAT gateway {nat_gone} is deleted (the route " \
           "is a blackhole)" in run.message(f"NET003[{via_gone}]")

    assert run.outcome(f"NET003[{main_public}]") == "passed"
    assert f"route table {main} (main) sends 0.0.0.0/0 to {igw}" in run.message(f"NET003[{main_public}]")


def test_detached_igw_opaque_target_and_subnet_id_mode(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.3.0.0/16")
    igw = net.igw(vpc)
    sub = net.subnet(vpc, "10.3.1.0/24", public_ip=True)
    rt = net.table(vpc, sub)
    net.default_route(rt, GatewayId=igw)
    net.ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)  # the route stays "active" in moto
    via_tgw = net.subnet(vpc, "10.3.2.0/24")
    tgw = net.ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    net.default_route(net.table(vpc, via_tgw), TransitGatewayId=tgw)
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub, via_tgw]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert run.message(f"NET003[{sub}]").startswith(
        f"{sub}: private (0.0.0.0/0 on {rt} goes to {igw}, which does not exist or is not attached to {vpc}); no NAT")
    assert run.outcome(f"NET003[{via_tgw}]") == "error"
    assert f"goes to transit gateway {tgw}; cannot verify beyond transit gateway {tgw}" in \
        run.message(f"NET003[{via_tgw}]")
    assert run.message(f"NET003[{via_tgw}]").endswith(
        f"cannot verify beyond {tgw}: declare it in network.trusted_egress once you have checked that it reaches "
        "the internet or the AWS service endpoints")

    # without network.vpc_id, subnets are described by id and every VPC they are in is read
    v1 = net.vpc("10.6.0.0/16")
    s1 = net.subnet(v1, "10.6.1.0/24", public_ip=True)
    net.default_route(net.table(v1, s1), GatewayId=net.igw(v1))
    run = run_checks({"network": {"subnet_ids": [s1, sub]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{s1}]") == "passed"
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert run.calls["ec2:DescribeRouteTables"] == 1 and run.calls["ec2:DescribeSubnets"] == 1


def test_endpoint_path(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.1.0.0/16", hostnames=True)
    a = net.subnet(vpc, "10.1.1.0/24", "a")
    b = net.subnet(vpc, "10.1.2.0/24", "b")
    c = net.subnet(vpc, "10.1.3.0/24", "a")
    rt = net.table(vpc, a, b)
    rt_c = net.table(vpc, c)
    sg = net.endpoint_group(vpc, "10.1.0.0/16")
    eps = net.endpoints(vpc, [a], [sg], s3_tables=[rt])
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [a, b, c]}}, tmp_path, prefixes=("NET003",))

    assert run.outcome(f"NET003[{a}]") == "passed"
    assert run.message(f"NET003[{a}]") == (
        f"{a}: private via VPC endpoints: ecs ({eps['ecs']}), ecs-agent ({eps['ecs-agent']}), ecs-telemetry "
        f"({eps['ecs-telemetry']}), ecr.api ({eps['ecr.api']}), ecr.dkr ({eps['ecr.dkr']}), logs ({eps['logs']}), "
        f"s3 gateway ({eps['s3']}) on {rt}")

    # an interface endpoint answers every zone of its VPC: no interface in b is an availability note
    assert run.outcome(f"NET003[{b}]") == "passed", run.message(f"NET003[{b}]")
    assert (f"note: availability: ecr.dkr endpoint {eps['ecr.dkr']} has no interface in us-east-1b (it covers "
            "us-east-1a): it still answers this subnet across zones") in run.message(f"NET003[{b}]")

    assert run.outcome(f"NET003[{c}]") == "failed"
    assert run.message(f"NET003[{c}]") == (
        f"{c}: private (route table {rt_c} has no 0.0.0.0/0 route); no NAT; s3 gateway endpoint {eps['s3']} is "
        f"not on route table {rt_c}")

    vpc = net.vpc("10.2.0.0/16")
    sub = net.subnet(vpc, "10.2.1.0/24")
    rt = net.table(vpc, sub)
    good = net.endpoint_group(vpc, "10.2.0.0/16", "good")
    closed = net.group(vpc, "closed", ingress=[https("192.168.0.0/16")])
    eps = net.endpoints(vpc, [sub], [good], services=("ecs-agent", "ecs-telemetry", "ecr.api"))
    eps |= net.endpoints(vpc, [sub], [closed], services=("ecs",))
    eps |= net.endpoints(vpc, [sub], [good], services=("logs",), private_dns=False)
    # a public subnet of the same VPC: private DNS sends its ECS traffic to the endpoint that does not admit it
    pub = net.subnet(vpc, "10.2.9.0/24", public_ip=True)
    igw = net.igw(vpc)
    net.default_route(net.table(vpc, pub), GatewayId=igw)
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub, pub]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{pub}]") == "failed"
    assert run.message(f"NET003[{pub}]").endswith(
        f"sends 0.0.0.0/0 to {igw}; public IPs on launch (MapPublicIpOnLaunch is on); but ecs endpoint {eps['ecs']} "
        f"(private DNS, so it receives the ecs traffic) has groups {closed} that do not admit tcp/443 from "
        "10.2.9.0/24")
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert run.message(f"NET003[{sub}]") == (
        f"{sub}: private (route table {rt} has no 0.0.0.0/0 route); no NAT; VPC endpoints missing: ecr.dkr, s3; "
        f"ecs endpoint {eps['ecs']} has groups {closed} that do not admit tcp/443 from 10.2.1.0/24; "
        f"logs endpoint {eps['logs']} has private DNS off (the default service names would not resolve to it)")

    # An endpoint group that admits 443 from the instances' group (not a CIDR) is enough.
    vpc = net.vpc("10.5.0.0/16", hostnames=True)
    sub = net.subnet(vpc, "10.5.1.0/24")
    rt = net.table(vpc, sub)
    instances = net.group(vpc, "instances")
    ep_sg = net.group(vpc, "endpoints", ingress=[https(group=instances)])
    net.endpoints(vpc, [sub], [ep_sg], s3_tables=[rt])
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub], "security_group_ids": [instances]}}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "passed", run.message(f"NET003[{sub}]")
    cfg["network"]["security_group_ids"] = []  # type: ignore[index]
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert "that do not admit tcp/443 from 10.5.1.0/24" in run.message(f"NET003[{sub}]")

    # private DNS names resolve only with both VPC DNS attributes on
    net.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": False})
    cfg["network"]["security_group_ids"] = [instances]  # type: ignore[index]
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert run.message(f"NET003[{sub}]").endswith(
        f"; but {vpc} has enableDnsHostnames off, so the endpoints' private DNS names do not resolve")


# -- public IPs from the compute environment --------------------------------------------------------------

def _service_role(aws: Aws) -> str:
    import json

    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    return str(aws.client("iam").create_role(RoleName="batch-svc", AssumeRolePolicyDocument=trust)["Role"]["Arn"])


# the job's image in ECR in the test's region: the endpoint path reaches it (Docker Hub would need the internet)
ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-train:1"


def test_public_ips_from_the_compute_environment(net: Net, aws: Aws, tmp_path) -> None:
    vpc = net.vpc("10.8.0.0/16")
    sub = net.subnet(vpc, "10.8.1.0/24")  # MapPublicIpOnLaunch off
    net.default_route(net.table(vpc, sub), GatewayId=net.igw(vpc))
    sg = net.group(vpc, "ce")
    role = _service_role(aws)
    aws.client("iam").create_instance_profile(InstanceProfileName="x")
    lt = net.ec2.create_launch_template(LaunchTemplateName="ml-lt", LaunchTemplateData={
        "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": True}]})["LaunchTemplate"]
    aws.client("batch").create_compute_environment(
        computeEnvironmentName="ml-ce", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["m5.large"],
                          "subnets": [sub], "securityGroupIds": [sg], "instanceRole": "arn:aws:iam::123456789012:"
                          "instance-profile/x", "launchTemplate": {"launchTemplateId": lt["LaunchTemplateId"]}})
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub]}, "batch": {"compute_environment": "ml-ce"}}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "passed", run.message(f"NET003[{sub}]")
    assert "ml-ce's launch template ml-lt sets AssociatePublicIpAddress true" in run.message(f"NET003[{sub}]")

    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "failed"  # without the compute environment: the subnet's setting

    vpc = net.vpc("10.9.0.0/16", hostnames=True)
    sub = net.subnet(vpc, "10.9.1.0/24", public_ip=True)  # ignored on Fargate
    net.default_route(net.table(vpc, sub), GatewayId=net.igw(vpc))
    sg = net.group(vpc, "ce")
    # a private subnet with only the endpoints Fargate needs (no ecs, ecs-agent, ecs-telemetry)
    priv = net.subnet(vpc, "10.9.2.0/24")
    rt_priv = net.table(vpc, priv)
    net.endpoints(vpc, [priv], [net.endpoint_group(vpc, "10.9.0.0/16")], services=("ecr.api", "ecr.dkr", "logs"),
                  s3_tables=[rt_priv])
    batch = aws.client("batch")
    batch.create_compute_environment(
        computeEnvironmentName="ml-fargate", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [sub, priv], "securityGroupIds": [sg]})
    batch.register_job_definition(jobDefinitionName="ml-train", type="container", platformCapabilities=["FARGATE"],
                                  containerProperties={"image": ECR_IMAGE, "resourceRequirements": [
                                      {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
                                      "networkConfiguration": {"assignPublicIp": "DISABLED"}})
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub, priv]},
           "batch": {"compute_environment": "ml-fargate", "job_definition": "ml-train"}}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{priv}]") == "passed", run.message(f"NET003[{priv}]")
    assert run.message(f"NET003[{priv}]").startswith(f"{priv}: private via VPC endpoints: ecr.api (")
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert "but no public IPs on launch (ml-fargate is Fargate: job definition ml-train has assignPublicIp " \
           "DISABLED)" in run.message(f"NET003[{sub}]")

    batch.register_job_definition(jobDefinitionName="ml-train", type="container", platformCapabilities=["FARGATE"],
                                  containerProperties={"image": ECR_IMAGE, "resourceRequirements": [
                                      {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
                                      "networkConfiguration": {"assignPublicIp": "ENABLED"}})
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "passed", run.message(f"NET003[{sub}]")
    assert "assignPublicIp ENABLED" in run.message(f"NET003[{sub}]")




# -- issue 19: longest-prefix match, hops not seen past, trusted egress, S3 interface endpoints, ACLs ---------------
def _nat_vpc(net: Net, cidr: str) -> tuple[str, str, str]:
    """A VPC with a public subnet holding a NAT gateway; returns (vpc, public subnet, nat)."""
    vpc = net.vpc(cidr)
    octets = cidr.split(".")
    pub = net.subnet(vpc, f"{octets[0]}.{octets[1]}.0.0/24", "a", public_ip=True)
    net.default_route(net.table(vpc, pub), GatewayId=net.igw(vpc))
    return vpc, pub, net.nat(pub)


def test_split_default_route_and_more_specific_routes(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    vpc, _, nat = _nat_vpc(net, "10.20.0.0/16")
    halves = net.subnet(vpc, "10.20.1.0/24")
    rt = net.table(vpc, halves)
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/1", NatGatewayId=nat)
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="128.0.0.0/1", NatGatewayId=nat)

    tgw = ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    private_elsewhere = net.subnet(vpc, "10.20.2.0/24")
    rt2 = net.table(vpc, private_elsewhere)
    net.default_route(rt2, NatGatewayId=nat)
    ec2.create_route(RouteTableId=rt2, DestinationCidrBlock="10.0.0.0/8", TransitGatewayId=tgw)

    public_elsewhere = net.subnet(vpc, "10.20.3.0/24")
    rt3 = net.table(vpc, public_elsewhere)
    net.default_route(rt3, NatGatewayId=nat)
    ec2.create_route(RouteTableId=rt3, DestinationCidrBlock="52.0.0.0/8", TransitGatewayId=tgw)

    subnets = [halves, private_elsewhere, public_elsewhere]
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": subnets}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{halves}]") == "passed", run.message(f"NET003[{halves}]")
    assert f"sends 0.0.0.0/1, 128.0.0.0/1 to {nat}" in run.message(f"NET003[{halves}]")
    assert run.outcome(f"NET003[{private_elsewhere}]") == "passed", run.message(f"NET003[{private_elsewhere}]")
    assert run.outcome(f"NET003[{public_elsewhere}]") == "error"
    message = run.message(f"NET003[{public_elsewhere}]")
    assert f"but part of the public address space goes elsewhere: 52.0.0.0/8: 52.0.0.0/8 on {rt3} goes to " \
           f"transit gateway {tgw}" in message
    assert f"cannot verify beyond {tgw}: declare it in network.trusted_egress" in message

    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": subnets, "trusted_egress": [tgw]}}, tmp_path,
                     prefixes=("NET003",))
    assert run.outcome(f"NET003[{public_elsewhere}]") == "passed", run.message(f"NET003[{public_elsewhere}]")
    assert f"note: 52.0.0.0/8 goes to declared trusted egress {tgw}" in run.message(f"NET003[{public_elsewhere}]")


def test_hops_not_seen_past_are_errors_until_declared_trusted(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    vpc, pub, _ = _nat_vpc(net, "10.21.0.0/16")
    peer = net.vpc("10.99.0.0/16")
    pcx = ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=peer)["VpcPeeringConnection"][
        "VpcPeeringConnectionId"]
    via_pcx = net.subnet(vpc, "10.21.1.0/24")
    net.default_route(net.table(vpc, via_pcx), VpcPeeringConnectionId=pcx)
    appliance = ec2.create_network_interface(SubnetId=pub)["NetworkInterface"]["NetworkInterfaceId"]
    via_eni = net.subnet(vpc, "10.21.2.0/24")
    net.default_route(net.table(vpc, via_eni), NetworkInterfaceId=appliance)
    # the Network Firewall reference design: the NAT gateway's own subnet routes through a firewall endpoint
    fw_subnet = net.subnet(vpc, "10.21.3.0/24")
    firewall = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-0firewall",
                                       VpcEndpointType="GatewayLoadBalancer",
                                       SubnetIds=[fw_subnet])["VpcEndpoint"]["VpcEndpointId"]
    nat_subnet = net.subnet(vpc, "10.21.4.0/24")
    ec2.create_route(RouteTableId=net.table(vpc, nat_subnet), DestinationCidrBlock="0.0.0.0/0",
                     VpcEndpointId=firewall)
    nat = net.nat(nat_subnet)
    behind_fw = net.subnet(vpc, "10.21.5.0/24")
    net.default_route(net.table(vpc, behind_fw), NatGatewayId=nat)

    subnets = [via_pcx, via_eni, behind_fw]
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": subnets}}, tmp_path, prefixes=("NET003",))
    for sid, hop in ((via_pcx, pcx), (via_eni, appliance), (behind_fw, firewall)):
        assert run.outcome(f"NET003[{sid}]") == "error", run.message(f"NET003[{sid}]")
        assert f"cannot verify beyond {hop}: declare it in network.trusted_egress" in run.message(f"NET003[{sid}]")
    assert f"NAT gateway {nat} (available, " in run.message(f"NET003[{behind_fw}]")

    cfg = {"network": {"vpc_id": vpc, "subnet_ids": subnets, "trusted_egress": [pcx, appliance, firewall]}}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",))
    for sid, hop in ((via_pcx, pcx), (via_eni, appliance), (behind_fw, firewall)):
        assert run.outcome(f"NET003[{sid}]") == "passed", run.message(f"NET003[{sid}]")
        assert f"note: {hop} is declared trusted egress (network.trusted_egress): not verified beyond it" in \
            run.message(f"NET003[{sid}]")
    assert run.message(f"NET003[{behind_fw}]").startswith(f"{behind_fw}: private via NAT")


def test_s3_interface_endpoint_with_private_dns_is_an_s3_path(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.22.0.0/16", hostnames=True)
    sub = net.subnet(vpc, "10.22.1.0/24")
    net.table(vpc, sub)
    sg = net.endpoint_group(vpc, "10.22.0.0/16")
    eps = net.endpoints(vpc, [sub], [sg], services=(*net_services(), "s3"))
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "passed", run.message(f"NET003[{sub}]")
    assert f"s3 interface ({eps['s3']}, private DNS)" in run.message(f"NET003[{sub}]")

    vpc = net.vpc("10.23.0.0/16", hostnames=True)
    sub = net.subnet(vpc, "10.23.1.0/24")
    net.table(vpc, sub)
    sg = net.endpoint_group(vpc, "10.23.0.0/16")
    net.endpoints(vpc, [sub], [sg])
    eps = net.endpoints(vpc, [sub], [sg], services=("s3",), private_dns=False)
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET003",))
    assert run.outcome(f"NET003[{sub}]") == "failed"
    assert f"s3 endpoint {eps['s3']} has private DNS off" in run.message(f"NET003[{sub}]")


def net_services() -> tuple[str, ...]:
    from pytest_mlbatch.analysis.netpath import INTERFACE_SERVICES

    return INTERFACE_SERVICES


def test_network_acl_rules_in_order_over_address_ranges(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    vpc = net.vpc("10.24.0.0/16")
    sub = net.subnet(vpc, "10.24.1.0/24")
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    assoc = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [sub]}])[
        "NetworkAcls"][0]["Associations"]
    mine = next(a for a in assoc if a["SubnetId"] == sub)
    ec2.replace_network_acl_association(AssociationId=mine["NetworkAclAssociationId"], NetworkAclId=acl)

    def rule(n: int, action: str, egress: bool, cidr: str, ports: tuple[int, int]) -> None:
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=n, Protocol="6", RuleAction=action, Egress=egress,
                                     CidrBlock=cidr, PortRange={"From": ports[0], "To": ports[1]})

    rule(10, "deny", True, "192.168.0.0/16", (0, 65535))  # not the internet
    rule(20, "allow", True, "0.0.0.0/1", (443, 443))  # two halves together cover it
    rule(30, "allow", True, "128.0.0.0/1", (443, 443))
    rule(10, "deny", False, "0.0.0.0/0", (3389, 3389))  # RDP: not a port replies return to
    rule(20, "allow", False, "0.0.0.0/0", (1024, 65535))
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET005",))
    assert run.outcome(f"NET005[{sub}]") == "passed", run.message(f"NET005[{sub}]")
    assert "outbound 443 to 0.0.0.0/0: allowed by rule 20, 30" in run.message(f"NET005[{sub}]")
    assert "inbound 32768-60999 (ephemeral) from 0.0.0.0/0: allowed by rule 20" in run.message(f"NET005[{sub}]")
    rule(15, "deny", False, "0.0.0.0/0", (40000, 40100))  # inside the ephemeral ports: a real cut of the replies
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET005",))
    assert run.outcome(f"NET005[{sub}]") == "failed"
    assert run.message(f"NET005[{sub}]") == (f"{sub}: network ACL {acl}: inbound 32768-60999 (ephemeral) from "
                                             "0.0.0.0/0: rule 15 denies tcp/40000-40100 from 0.0.0.0/0")
    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=15, Egress=False)

    rule(5, "deny", True, "52.0.0.0/8", (443, 443))  # part of the internet: named, not passed
    run = run_checks({"network": {"vpc_id": vpc, "subnet_ids": [sub]}}, tmp_path, prefixes=("NET005",))
    assert run.outcome(f"NET005[{sub}]") == "error"
    assert "outbound 443 to 0.0.0.0/0: rule 5 denies tcp/443 to 52.0.0.0/8 (other addresses are allowed by rule " \
           "20, 30;" in run.message(f"NET005[{sub}]")


def _net004_with_placement_groups(tmp_path, cfg: dict, groups: list[dict]) -> tuple[str, str]:
    """NET004 through the real engine, moto for Batch and EC2, except DescribePlacementGroups: moto does not
    implement placement groups, so the run's EC2 client is a botocore Stubber (requests and responses validated
    against EC2's model) that answers the other EC2 reads with what moto returns for them."""
    import boto3
    from botocore.stub import Stubber

    from pytest_mlbatch import config as config_module
    from pytest_mlbatch.engine import runner as engine
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.model.resources import resources_for

    settings = config_module.build("(test)", {"version": 1, "region": "us-east-1", **cfg})
    runtime = Runtime(settings, tmp_path)
    target = runtime.targets[0]
    real = boto3.client("ec2", region_name="us-east-1")
    ec2 = target.inventory.client("ec2")
    stub = Stubber(ec2)
    subnets = real.describe_subnets(SubnetIds=cfg["network"]["subnet_ids"])
    stub.add_response("describe_subnets", {"Subnets": subnets["Subnets"]})
    ce = boto3.client("batch", region_name="us-east-1").describe_compute_environments(
        computeEnvironments=[cfg["batch"]["compute_environment"]])["computeEnvironments"][0]
    lt = ce["computeResources"]["launchTemplate"]["launchTemplateId"]
    versions = real.describe_launch_template_versions(LaunchTemplateId=lt, Versions=["$Default"])
    stub.add_response("describe_launch_template_versions",
                      {"LaunchTemplateVersions": versions["LaunchTemplateVersions"]})
    stub.add_response("describe_placement_groups", {"PlacementGroups": groups},
                      {"Filters": [{"Name": "group-name", "Values": [groups[0]["GroupName"]]}]})
    check = runtime.registry.get("NET004")
    found = resources_for(check.resource_kind, target.scope(), target.label)
    assert not isinstance(found, str)
    with stub:
        result = engine.run(runtime, check, target, found[0])
        stub.assert_no_pending_responses()
    return result.outcome, result.message


def test_one_zone_on_purpose_with_a_cluster_placement_group(net: Net, aws: Aws, tmp_path) -> None:
    """NET004: multi-node jobs kept in one zone by a cluster placement group in the launch template are not a
    failure; a spread group in one zone still is."""
    vpc = net.vpc("10.25.0.0/16")
    a1 = net.subnet(vpc, "10.25.1.0/24", "a")
    a2 = net.subnet(vpc, "10.25.2.0/24", "a")
    sg = net.group(vpc, "ce")
    role = _service_role(aws)
    aws.client("iam").create_instance_profile(InstanceProfileName="x")
    lt = net.ec2.create_launch_template(LaunchTemplateName="lt-mnp", LaunchTemplateData={
        "Placement": {"GroupName": "ml-mnp"}})["LaunchTemplate"]
    aws.client("batch").create_compute_environment(
        computeEnvironmentName="ml-mnp", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["c5n.18xlarge"],
                          "subnets": [a1, a2], "securityGroupIds": [sg],
                          "instanceRole": "arn:aws:iam::123456789012:instance-profile/x",
                          "launchTemplate": {"launchTemplateId": lt["LaunchTemplateId"]}})
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [a1, a2]}, "batch": {"compute_environment": "ml-mnp"}}
    outcome, message = _net004_with_placement_groups(tmp_path, cfg, [
        {"GroupName": "ml-mnp", "Strategy": "cluster", "State": "available", "GroupId": "pg-0123456789abcdef0"}])
    assert outcome == "passed", message
    assert message.endswith(
        "on purpose: compute environment ml-mnp uses cluster placement group ml-mnp (its launch template's "
        "Placement) (a cluster placement group keeps instances in one zone for low-latency multi-node jobs)")
    outcome, message = _net004_with_placement_groups(tmp_path, cfg, [
        {"GroupName": "ml-mnp", "Strategy": "spread", "State": "available", "GroupId": "pg-0123456789abcdef0"}])
    assert outcome == "failed", message
    assert message.startswith("all subnets are in one availability zone")
