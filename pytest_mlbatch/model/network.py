"""The network of one target as Batch's instances and tasks use it: VPCs (DNS, DHCP options), subnets, route tables,
gateways, VPC endpoints (with their policies), network ACLs and security groups, as frozen, typed facts (built by
aws/network.py from the APIs; a template-based inventory would build the same). Path analysis (analysis/netpath.py)
and rule matching (analysis/secgroups.py) take these objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_mlbatch.analysis import netpath
from pytest_mlbatch.analysis.imageref import ImageRef, ImageRefError, parse
from pytest_mlbatch.analysis.netpath import AclEntry, Route
from pytest_mlbatch.analysis.secgroups import Permission
from pytest_mlbatch.model.compute import ComputeEnvironment
from pytest_mlbatch.model.job import Job

AMAZON_DNS = "AmazonProvidedDNS"


@dataclass(frozen=True)
class DhcpOptions:
    """A VPC's DHCP option set: the DNS servers its instances are told to use."""

    id: str
    domain_name_servers: tuple[str, ...]

    @property
    def custom_dns(self) -> tuple[str, ...]:
        """The DNS servers that are not the VPC's resolver (AmazonProvidedDNS, or 169.254.169.253)."""
        return tuple(s for s in self.domain_name_servers if s not in (AMAZON_DNS, "169.254.169.253", "fd00:ec2::253"))


@dataclass(frozen=True)
class Vpc:
    """A VPC: its state and CIDRs; DNS attributes and DHCP options where they were read (None: not read)."""

    id: str
    state: str
    cidrs: tuple[str, ...]
    ipv6_cidrs: tuple[str, ...] = ()
    dhcp_options_id: str | None = None
    dns_support: bool | None = None
    dns_hostnames: bool | None = None
    dhcp: DhcpOptions | None = None

    @property
    def cidr(self) -> str | None:
        return self.cidrs[0] if self.cidrs else None

    @property
    def dns_off(self) -> list[str]:
        """The DNS attributes that are off (read: see World.network(dns=True))."""
        return [name for name, on in (("enableDnsSupport", self.dns_support), ("enableDnsHostnames",
                                                                               self.dns_hostnames)) if on is False]


@dataclass(frozen=True)
class Subnet:
    """A subnet: where it is, its addresses (IPv4 and IPv6; an IPv6-only subnet has no IPv4 CIDR), free addresses."""

    id: str
    vpc_id: str
    state: str
    zone: str
    cidr: str | None
    ipv6_cidrs: tuple[str, ...] = ()
    ipv6_native: bool = False
    free_addresses: int = 0
    map_public_ip: bool = False

    @property
    def ipv6_only(self) -> bool:
        return self.ipv6_native or (not self.cidr and bool(self.ipv6_cidrs))

    @property
    def has_ipv6(self) -> bool:
        return bool(self.ipv6_cidrs)


@dataclass(frozen=True)
class RouteAssociation:
    """A route table's association: with a subnet, or the VPC's main association."""

    subnet_id: str | None
    main: bool
    associated: bool = True


@dataclass(frozen=True)
class RouteTable:
    id: str
    vpc_id: str
    routes: tuple[Route, ...]
    associations: tuple[RouteAssociation, ...]


@dataclass(frozen=True)
class InternetGateway:
    """An internet gateway (or, egress_only, an egress-only internet gateway for IPv6) and the VPCs it is attached
    to."""

    id: str
    attached_vpcs: tuple[str, ...]
    egress_only: bool = False


@dataclass(frozen=True)
class NatGateway:
    id: str
    vpc_id: str
    subnet_id: str
    state: str
    connectivity: str  # public | private
    public_ips: tuple[str, ...]


@dataclass(frozen=True)
class Endpoint:
    """A VPC endpoint: type (Interface, Gateway, ...), the short service name ('ecr.dkr', 's3'), where it sits and
    its policy document (None: the default full-access policy)."""

    id: str
    vpc_id: str
    type: str
    service_name: str
    service: str | None
    state: str
    private_dns: bool
    groups: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    route_tables: tuple[str, ...] = ()
    zones: tuple[tuple[str, str], ...] = ()  # (zone, subnet) of its network interfaces
    addresses: tuple[tuple[str, str], ...] = ()  # (subnet, private IPv4 address) of its network interfaces
    policy: str | None = None

    @property
    def available(self) -> bool:
        return self.state.lower() == "available"

    @property
    def interface(self) -> bool:
        return self.type == "Interface"


@dataclass(frozen=True)
class NetworkAcl:
    id: str
    vpc_id: str
    default: bool
    entries: tuple[AclEntry, ...]
    subnets: tuple[str, ...]


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    vpc_id: str
    ingress: tuple[Permission, ...]
    egress: tuple[Permission, ...]

    @property
    def label(self) -> str:
        return f"{self.id} ({self.name or '?'})"


@dataclass(frozen=True)
class LaunchSettings:
    """What a compute environment's launch template (the version it pins) and placement say about its instances'
    network: whether the primary interface gets a public IP (None: the subnet's MapPublicIpOnLaunch decides), and
    its placement group with the group's strategy (None: not found)."""

    template_named: bool
    template: str | None  # the template's name; None when it names one that was not found
    associate_public_ip: bool | None
    placement_group: str | None = None
    placement_where: str | None = None
    placement_strategy: str | None = None


@dataclass(frozen=True)
class Network:
    """The target's network, as far as it was read (each check asks World.network for the parts it decides over):
    what is not read is empty. `trusted_egress` are the hops the config declares trusted (network.trusted_egress)."""

    region: str
    vpc_ids: tuple[str, ...] = ()  # the VPCs in question (configured, and the subnets')
    subnets: Mapping[str, Subnet] = field(default_factory=dict)
    vpcs: Mapping[str, Vpc] = field(default_factory=dict)
    route_tables: tuple[RouteTable, ...] = ()
    internet_gateways: tuple[InternetGateway, ...] = ()
    nat_gateways: Mapping[str, NatGateway] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    security_groups: Mapping[str, SecurityGroup] = field(default_factory=dict)
    network_acls: tuple[NetworkAcl, ...] = ()
    trusted_egress: frozenset[str] = frozenset()

    # -- joins ------------------------------------------------------------------------------------------
    def route_table(self, subnet_id: str, vpc_id: str | None = None) -> tuple[RouteTable | None, str]:
        """The route table that applies to a subnet: its explicit association, else its VPC's main table."""
        for rt in self.route_tables:
            if any(a.subnet_id == subnet_id and a.associated for a in rt.associations):
                return rt, "explicitly associated"
        sub = self.subnets.get(subnet_id)
        vpc = sub.vpc_id if sub else vpc_id
        for rt in self.route_tables:
            if rt.vpc_id == vpc and any(a.main and a.associated for a in rt.associations):
                return rt, "main"
        return None, "none"

    def attached_igws(self, vpc_id: str, *, egress_only: bool = False) -> list[str]:
        return [g.id for g in self.internet_gateways if vpc_id in g.attached_vpcs and g.egress_only == egress_only]

    def explicitly_associated(self, rt_id: str) -> list[str]:
        return [a.subnet_id for rt in self.route_tables if rt.id == rt_id for a in rt.associations
                if a.subnet_id and a.associated]

    def prefix_list_of(self, endpoint_id: str) -> list[str]:
        """Prefix lists a gateway endpoint puts in route tables (its routes name them)."""
        return sorted({r.prefix_list for rt in self.route_tables for r in rt.routes
                       if r.target == endpoint_id and r.prefix_list})

    def acl_for(self, subnet_id: str, vpc_id: str | None = None) -> NetworkAcl | None:
        """The network ACL associated with a subnet (every subnet has exactly one), else its VPC's default."""
        for acl in self.network_acls:
            if subnet_id in acl.subnets:
                return acl
        sub = self.subnets.get(subnet_id)
        vpc = sub.vpc_id if sub else vpc_id
        return next((a for a in self.network_acls if a.vpc_id == vpc and a.default), None)


def job_needs(job: Job | None, using: Sequence[ComputeEnvironment], region: str) -> netpath.JobNeeds:
    """What instances (or tasks) of these compute environments reach for this job: derived from the job
    definition when there is one (its image's registry, secrets, repository credentials, log driver), else the
    fixed list (ECS, ECR, logs; Fargate: ECR and logs; EKS: EC2, ECR, STS)."""
    fargate = bool(using) and all(ce.fargate for ce in using)
    eks = bool(using) and all(ce.eks for ce in using)
    if job is None:
        return netpath.JobNeeds(netpath.EKS_SERVICES if eks else netpath.FARGATE_SERVICES if fargate
                                else netpath.INTERFACE_SERVICES)
    image: ImageRef | None = None
    error = None
    if job.image:
        try:
            image = parse(job.image)
        except ImageRefError as exc:
            error = str(exc)
    return netpath.job_needs(region, "eks" if eks else "fargate" if fargate else "ec2", image=image,
                             image_error=error, secrets=[(s.store, s.value_from) for s in job.secrets],
                             repository_credentials=job.repository_credentials,
                             log_driver=job.log.driver if job.log else None,
                             log_region=job.log.option("awslogs-region") if job.log else None)
