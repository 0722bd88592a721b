"""The AWS reads behind the facts checks decide over, one function per fact (network, launch templates, key pairs,
ECR): the checks and the first wave of reads (aws.gather) call the same functions, so they share cached answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pytest_mlbatch.analysis.imageref import ImageRef
from pytest_mlbatch.aws.discovery import describe_subnets
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.scope import Scope


# -- network -----------------------------------------------------------------------------------------------
def _filter(name: str, values: list[str]) -> list[dict[str, Any]]:
    return [{"Name": name, "Values": values}]


Read = Callable[[], list[Any]]
Doc = dict[str, Any]


@dataclass
class NetData:
    """The network's API answers for one target, each listing fetched in one call (aws/network.py types them)."""

    region: str
    subnets: dict[str, Doc] = field(default_factory=dict)
    vpc_ids: list[str] = field(default_factory=list)  # the VPCs in question (configured, and the subnets')
    vpcs: dict[str, Doc] = field(default_factory=dict)
    route_tables: list[Doc] = field(default_factory=list)
    internet_gateways: list[Doc] = field(default_factory=list)
    egress_only_gateways: list[Doc] = field(default_factory=list)
    nat_gateways: dict[str, Doc] = field(default_factory=dict)
    endpoints: list[Doc] = field(default_factory=list)
    security_groups: dict[str, Doc] = field(default_factory=dict)
    network_acls: list[Doc] = field(default_factory=list)
    # availability zone of each interface endpoint's network interfaces: {endpoint id: {zone: subnet id}}
    endpoint_zones: dict[str, dict[str, str]] = field(default_factory=dict)
    # (subnet, private IPv4 address) of each interface endpoint's network interfaces
    endpoint_addresses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
PATH_LISTINGS = ("route_tables", "igws", "nats", "endpoints")


def _vpc_listings(inv: Inventory, vpc_ids: list[str]) -> dict[str, Read]:
    """The VPC-wide listings of the network, by name: one call each for all the VPCs in question."""
    by_vpc = _filter("vpc-id", vpc_ids)
    return {
        "vpcs": partial(inv.paginate, "ec2", "describe_vpcs", "Vpcs", Filters=by_vpc),
        "groups": partial(inv.paginate, "ec2", "describe_security_groups", "SecurityGroups", Filters=by_vpc),
        "acls": partial(inv.paginate, "ec2", "describe_network_acls", "NetworkAcls", Filters=by_vpc),
        "route_tables": partial(inv.paginate, "ec2", "describe_route_tables", "RouteTables", Filters=by_vpc),
        "igws": partial(inv.paginate, "ec2", "describe_internet_gateways", "InternetGateways",
                        Filters=_filter("attachment.vpc-id", vpc_ids)),
        "nats": partial(inv.paginate, "ec2", "describe_nat_gateways", "NatGateways", Filter=by_vpc),
        "endpoints": partial(inv.paginate, "ec2", "describe_vpc_endpoints", "VpcEndpoints", Filters=by_vpc),
    }


def network(inv: Inventory, scope: Scope, region: str | None, *, vpcs: bool = False, groups: bool = False,
            paths: bool = False, acls: bool = False) -> NetData:
    """The subnets of the target, plus (as asked) its VPCs, security groups, what decides egress paths (route
    tables, gateways, endpoints and their zones) and network ACLs: one call per kind, cached by the inventory.

    Each check asks only for what it reads, so a permission it does not need cannot turn it into an error."""
    data = NetData(region=region or "")

    def wanted(listings: dict[str, Read]) -> list[Read]:
        names = [*(("vpcs",) if vpcs or paths else ()), *(("groups",) if groups or paths else ()),
                 *(("acls",) if acls else ()), *(PATH_LISTINGS if paths else ())]
        return [listings[n] for n in names]

    if scope.subnet_ids:
        if scope.vpc_id:  # the subnets are almost always in the configured VPC: its listings beside the subnets
            inv.read_ahead(*wanted(_vpc_listings(inv, [scope.vpc_id])))
        # the same query discovery makes for the subnets' VPC, so it is answered from the cache
        subnets = describe_subnets(inv, list(scope.subnet_ids))
        data.subnets = {s["SubnetId"]: s for s in subnets}
    data.vpc_ids = sorted({s["VpcId"] for s in data.subnets.values()} | ({scope.vpc_id} if scope.vpc_id else set()))
    if not data.vpc_ids:
        if (groups or paths) and scope.security_group_ids:
            found = inv.paginate("ec2", "describe_security_groups", "SecurityGroups",
                                 Filters=_filter("group-id", sorted(set(scope.security_group_ids))))
            data.security_groups = {g["GroupId"]: g for g in found}
        return data
    listings = _vpc_listings(inv, data.vpc_ids)
    read_vpcs, read_groups, read_acls = listings["vpcs"], listings["groups"], listings["acls"]
    read_route_tables, read_igws, read_nats, read_endpoints = (listings[n] for n in PATH_LISTINGS)
    # every listing asked for is independent of the others: in flight together, then read in order from the cache
    inv.read_ahead(*wanted(listings))
    if vpcs or paths:
        data.vpcs = {v["VpcId"]: v for v in read_vpcs()}
    if groups or paths:
        data.security_groups = {g["GroupId"]: g for g in read_groups()}
    if acls:
        data.network_acls = read_acls()
    if not paths:
        return data
    data.route_tables = read_route_tables()
    data.internet_gateways = read_igws()
    data.nat_gateways = {n["NatGatewayId"]: n for n in read_nats()}
    data.endpoints = read_endpoints()
    # egress-only internet gateways (IPv6) only when a route names one: no call otherwise
    eigws = sorted({str(r["EgressOnlyInternetGatewayId"]) for rt in data.route_tables for r in rt.get("Routes", [])
                    if r.get("EgressOnlyInternetGatewayId")})
    if eigws:
        data.egress_only_gateways = inv.paginate("ec2", "describe_egress_only_internet_gateways",
                                                 "EgressOnlyInternetGateways", EgressOnlyInternetGatewayIds=eigws)
    # which zones the interface endpoints cover: their network interfaces, in one call
    owner = {eni: ep["VpcEndpointId"] for ep in data.endpoints if ep.get("VpcEndpointType") == "Interface"
             for eni in ep.get("NetworkInterfaceIds", [])}
    if owner:
        enis = inv.paginate("ec2", "describe_network_interfaces", "NetworkInterfaces",
                            Filters=_filter("network-interface-id", sorted(owner)))
        for eni in enis:
            zones = data.endpoint_zones.setdefault(owner[eni["NetworkInterfaceId"]], {})
            zones[str(eni.get("AvailabilityZone"))] = str(eni.get("SubnetId"))
            if eni.get("PrivateIpAddress"):
                data.endpoint_addresses.setdefault(owner[eni["NetworkInterfaceId"]], []).append(
                    (str(eni.get("SubnetId")), str(eni["PrivateIpAddress"])))
    return data


def dns_off(inv: Inventory, vpc_id: str) -> list[str]:
    """The VPC's DNS attributes that are off (one DescribeVpcAttribute per attribute and VPC, cached)."""
    return [attr for attr, on in vpc_dns(inv, vpc_id).items() if not on]


def vpc_dns(inv: Inventory, vpc_id: str) -> dict[str, bool]:
    """The VPC's DNS attributes, enableDnsSupport and enableDnsHostnames (one DescribeVpcAttribute each, cached)."""
    out: dict[str, bool] = {}
    attributes = (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames"))
    inv.read_ahead(*(partial(inv.call, "ec2", "describe_vpc_attribute", VpcId=vpc_id,
                                       Attribute=attr) for attr, _ in attributes))
    for attr, key in attributes:
        answer = inv.call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute=attr)
        if key not in answer:
            raise NotEvaluable(f"DescribeVpcAttribute({attr}) for {vpc_id} gave no answer")
        out[attr] = bool(answer[key].get("Value"))
    return out


def dhcp_options(inv: Inventory, ids: list[str]) -> dict[str, Doc]:
    """DHCP option sets by id, in one DescribeDhcpOptions call."""
    found = inv.paginate("ec2", "describe_dhcp_options", "DhcpOptions",
                         Filters=_filter("dhcp-options-id", sorted(set(ids))))
    return {d["DhcpOptionsId"]: d for d in found}


def vpc_subnets(inv: Inventory, vpc_id: str) -> list[dict[str, Any]]:
    """Every subnet of a VPC (NET003's fix looks for a public subnet to put a NAT gateway in)."""
    found: list[dict[str, Any]] = inv.paginate("ec2", "describe_subnets", "Subnets",
                                               Filters=_filter("vpc-id", [vpc_id]))
    return found


# -- launch templates --------------------------------------------------------------------------------------
def launch_template_versions(inv: Inventory, lt: dict[str, Any]) -> list[dict[str, Any]]:
    """The version a compute environment's launchTemplate pins ($Default when it names none)."""
    params: dict[str, Any] = {"Versions": [str(lt.get("version") or "$Default")]}
    if lt.get("launchTemplateId"):
        params["LaunchTemplateId"] = lt["launchTemplateId"]
    else:
        params["LaunchTemplateName"] = lt["launchTemplateName"]
    found: list[dict[str, Any]] = inv.paginate("ec2", "describe_launch_template_versions", "LaunchTemplateVersions",
                                               **params)
    return found


def placement_groups(inv: Inventory, names: list[str]) -> list[dict[str, Any]]:
    """Placement groups by name (a compute environment's, or its launch template's), one call."""
    found: list[dict[str, Any]] = inv.paginate("ec2", "describe_placement_groups", "PlacementGroups",
                                               Filters=_filter("group-name", sorted(set(names))))
    return found


# -- key pairs ---------------------------------------------------------------------------------------------
def _all_key_pairs(inv: Inventory) -> list[dict[str, Any]]:
    """Every key pair of the region, in one DescribeKeyPairs listing shared by the lookups below (a region holds few
    key pairs; the one listing also suggests a near name for a missing one without a second read)."""
    found: list[dict[str, Any]] = inv.paginate("ec2", "describe_key_pairs", "KeyPairs")
    return found


def key_pairs(inv: Inventory, names: list[str]) -> dict[str, dict[str, Any]]:
    """Key pairs by key name (missing names are just absent)."""
    wanted = set(names)
    return {str(k["KeyName"]): k for k in _all_key_pairs(inv) if k.get("KeyName") in wanted}


def all_key_pair_names(inv: Inventory) -> list[str]:
    """Every key pair name in the region (the same listing)."""
    return sorted(str(k.get("KeyName", "")) for k in _all_key_pairs(inv))


def all_role_names(inv: Inventory) -> list[str]:
    """Every IAM role name of the account (ListRoles; read only to suggest a near name for a missing role)."""
    return sorted(str(r.get("RoleName", "")) for r in inv.paginate("iam", "list_roles", "Roles"))


def all_instance_profile_names(inv: Inventory) -> list[str]:
    """Every instance profile name of the account (read only to suggest a near name for a missing profile)."""
    return sorted(str(r.get("InstanceProfileName", ""))
                  for r in inv.paginate("iam", "list_instance_profiles", "InstanceProfiles"))


# -- ECR ---------------------------------------------------------------------------------------------------
def ecr_repositories(inv: Inventory, ref: ImageRef) -> dict[str, dict[str, Any]]:
    """Every repository of the image's registry (account and region from the URI), one listing per registry."""
    repos = inv.paginate("ecr", "describe_repositories", "repositories", region=ref.region, registryId=ref.account)
    return {r["repositoryName"]: r for r in repos}


def ecr_images(inv: Inventory, ref: ImageRef) -> list[dict[str, Any]] | None:
    """Every image of the repository in one listing (None if the repository does not exist)."""

    def images() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = inv.paginate("ecr", "describe_images", "imageDetails", region=ref.region,
                                                   registryId=ref.account, repositoryName=ref.repository)
        return found

    inv.read_ahead(images)  # beside the repositories: the repository named almost always exists
    if ref.repository not in ecr_repositories(inv, ref):
        return None
    return images()


# -- S3 ----------------------------------------------------------------------------------------------------
def bucket_region(inv: Inventory, bucket: str) -> str | None:
    """The region an S3 bucket lives in (GetBucketLocation: an empty LocationConstraint is us-east-1, the legacy
    'EU' is eu-west-1); None when the bucket does not exist. NotEvaluable when it cannot be read (another account's
    bucket answers AccessDenied unless its policy grants s3:GetBucketLocation)."""
    try:
        found = inv.call("s3", "get_bucket_location", Bucket=bucket)
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            return None
        raise NotEvaluable(f"cannot read the region of S3 bucket {bucket} (s3:GetBucketLocation: {exc.code})") \
            from None
    where = found.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if where == "EU" else str(where)
