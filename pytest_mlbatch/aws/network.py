"""The network model (model/network.py) built from the EC2 APIs: described VPCs, subnets, route tables, gateways,
endpoints, network ACLs and security groups become typed facts here, read through aws/reads.py (cached)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_mlbatch.analysis.netpath import AclEntry, Route, service_of
from pytest_mlbatch.analysis.secgroups import Peer, Permission, protocol
from pytest_mlbatch.aws import batchinfo, reads
from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.model.compute import ComputeEnvironment
from pytest_mlbatch.model.network import (
    DhcpOptions,
    Endpoint,
    InternetGateway,
    LaunchSettings,
    NatGateway,
    Network,
    NetworkAcl,
    RouteAssociation,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
)
from pytest_mlbatch.model.scope import Scope

Doc = Mapping[str, Any]

# Route targets (the API's keys) and the kind of hop each is (analysis/netpath.py's Route.target_kind).
ROUTE_TARGETS = (
    ("GatewayId", "gateway"),
    ("NatGatewayId", "nat"),
    ("EgressOnlyInternetGatewayId", "egress-only"),
    ("TransitGatewayId", "transit gateway"),
    ("VpcPeeringConnectionId", "VPC peering connection"),
    ("NetworkInterfaceId", "network interface"),
    ("InstanceId", "instance"),
    ("LocalGatewayId", "local gateway"),
    ("CarrierGatewayId", "carrier gateway"),
    ("CoreNetworkArn", "core network"),
    ("VpcEndpointId", "endpoint"),
)
GONE = {"disassociating", "disassociated", "failing", "failed"}


def route(doc: Doc) -> Route:
    kind, target = "unknown", ""
    for key, label in ROUTE_TARGETS:
        if doc.get(key):
            kind, target = label, str(doc[key])
            break
    return Route(destination=doc.get("DestinationCidrBlock"), target_kind=kind, target=target,
                 state=str(doc.get("State") or "active"), destination_v6=doc.get("DestinationIpv6CidrBlock"),
                 prefix_list=doc.get("DestinationPrefixListId"))


def _associated(assoc: Doc) -> bool:
    return str((assoc.get("AssociationState") or {}).get("State", "associated")) == "associated"


def route_table(doc: Doc) -> RouteTable:
    return RouteTable(
        id=str(doc["RouteTableId"]), vpc_id=str(doc.get("VpcId", "")),
        routes=tuple(route(r) for r in doc.get("Routes", [])),
        associations=tuple(RouteAssociation(a.get("SubnetId"), bool(a.get("Main")), _associated(a))
                           for a in doc.get("Associations", [])))


def subnet(doc: Doc) -> Subnet:
    v6 = tuple(str(a["Ipv6CidrBlock"]) for a in doc.get("Ipv6CidrBlockAssociationSet", [])
               if a.get("Ipv6CidrBlock")
               and str((a.get("Ipv6CidrBlockState") or {}).get("State", "associated")) not in GONE)
    return Subnet(id=str(doc["SubnetId"]), vpc_id=str(doc.get("VpcId", "")), state=str(doc.get("State", "?")),
                  zone=str(doc.get("AvailabilityZone", "")), cidr=doc.get("CidrBlock") or None, ipv6_cidrs=v6,
                  ipv6_native=bool(doc.get("Ipv6Native")), free_addresses=int(doc.get("AvailableIpAddressCount", 0)),
                  map_public_ip=bool(doc.get("MapPublicIpOnLaunch")))


def vpc(doc: Doc, dns: Mapping[str, bool] | None = None, dhcp: DhcpOptions | None = None) -> Vpc:
    cidrs = [str(a["CidrBlock"]) for a in doc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlock") and str((a.get("CidrBlockState") or {}).get("State", "associated")) not in GONE]
    if doc.get("CidrBlock") and doc["CidrBlock"] not in cidrs:
        cidrs.insert(0, str(doc["CidrBlock"]))
    v6 = [str(a["Ipv6CidrBlock"]) for a in doc.get("Ipv6CidrBlockAssociationSet", []) if a.get("Ipv6CidrBlock")]
    return Vpc(id=str(doc["VpcId"]), state=str(doc.get("State", "?")), cidrs=tuple(cidrs), ipv6_cidrs=tuple(v6),
               dhcp_options_id=doc.get("DhcpOptionsId"),
               dns_support=dns.get("enableDnsSupport") if dns is not None else None,
               dns_hostnames=dns.get("enableDnsHostnames") if dns is not None else None, dhcp=dhcp)


def dhcp_options(doc: Doc) -> DhcpOptions:
    servers: list[str] = []
    for conf in doc.get("DhcpConfigurations", []):
        if conf.get("Key") == "domain-name-servers":
            servers += [str(v.get("Value")) for v in conf.get("Values", []) if v.get("Value")]
    return DhcpOptions(str(doc["DhcpOptionsId"]), tuple(servers))


def permission(doc: Doc) -> Permission:
    peers = [Peer("cidr", r["CidrIp"]) for r in doc.get("IpRanges", []) if r.get("CidrIp")]
    peers += [Peer("cidr6", r["CidrIpv6"]) for r in doc.get("Ipv6Ranges", []) if r.get("CidrIpv6")]
    peers += [Peer("group", g["GroupId"]) for g in doc.get("UserIdGroupPairs", []) if g.get("GroupId")]
    peers += [Peer("prefix", p["PrefixListId"]) for p in doc.get("PrefixListIds", []) if p.get("PrefixListId")]
    start, end = doc.get("FromPort"), doc.get("ToPort")
    return Permission(str(doc.get("IpProtocol", "-1")), int(start) if start is not None else None,
                      int(end) if end is not None else None, tuple(peers))


def security_group(doc: Doc) -> SecurityGroup:
    return SecurityGroup(id=str(doc["GroupId"]), name=str(doc.get("GroupName", "")), vpc_id=str(doc.get("VpcId", "")),
                         ingress=tuple(permission(p) for p in doc.get("IpPermissions", [])),
                         egress=tuple(permission(p) for p in doc.get("IpPermissionsEgress", [])))


def acl_entry(doc: Doc) -> AclEntry:
    pr = doc.get("PortRange")
    proto = protocol(doc.get("Protocol", "-1"))
    ports = (int(pr.get("From", 0)), int(pr.get("To", 65535))) if pr and proto in ("tcp", "udp") else None
    return AclEntry(number=int(doc["RuleNumber"]), egress=bool(doc.get("Egress")), action=str(doc.get("RuleAction")),
                    protocol=proto, ports=ports, cidr=doc.get("CidrBlock"), ipv6_cidr=doc.get("Ipv6CidrBlock"))


def network_acl(doc: Doc) -> NetworkAcl:
    return NetworkAcl(id=str(doc["NetworkAclId"]), vpc_id=str(doc.get("VpcId", "")), default=bool(doc.get("IsDefault")),
                      entries=tuple(acl_entry(e) for e in doc.get("Entries", [])),
                      subnets=tuple(str(a["SubnetId"]) for a in doc.get("Associations", []) if a.get("SubnetId")))


def _policy(doc: Doc) -> str | None:
    policy = doc.get("PolicyDocument")
    if policy is None or isinstance(policy, str):
        return policy
    return json.dumps(policy)


def endpoint(doc: Doc, region: str, zones: Mapping[str, str],
             addresses: list[tuple[str, str]] | None = None) -> Endpoint:
    name = str(doc.get("ServiceName", ""))
    return Endpoint(
        id=str(doc["VpcEndpointId"]), vpc_id=str(doc.get("VpcId", "")), type=str(doc.get("VpcEndpointType", "")),
        service_name=name, service=service_of(name, region), state=str(doc.get("State", "?")),
        private_dns=bool(doc.get("PrivateDnsEnabled")), groups=tuple(g["GroupId"] for g in doc.get("Groups", [])),
        subnets=tuple(doc.get("SubnetIds", [])), route_tables=tuple(doc.get("RouteTableIds", [])),
        zones=tuple(sorted(zones.items())), addresses=tuple(sorted(addresses or [])), policy=_policy(doc))


def gateway(doc: Doc, *, egress_only: bool = False) -> InternetGateway:
    key = "EgressOnlyInternetGatewayId" if egress_only else "InternetGatewayId"
    return InternetGateway(str(doc[key]), tuple(str(a["VpcId"]) for a in doc.get("Attachments", [])
                                                if a.get("State") in ("available", "attached") and a.get("VpcId")),
                           egress_only)


def nat_gateway(doc: Doc) -> NatGateway:
    return NatGateway(id=str(doc["NatGatewayId"]), vpc_id=str(doc.get("VpcId", "")),
                      subnet_id=str(doc.get("SubnetId", "")), state=str(doc.get("State", "?")),
                      connectivity=str(doc.get("ConnectivityType") or "public"),
                      public_ips=tuple(str(a["PublicIp"]) for a in doc.get("NatGatewayAddresses", [])
                                       if a.get("PublicIp")))


def from_docs(data: reads.NetData, dns: Mapping[str, Mapping[str, bool]] | None = None,
              dhcp: Mapping[str, Doc] | None = None) -> Network:
    """The typed network of described data (dns: each VPC's DNS attributes; dhcp: option sets by id)."""
    dhcp = dhcp or {}
    vpcs = {}
    for vid, doc in data.vpcs.items():
        options = dhcp.get(str(doc.get("DhcpOptionsId")))
        vpcs[vid] = vpc(doc, (dns or {}).get(vid), dhcp_options(options) if options else None)
    return Network(
        region=data.region, vpc_ids=tuple(data.vpc_ids),
        subnets={k: subnet(v) for k, v in data.subnets.items()}, vpcs=vpcs,
        route_tables=tuple(route_table(r) for r in data.route_tables),
        internet_gateways=(*(gateway(g) for g in data.internet_gateways),
                           *(gateway(g, egress_only=True) for g in data.egress_only_gateways)),
        nat_gateways={k: nat_gateway(v) for k, v in data.nat_gateways.items()},
        endpoints=tuple(endpoint(e, data.region, data.endpoint_zones.get(str(e.get("VpcEndpointId")), {}),
                                 data.endpoint_addresses.get(str(e.get("VpcEndpointId"))))
                        for e in data.endpoints),
        security_groups={k: security_group(v) for k, v in data.security_groups.items()},
        network_acls=tuple(network_acl(a) for a in data.network_acls))


def load(inv: Inventory, scope: Scope, region: str | None, *, vpcs: bool = False, groups: bool = False,
         paths: bool = False, acls: bool = False, dns: bool = False, dhcp: bool = False) -> Network:
    """The target's network with the parts asked for (reads.network's flags; dns: the VPCs' DNS attributes;
    dhcp: their DHCP option sets). Each check asks only for what it decides over, so a permission it does not
    need cannot turn it into an error."""
    data = reads.network(inv, scope, region, vpcs=vpcs or dns or dhcp, groups=groups, paths=paths, acls=acls)
    attributes = {v: reads.vpc_dns(inv, v) for v in data.vpcs} if dns else None
    options = {}
    if dhcp:
        ids = [str(d["DhcpOptionsId"]) for d in data.vpcs.values() if d.get("DhcpOptionsId") not in (None, "default")]
        options = reads.dhcp_options(inv, ids) if ids else {}
    return from_docs(data, attributes, options)


def launch_settings(inv: Inventory, ce: ComputeEnvironment, doc: Doc) -> LaunchSettings:
    """What a compute environment's launch template (the version it pins) and placement say about its instances'
    network (doc: its DescribeComputeEnvironments entry)."""
    cr: Doc = doc.get("computeResources") or {}
    lt: dict[str, Any] = dict(cr.get("launchTemplate") or {})
    data: Doc = {}
    template = None
    if ce.launch_template is not None:
        versions = reads.launch_template_versions(inv, lt)
        if versions:
            data = versions[0].get("LaunchTemplateData", {})
            template = str(versions[0].get("LaunchTemplateName", ""))
    public: bool | None = None
    for nic in data.get("NetworkInterfaces", []):
        if int(nic.get("DeviceIndex", 0)) == 0 and "AssociatePublicIpAddress" in nic:
            public = bool(nic["AssociatePublicIpAddress"])
    group, where = cr.get("placementGroup"), "its placementGroup"
    if not group:
        group, where = (data.get("Placement") or {}).get("GroupName"), "its launch template's Placement"
    strategy = None
    if group:
        found = reads.placement_groups(inv, [str(group)])
        strategy = next((str(g.get("Strategy")) for g in found if g.get("Strategy")), None)
    return LaunchSettings(template_named=ce.launch_template is not None, template=template,
                          associate_public_ip=public, placement_group=str(group) if group else None,
                          placement_where=where if group else None, placement_strategy=strategy)


def job_assign_public_ip(world: batchinfo.Where) -> str | None:
    """The job definition's Fargate networkConfiguration.assignPublicIp (DISABLED when unset), None without one."""
    jd = batchinfo.job_definition(world)
    if jd is None:
        return None
    return str((jd.get("containerProperties") or {}).get("networkConfiguration", {}).get("assignPublicIp",
                                                                                           "DISABLED"))
