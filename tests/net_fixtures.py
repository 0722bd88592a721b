"""Helpers for the NET/SG tests: build VPC scenarios on the moto server, and run checks through the real engine."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import REGION, Aws

from pytest_mlbatch import config as cfg
from pytest_mlbatch.analysis.netpath import INTERFACE_SERVICES
from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.engine import runner as engine
from pytest_mlbatch.engine.runner import ItemResult
from pytest_mlbatch.engine.runtime import Runtime
from pytest_mlbatch.model.resources import resources_for

_SESSION: list[Any] = []


def _session() -> Any:
    """One boto3 session for every run of these tests: a new one reloads botocore's models (about 0.5 s)."""
    if not _SESSION:
        import boto3

        _SESSION.append(boto3.Session(region_name=REGION))
    return _SESSION[0]


MUTATING = ("Create", "Authorize", "Attach", "Allocate", "Associate", "Import", "Put", "Add", "Tag")


@dataclass
class Run:
    """The results of one in-process run of the NET/SG checks, and the AWS calls it made."""

    results: dict[str, ItemResult]
    runtime: Runtime
    calls: Counter[str] = field(default_factory=Counter)

    def __getitem__(self, key: str) -> ItemResult:
        return self.results[key]

    def outcome(self, key: str) -> str:
        return self.results[key].outcome

    def message(self, key: str) -> str:
        return self.results[key].message

    def mutating_calls(self) -> list[str]:
        return [c for c in self.calls if c.split(":", 1)[1].startswith(MUTATING)]


def run_checks(config: dict[str, Any], root: Path, *, prefixes: tuple[str, ...] = ("NET", "SG"),
               fix: bool = False, dry_run: bool = False) -> Run:
    """Run the selected checks on every resource of the config through engine.run (real moto, real guard)."""
    settings = cfg.build("(test)", {"version": 1, "region": REGION, **config})
    runtime = Runtime(settings, root, fix=fix, fix_dry_run=dry_run)
    results: dict[str, ItemResult] = {}
    calls: Counter[str] = Counter()
    for target in runtime.targets:
        target._inventory = Inventory(_session(), target.region, label=target.label)  # same calls, shared models
        for check in runtime.checks():
            if not check.id.startswith(prefixes):
                continue
            found = resources_for(check.resource_kind, target.scope(), target.label)
            if isinstance(found, str):
                continue
            for res in found:
                results[f"{check.id}[{res.id}]"] = engine.run(runtime, check, target, res)
        calls.update(target.inventory.calls)
    return Run(results, runtime, calls)


class Net:
    """Arrange VPCs, subnets, gateways, endpoints and groups on the moto server."""

    def __init__(self, aws: Aws) -> None:
        self.ec2 = aws.client("ec2")
        self.aws = aws

    def vpc(self, cidr: str = "10.0.0.0/16", *, dns: bool = True, hostnames: bool = False) -> str:
        """A VPC (moto's defaults: DNS support on, DNS hostnames off)."""
        vpc = str(self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])
        if not dns:
            self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
        if hostnames:
            self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        return vpc

    def subnet(self, vpc: str, cidr: str, az: str = "a", *, public_ip: bool = False) -> str:
        sid = str(self.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{az}")
                  ["Subnet"]["SubnetId"])
        if public_ip:
            self.ec2.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch={"Value": True})
        return sid

    def table(self, vpc: str, *subnets: str) -> str:
        rt = str(self.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"])
        for s in subnets:
            self.ec2.associate_route_table(RouteTableId=rt, SubnetId=s)
        return rt

    def main_table(self, vpc: str) -> str:
        tables = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                         {"Name": "association.main", "Values": ["true"]}])
        return str(tables["RouteTables"][0]["RouteTableId"])

    def igw(self, vpc: str | None) -> str:
        igw = str(self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"])
        if vpc:
            self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        return igw

    def default_route(self, rt: str, **target: str) -> None:
        self.ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", **target)

    def nat(self, subnet: str) -> str:
        alloc = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        return str(self.ec2.create_nat_gateway(SubnetId=subnet, AllocationId=alloc)["NatGateway"]["NatGatewayId"])

    def nat_path(self, vpc: str, public_cidr: str, private_cidr: str) -> tuple[str, str]:
        """A public subnet (internet gateway route) holding a NAT gateway, and a private subnet whose own route table
        sends 0.0.0.0/0 to it: (private subnet, its route table)."""
        public = self.subnet(vpc, public_cidr)
        private = self.subnet(vpc, private_cidr)
        self.default_route(self.table(vpc, public), GatewayId=self.igw(vpc))
        rt = self.table(vpc, private)
        self.default_route(rt, NatGatewayId=self.nat(public))
        return private, rt

    def group(self, vpc: str, name: str, *, ingress: list[dict[str, Any]] | None = None,
              egress: list[dict[str, Any]] | None = None) -> str:
        """A group; egress=None keeps the default allow-all, a list replaces it."""
        gid = str(self.ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"])
        if ingress:
            self.ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ingress)
        if egress is not None:
            self.ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
            if egress:
                self.ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=egress)
        return gid

    def endpoints(self, vpc: str, subnets: list[str], groups: list[str], *, services: tuple[str, ...] =
                  INTERFACE_SERVICES, private_dns: bool = True, s3_tables: list[str] | None = None) -> dict[str, str]:
        out: dict[str, str] = {}
        for svc in services:
            ep = self.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.{svc}",
                                              VpcEndpointType="Interface", SubnetIds=subnets,
                                              SecurityGroupIds=groups, PrivateDnsEnabled=private_dns)
            out[svc] = ep["VpcEndpoint"]["VpcEndpointId"]
        if s3_tables:
            ep = self.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3",
                                              VpcEndpointType="Gateway", RouteTableIds=s3_tables)
            out["s3"] = ep["VpcEndpoint"]["VpcEndpointId"]
        return out

    def endpoint_group(self, vpc: str, cidr: str, name: str = "endpoints") -> str:
        return self.group(vpc, name, ingress=[https(cidr)])


def https(cidr: str | None = None, *, group: str | None = None, prefix_list: str | None = None) -> dict[str, Any]:
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
    if cidr and ipaddress.ip_network(cidr).version == 6:
        perm["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    elif cidr:
        perm["IpRanges"] = [{"CidrIp": cidr}]
    if group:
        perm["UserIdGroupPairs"] = [{"GroupId": group}]
    if prefix_list:
        perm["PrefixListIds"] = [{"PrefixListId": prefix_list}]
    return perm
