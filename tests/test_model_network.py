"""The network model of a target built from a moto world (aws/network.py): VPC with DNS attributes and DHCP
options, subnets (IPv6-only too), route tables with the main-table fallback, NAT and internet gateways, endpoints
with their policies, network ACLs and security groups, as typed facts."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from backends import REGION, Aws
from net_fixtures import Net, https

from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.model.scope import Scope


def world(**scope: object) -> AwsWorld:
    return AwsWorld(Inventory(boto3.Session(region_name=REGION), REGION), Scope(**scope), REGION, Path("."))


def test_the_network_is_typed_with_every_hop(aws: Aws) -> None:
    net = Net(aws)
    ec2 = net.ec2
    vpc = net.vpc("10.0.0.0/16", hostnames=True)
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers", "Values": ["10.0.0.2"]}])
    ec2.associate_dhcp_options(DhcpOptionsId=dopt["DhcpOptions"]["DhcpOptionsId"], VpcId=vpc)
    public = net.subnet(vpc, "10.0.0.0/24", "a", public_ip=True)
    private = net.subnet(vpc, "10.0.1.0/24", "b")
    orphan = net.subnet(vpc, "10.0.2.0/24", "a")  # no table of its own: the main one applies
    igw = net.igw(vpc)
    rt_pub = net.table(vpc, public)
    net.default_route(rt_pub, GatewayId=igw)
    nat = net.nat(public)
    rt_priv = net.table(vpc, private)
    net.default_route(rt_priv, NatGatewayId=nat)
    group = net.group(vpc, "jobs", egress=[https("0.0.0.0/0")])
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                                 "Action": "s3:GetObject", "Resource": "*"}]})
    s3 = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
                                 RouteTableIds=[rt_priv], PolicyDocument=policy)["VpcEndpoint"]["VpcEndpointId"]
    eps = net.endpoints(vpc, [private], [group], services=("ecr.dkr",))

    w = world(vpc_id=vpc, subnet_ids=[public, private, orphan], security_group_ids=[group])
    model = w.network(paths=True, acls=True, dns=True, dhcp=True)

    v = model.vpcs[vpc]
    assert v.state == "available" and v.cidrs == ("10.0.0.0/16",) and v.dns_support and v.dns_hostnames
    assert v.dhcp is not None and v.dhcp.domain_name_servers == ("10.0.0.2",) and v.dhcp.custom_dns == ("10.0.0.2",)
    sub = model.subnets[public]
    assert (sub.zone, sub.cidr, sub.map_public_ip, sub.ipv6_only) == (f"{REGION}a", "10.0.0.0/24", True, False)
    assert model.route_table(private)[0].id == rt_priv  # type: ignore[union-attr]
    assert model.route_table(orphan)[1] == "main"
    route = next(r for r in model.route_table(private)[0].routes if r.destination == "0.0.0.0/0")  # type: ignore
    assert (route.target_kind, route.target, route.state) == ("nat", nat, "active")
    assert model.attached_igws(vpc) == [igw]
    assert model.nat_gateways[nat].subnet_id == public and model.nat_gateways[nat].public_ips
    gateway = next(e for e in model.endpoints if e.id == s3)
    assert (gateway.type, gateway.service, gateway.route_tables) == ("Gateway", "s3", (rt_priv,))
    assert gateway.policy is not None and json.loads(gateway.policy)["Statement"][0]["Action"] == "s3:GetObject"
    dkr = next(e for e in model.endpoints if e.id == eps["ecr.dkr"])
    assert dkr.interface and dkr.private_dns and dkr.groups == (group,)
    assert dict(dkr.zones) == {f"{REGION}b": private} and dkr.addresses[0][0] == private
    acl = model.acl_for(private)
    assert acl is not None and acl.default and any(e.number == 100 and e.action == "allow" for e in acl.entries)
    sg = model.security_groups[group]
    assert sg.name == "jobs" and sg.egress[0].protocol == "tcp" and sg.egress[0].from_port == 443
    assert [p.value for p in sg.egress[0].peers] == ["0.0.0.0/0"]


def test_parts_not_asked_for_are_empty_and_ipv6_only_subnets_have_no_ipv4(aws: Aws) -> None:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    block = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    only = ec2.create_subnet(VpcId=vpc, Ipv6CidrBlock=block.replace("::/56", "::/64"),
                             Ipv6Native=True)["Subnet"]["SubnetId"]
    model = world(vpc_id=vpc, subnet_ids=[only]).network()
    assert model.subnets[only].ipv6_only and model.subnets[only].cidr is None and model.subnets[only].ipv6_cidrs
    assert model.vpcs == {} and model.route_tables == () and model.network_acls == ()
    assert world(vpc_id=vpc).network(dhcp=True).vpcs[vpc].dhcp_options_id  # read when asked
