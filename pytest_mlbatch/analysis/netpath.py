"""NET003/NET005 path analysis as pure functions over described EC2 data: routes, NAT, endpoints, network ACLs."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pytest_mlbatch.analysis import policy, secgroups
from pytest_mlbatch.analysis.imageref import ImageRef

DEFAULT_V4 = "0.0.0.0/0"
DEFAULT_V6 = "::/0"
# Interface endpoints an instance (or Fargate task) needs without internet access, and the S3 gateway for layers.
INTERFACE_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry", "ecr.api", "ecr.dkr", "logs")
# Fargate tasks need no ECS endpoints (AWS runs their agent), only ECR, logs and the S3 gateway.
FARGATE_SERVICES = ("ecr.api", "ecr.dkr", "logs")
# Batch on EKS: nodes of a private cluster need no ECS endpoints, but EC2, ECR and STS (EKS user guide, "Private
# cluster requirements").
EKS_SERVICES = ("ec2", "ecr.api", "ecr.dkr", "sts")
GATEWAY_SERVICES = ("s3",)
# Route targets whose path beyond this VPC cannot be verified from its own description.
OPAQUE_KINDS = ("transit gateway", "VPC peering connection", "network interface", "instance", "local gateway",
                "carrier gateway", "core network")
NAT_GONE = {"deleted", "deleting", "failed"}
# The ports replies to the instances' and tasks' HTTPS calls return to: Linux's ip_local_port_range (Batch runs
# Linux hosts and tasks). A network ACL rule outside it (a Deny of inbound 3389, say) does not cut them.
EPHEMERAL = (32768, 60999)


# -- the plain values path analysis takes (model/network.py builds the resources around them) --------------

@dataclass(frozen=True)
class Route:
    """One route: its destination (IPv4 CIDR, IPv6 CIDR or prefix list), its target and the target's kind
    (gateway: an internet gateway, 'local' or a gateway endpoint; nat; egress-only; or one of OPAQUE_KINDS), and
    its state (active | blackhole)."""

    destination: str | None
    target_kind: str
    target: str
    state: str = "active"
    destination_v6: str | None = None
    prefix_list: str | None = None


@dataclass(frozen=True)
class AclEntry:
    """One network ACL entry: rule number, direction, allow/deny, protocol name ('-1' all), TCP/UDP port range
    (None: all ports) and the IPv4 or IPv6 CIDR it matches."""

    number: int
    egress: bool
    action: str
    protocol: str
    ports: tuple[int, int] | None = None
    cidr: str | None = None
    ipv6_cidr: str | None = None


# What path analysis reads of the model's resources (model/network.py's classes have these attributes).
class SubnetLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def vpc_id(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def cidr(self) -> str | None: ...
    @property
    def ipv6_cidrs(self) -> tuple[str, ...]: ...
    @property
    def ipv6_only(self) -> bool: ...


class RouteTableLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def routes(self) -> tuple[Route, ...]: ...


class NatLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def vpc_id(self) -> str: ...
    @property
    def subnet_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def connectivity(self) -> str: ...
    @property
    def public_ips(self) -> tuple[str, ...]: ...


class GatewayLike(Protocol):
    @property
    def id(self) -> str: ...


class EndpointLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def vpc_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def service(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def available(self) -> bool: ...
    @property
    def private_dns(self) -> bool: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def subnets(self) -> tuple[str, ...]: ...
    @property
    def route_tables(self) -> tuple[str, ...]: ...
    @property
    def zones(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def addresses(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def policy(self) -> str | None: ...


class GroupLike(Protocol):
    @property
    def ingress(self) -> tuple[secgroups.Permission, ...]: ...
    @property
    def egress(self) -> tuple[secgroups.Permission, ...]: ...


class AclLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def default(self) -> bool: ...
    @property
    def entries(self) -> tuple[AclEntry, ...]: ...


class NetworkLike(Protocol):
    """The network path analysis decides over (model/network.py's Network)."""

    @property
    def region(self) -> str: ...
    @property
    def subnets(self) -> Mapping[str, SubnetLike]: ...
    @property
    def internet_gateways(self) -> Sequence[GatewayLike]: ...
    @property
    def nat_gateways(self) -> Mapping[str, NatLike]: ...
    @property
    def endpoints(self) -> Sequence[EndpointLike]: ...
    @property
    def security_groups(self) -> Mapping[str, GroupLike]: ...
    @property
    def trusted_egress(self) -> frozenset[str]: ...
    def route_table(self, subnet_id: str, vpc_id: str | None = None) -> tuple[RouteTableLike | None, str]: ...
    def attached_igws(self, vpc_id: str, *, egress_only: bool = False) -> list[str]: ...
    def prefix_list_of(self, endpoint_id: str) -> list[str]: ...
    def acl_for(self, subnet_id: str, vpc_id: str | None = None) -> AclLike | None: ...


def default_route(rt: RouteTableLike | None, cidr: str = DEFAULT_V4) -> Route | None:
    """The route for exactly `cidr` (0.0.0.0/0), if the table has one."""
    if rt is None:
        return None
    v6 = ":" in cidr
    return next((r for r in rt.routes if (r.destination_v6 if v6 else r.destination) == cidr), None)


# -- longest-prefix match over the public address space ------------------------------------------------------
# Addresses that are not on the internet (RFC 6890 special-purpose blocks): a route for them says nothing about
# the way to AWS's public service endpoints, so it is not named.
NON_PUBLIC_V4 = tuple(ipaddress.IPv4Network(c) for c in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "240.0.0.0/4"))
PUBLIC_V6 = (ipaddress.IPv6Network("2000::/3"),)
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def public_space(world: str = DEFAULT_V4) -> list[Net]:
    """The internet's addresses of a family (0.0.0.0/0 or ::/0); any other CIDR stands for itself."""
    net = ipaddress.ip_network(world, strict=False)
    if str(net) == DEFAULT_V6:
        return list(PUBLIC_V6)
    if str(net) != DEFAULT_V4:
        return [net]
    return subtract([net], NON_PUBLIC_V4)


def subtract(nets: Iterable[Net], cuts: Iterable[Net]) -> list[Net]:
    """Address ranges minus others (same family), collapsed."""
    parts: list[Net] = list(nets)
    for cut in cuts:
        out: list[Net] = []
        for n in parts:
            if n.version != cut.version or not n.overlaps(cut):
                out.append(n)
            elif not n.subnet_of(cut):  # type: ignore[arg-type]
                out.extend(n.address_exclude(cut))  # type: ignore[arg-type]
        parts = out
    return _collapse(parts)


def _collapse(nets: Iterable[Net]) -> list[Net]:
    by_version: dict[int, list[Net]] = {}
    for n in nets:
        by_version.setdefault(n.version, []).append(n)
    return [c for v in sorted(by_version) for c in ipaddress.collapse_addresses(by_version[v])]  # type: ignore


def intersect(nets: Iterable[Net], other: Net) -> list[Net]:
    out: list[Net] = []
    for n in nets:
        if n.version != other.version or not n.overlaps(other):
            continue
        out.append(n if n.subnet_of(other) else other)  # type: ignore[arg-type]
    return _collapse(out)


def _cidr_routes(rt: RouteTableLike, version: int = 4) -> list[tuple[Net, Route]]:
    out = []
    for r in rt.routes:
        dest = r.destination if version == 4 else r.destination_v6
        if dest:
            try:
                out.append((ipaddress.ip_network(dest, strict=False), r))
            except ValueError:
                continue
    return out


def lpm_legs(rt: RouteTableLike, world: str = DEFAULT_V4) -> list[tuple[list[Net], Route | None]]:
    """Longest-prefix match of every route of the table over the address space: which ranges each route decides
    (None: no route matches them), keeping only those that hold internet addresses, the largest share of the
    internet first."""
    top = ipaddress.ip_network(world, strict=False)
    routes = _cidr_routes(rt, top.version)
    leaves: dict[int, list[Net]] = {}
    chosen: dict[int, Route | None] = {}

    def walk(net: Net) -> None:
        if any(r.subnet_of(net) and r != net for r, _ in routes):  # type: ignore[arg-type]
            for half in net.subnets(prefixlen_diff=1):
                walk(half)
            return
        best = max((r for r in routes if net.subnet_of(r[0])), key=lambda r: r[0].prefixlen,  # type: ignore
                   default=None)
        route = best[1] if best else None
        leaves.setdefault(id(route), []).append(net)
        chosen[id(route)] = route

    walk(top)
    internet = public_space(world)

    def share(nets: list[Net]) -> int:
        return sum(n.num_addresses for p in nets for n in intersect(internet, p))

    legs = [(_collapse(nets), chosen[k]) for k, nets in leaves.items()]
    legs = [(nets, r) for nets, r in legs if share(nets)]
    legs.sort(key=lambda leg: -share(leg[0]))
    return legs


def _route_key(route: Route | None) -> str:
    if route is None:
        return "none"
    return f"{route.target}|{route.state}"


def _dest(route: Route) -> str:
    return route.destination or route.destination_v6 or "?"


def _ranges(nets: Sequence[Net], limit: int = 4) -> str:
    shown = ", ".join(str(n) for n in nets[:limit])
    return shown + (f" and {len(nets) - limit} more ranges" if len(nets) > limit else "")


@dataclass(frozen=True)
class Hop:
    """Where a subnet's traffic to the internet goes: kind igw | nat | opaque | none | blackhole, whether it
    works, and the parts of the public address space that a more specific route sends elsewhere."""

    kind: str
    target: str
    ok: bool
    detail: str
    elsewhere: tuple[Leg, ...] = ()


@dataclass(frozen=True)
class Leg:
    """Part of the public address space that a more specific route (or no route) sends elsewhere."""

    ranges: str
    hop: Hop


def route_target(data: NetworkLike, subnet_id: str, vpc_id: str | None = None,
                 world: str = DEFAULT_V4) -> tuple[RouteTableLike | None, str, Hop]:
    """The applicable table, how it applies, and what its routes for the public address space reach (longest
    prefix match: 0.0.0.0/1 + 128.0.0.0/1 are a default route; states derived, not trusted). The hop is the
    target of the largest share; parts that more specific routes send elsewhere are its `elsewhere` legs.
    `world` is 0.0.0.0/0 (IPv4) or ::/0 (IPv6)."""
    rt, how = data.route_table(subnet_id, vpc_id)
    if rt is None:
        return None, how, Hop("none", "", False, "no route table applies")
    rid = rt.id
    sub = data.subnets.get(subnet_id)
    vpc = sub.vpc_id if sub else vpc_id or ""
    groups: dict[str, tuple[list[Net], list[Route]]] = {}
    for nets, route in lpm_legs(rt, world):
        key = _route_key(route)
        have = groups.setdefault(key, ([], []))
        have[0].extend(nets)
        if route is not None:
            have[1].append(route)
    # the largest routed share is the hop; a part without any route is one of its `elsewhere` legs
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == "none", -sum(n.num_addresses for n in kv[1][0])))
    if not ordered or ordered[0][0] == "none":
        return rt, how, Hop("none", "", False, f"route table {rid} has no {world} route")
    (_, (_, main_routes)), rest = ordered[0], ordered[1:]
    dests = sorted({_dest(r) for r in main_routes}, key=lambda d: ipaddress.ip_network(d, strict=False))
    main = _hop(data, rid, how, vpc, main_routes[0], ", ".join(dests))
    legs = []
    for _, (nets, routes) in rest:
        ranges = _ranges(_collapse(nets))
        if not routes:
            legs.append(Leg(ranges, Hop("none", "", False, f"{ranges}: no route on {rid}")))
            continue
        leg_dests = ", ".join(sorted({_dest(r) for r in routes}))
        legs.append(Leg(ranges, _hop(data, rid, how, vpc, routes[0], leg_dests)))
    return rt, how, Hop(main.kind, main.target, main.ok, main.detail, tuple(legs))


def _hop(data: NetworkLike, rid: str, how: str, vpc: str, route: Route, dest: str) -> Hop:
    """What one route reaches."""
    target = route.target
    if route.state == "blackhole":
        return Hop("blackhole", target, False, f"{dest} on {rid} is a blackhole ({target} is gone)")
    if route.target_kind == "gateway" and target.startswith("igw-"):
        if target in data.attached_igws(vpc):
            return Hop("igw", target, True, f"route table {rid} ({how}) sends {dest} to {target}")
        known = any(g.id == target for g in data.internet_gateways)
        why = "is not attached to" if known else "does not exist or is not attached to"
        return Hop("igw", target, False, f"{dest} on {rid} goes to {target}, which {why} {vpc}")
    if route.target_kind == "egress-only":
        if target in data.attached_igws(vpc, egress_only=True):
            return Hop("igw", target, True, f"route table {rid} ({how}) sends {dest} to egress-only internet "
                       f"gateway {target}")
        return Hop("igw", target, False, f"{dest} on {rid} goes to egress-only internet gateway {target}, which "
                   f"does not exist or is not attached to {vpc}")
    if route.target_kind == "nat":
        return Hop("nat", target, True, f"route table {rid} ({how}) sends {dest} to {target}")
    if route.target_kind == "gateway" and target == "local":
        return Hop("local", "local", False, f"{dest} on {rid} stays in the VPC (local)")
    if route.target_kind in OPAQUE_KINDS:
        label = route.target_kind
        return _opaque(target, f"{label} {target}", f"{dest} on {rid} goes to {label} {target}")
    if target.startswith("vpce-"):
        label = f"endpoint {target} (a Gateway Load Balancer or AWS Network Firewall endpoint)"
        return _opaque(target, label, f"{dest} on {rid} goes to {label}")
    target = target or "an unknown target"
    return _opaque(target, target, f"{dest} on {rid} goes to {target}")


def _opaque(target: str, label: str, where: str) -> Hop:
    return Hop("opaque", target, False, f"{where}; cannot verify beyond {label} from this VPC")


def public_route(data: NetworkLike, subnet_id: str, vpc_id: str | None = None) -> tuple[bool, str]:
    """Does the subnet's table send the public address space to an internet gateway attached to its VPC?"""
    _, _, hop = route_target(data, subnet_id, vpc_id)
    return hop.kind == "igw" and hop.ok, hop.detail


@dataclass(frozen=True)
class NatStatus:
    """Whether a NAT gateway reaches the internet: ok, or not, or `beyond` an opaque hop (its subnet's route goes
    to a firewall endpoint, transit gateway, ...), which passes only when declared trusted egress."""

    ok: bool
    detail: str
    beyond: str | None = None
    trusted: bool = False


def nat_status(data: NetworkLike, nat_id: str) -> NatStatus:
    """A NAT gateway works when it is available, public, has an address, and sits in a subnet with a public route
    (or a route to declared trusted egress, e.g. the Network Firewall reference design)."""
    nat = data.nat_gateways.get(nat_id)
    if nat is None:
        return NatStatus(False, f"NAT gateway {nat_id} does not exist (the route is a blackhole)")
    state = nat.state
    if state in NAT_GONE:
        return NatStatus(False, f"NAT gateway {nat_id} is {state} (the route is a blackhole)")
    if state != "available":
        return NatStatus(False, f"NAT gateway {nat_id} is {state}, not available")
    if nat.connectivity == "private":
        return NatStatus(False, f"NAT gateway {nat_id} is a private NAT gateway (no internet access)")
    if not nat.public_ips:
        return NatStatus(False, f"NAT gateway {nat_id} has no public address")
    where = nat.subnet_id
    # the NAT gateway's subnet is in its VPC; that subnet's table decides even if the subnet was not described
    _, _, hop = route_target(data, where, nat.vpc_id)
    if hop.kind == "opaque":
        trusted = hop.target in data.trusted_egress
        return NatStatus(trusted, f"NAT gateway {nat_id} (available, {nat.public_ips[0]}) in {where}, whose "
                         f"{hop.detail}", hop.target, trusted)
    if not (hop.kind == "igw" and hop.ok):
        return NatStatus(False, f"NAT gateway {nat_id} sits in {where}, which has no public route ({hop.detail})")
    return NatStatus(True, f"NAT gateway {nat_id} (available, {nat.public_ips[0]}) in public subnet {where}")


def nat_usable(data: NetworkLike, nat_id: str) -> tuple[bool, str]:
    status = nat_status(data, nat_id)
    return status.ok, status.detail


@dataclass(frozen=True)
class PublicIps:
    """Whether instances or tasks launched in a subnet get public IPv4 addresses, and why (or why not)."""

    enabled: bool
    reason: str


def service_of(name: str, region: str) -> str | None:
    """'com.amazonaws.us-east-1.ecr.dkr' -> 'ecr.dkr' (any partition prefix), else None."""
    marker = f".{region}."
    if marker not in name:
        return None
    return name.split(marker, 1)[1]


@dataclass
class EndpointReport:
    """What the endpoint path has and lacks for one subnet, and availability notes (not failures)."""

    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    s3_prefix_lists: list[str] = field(default_factory=list)
    interface_groups: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    s3_interface: bool = False  # S3 is reached through an interface endpoint with private DNS
    s3_endpoint: str = ""  # which endpoint carries S3 on this path, and where (named in messages)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def endpoint_path(data: NetworkLike, subnet_id: str, rt: RouteTableLike | None, instance_groups: Sequence[str],
                  services: Sequence[str] = INTERFACE_SERVICES) -> EndpointReport:
    """Check the interface endpoints (private DNS, in the VPC, 443 admitted from the subnet; an endpoint answers
    every zone of its VPC, so one without an interface in the subnet's zone is an availability note) and S3: a
    gateway endpoint on the subnet's route table, or an S3 interface endpoint with private DNS."""
    subnet = data.subnets.get(subnet_id)
    vpc, az, cidr = (subnet.vpc_id, subnet.zone, subnet.cidr) if subnet else (None, None, None)
    report = EndpointReport()
    by_service: dict[str, list[EndpointLike]] = {}
    for ep in data.endpoints:
        if ep.service and ep.vpc_id == vpc:
            by_service.setdefault(ep.service, []).append(ep)
    for svc in services:
        candidates = [e for e in by_service.get(svc, []) if e.type == "Interface"]
        if not candidates:
            report.missing.append(svc)
            continue
        working, reasons = _first_working(data, svc, candidates, cidr, instance_groups)
        if working is None:
            report.problems.append(reasons[0])
            continue
        report.found.append(f"{svc} ({working.id})")
        report.interface_groups.extend(working.groups)
        note = _zone_note(data, svc, working, az)
        if note:
            report.notes.append(note)
    for svc in GATEWAY_SERVICES:
        gateways = [e for e in by_service.get(svc, []) if e.type == "Gateway"]
        rid = rt.id if rt else None
        good = [e for e in gateways if rid in e.route_tables and e.available]
        interfaces = [e for e in by_service.get(svc, []) if e.type == "Interface"]
        if good:
            report.found.append(f"{svc} gateway ({good[0].id}) on {rid}")
            report.s3_endpoint = f"S3 gateway endpoint {good[0].id} on route table {rid}"
            for e in good:
                report.s3_prefix_lists.extend(data.prefix_list_of(e.id))
            continue
        working, reasons = _first_working(data, svc, interfaces, cidr, instance_groups) if interfaces else (None, [])
        if working is not None:
            report.found.append(f"{svc} interface ({working.id}, private DNS)")
            report.interface_groups.extend(working.groups)
            report.s3_interface = True
            report.s3_endpoint = f"S3 interface endpoint {working.id} (private DNS)"
            note = _zone_note(data, svc, working, az)
            if note:
                report.notes.append(note)
        elif gateways:
            report.problems.append(f"{svc} gateway endpoint {gateways[0].id} is not on route table {rid}"
                                   if gateways[0].available else
                                   f"{svc} gateway endpoint {gateways[0].id} is {gateways[0].state}")
        elif reasons:
            report.problems.append(reasons[0])
        else:
            report.missing.append(svc)
    return report


def _first_working(data: NetworkLike, svc: str, candidates: Sequence[EndpointLike], cidr: str | None,
                   instance_groups: Sequence[str]) -> tuple[EndpointLike | None, list[str]]:
    reasons: list[str] = []
    for ep in candidates:
        why = _interface_problem(data, ep, cidr, instance_groups)
        if why is None:
            return ep, []
        reasons.append(f"{svc} endpoint {ep.id} {why}")
    return None, reasons


def _zone_note(data: NetworkLike, svc: str, ep: EndpointLike, az: str | None) -> str | None:
    zones = dict(ep.zones)
    if az is None or az in zones:
        return None
    return (f"availability: {svc} endpoint {ep.id} has no interface in {az} (it covers "
            f"{', '.join(sorted(zones))}): it still answers this subnet across zones, but an outage of "
            f"{'that zone' if len(zones) == 1 else 'those zones'} cuts it off (and cross-zone traffic is charged)")


def _interface_problem(data: NetworkLike, ep: EndpointLike, cidr: str | None,
                       instance_groups: Sequence[str]) -> str | None:
    if not ep.available:
        return f"is {ep.state}"
    if not ep.private_dns:
        return "has private DNS off (the default service names would not resolve to it)"
    if not ep.zones:
        return "has no network interface in any zone"
    return _admission_problem(data, ep, cidr, instance_groups)


def _admission_problem(data: NetworkLike, ep: EndpointLike, cidr: str | None,
                       instance_groups: Sequence[str]) -> str | None:
    """None when one of the endpoint's groups admits tcp/443 from the subnet's CIDR or the instances' groups."""
    for gid in ep.groups:
        sg = data.security_groups.get(gid)
        if sg and secgroups.allows(sg.ingress, "tcp", 443, 443, cidr=cidr, groups=instance_groups):
            return None
    return f"has groups {', '.join(ep.groups) or '(none)'} that do not admit tcp/443 from {cidr}"


def captured_by_endpoints(data: NetworkLike, subnet_id: str, instance_groups: Sequence[str],
                          services: Sequence[str] = INTERFACE_SERVICES) -> list[str]:
    """Interface endpoints with private DNS take a service's traffic from every subnet of the VPC, whatever its
    route: those whose groups do not admit tcp/443 from this subnet break the internet and NAT paths too."""
    subnet = data.subnets.get(subnet_id)
    if subnet is None:
        return []
    out: list[str] = []
    for ep in data.endpoints:
        svc = ep.service
        if svc not in (*services, *GATEWAY_SERVICES) or ep.vpc_id != subnet.vpc_id or ep.type != "Interface":
            continue
        if not (ep.available and ep.private_dns):
            continue
        why = _admission_problem(data, ep, subnet.cidr, instance_groups)
        if why:
            out.append(f"{svc} endpoint {ep.id} (private DNS, so it receives the {svc} traffic) {why}")
    return out


@dataclass(frozen=True)
class JobNeeds:
    """What the job reaches, derived from its definition: the interface endpoints (this region's services) that
    carry it on the endpoint path, and the destinations no endpoint of this VPC reaches (internet or NAT only)."""

    services: tuple[str, ...]
    internet_only: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # why each service beyond the platform's own is needed


ECS_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry")


def _arn_region(value: str) -> str | None:
    parts = value.split(":")
    return parts[3] or None if value.startswith("arn:") and len(parts) > 4 else None


def job_needs(region: str, platform: str, *, image: ImageRef | None, image_error: str | None = None,
              secrets: Sequence[tuple[str, str]] = (), repository_credentials: str | None = None,
              log_driver: str | None = None, log_region: str | None = None) -> JobNeeds:
    """The destinations of a job (platform: ec2 | fargate | eks): the platform's own (ECS for EC2 hosts, EKS's
    for EKS nodes, none for Fargate), the image's registry (ECR in this region: ecr.api, ecr.dkr and S3 for the
    layers; ECR in another region, public.ecr.aws, Docker Hub or another registry: the internet), Secrets Manager
    and SSM for `secrets` ((store, valueFrom) pairs) and repositoryCredentials, CloudWatch Logs for awslogs."""
    services: list[str] = list(EKS_SERVICES if platform == "eks" else () if platform == "fargate" else ECS_SERVICES)
    internet: list[str] = []
    reasons: list[str] = []

    def need(svc: str, why: str) -> None:
        if svc not in services:
            services.append(svc)
            reasons.append(f"{svc}: {why}")

    if image is None:  # no image, or one that does not parse (BAT003/IMG say why): ECR, as the fixed list has it
        why = f"the image cannot be read ({image_error})" if image_error else "the job definition names no image"
        need("ecr.api", why)
        need("ecr.dkr", why)
    elif image.is_ecr and image.region == region:
        need("ecr.api", f"the image {image.original} is in ECR in {region}")
        need("ecr.dkr", f"the image {image.original} is in ECR in {region}")
    elif image.is_ecr:
        internet.append(f"the image's registry {image.registry} (ECR in {image.region}, not {region}: this VPC's "
                        "endpoints do not reach it)")
    else:
        internet.append(f"the image's registry {image.registry} (not ECR: no VPC endpoint reaches it)")
    for store, value in secrets:
        where = _arn_region(value)
        if where and where != region:
            internet.append(f"secret {value} ({store} in {where}, not {region})")
        else:
            need(store, f"the job's secret {value}")
    if repository_credentials:
        where = _arn_region(repository_credentials)
        if where and where != region:
            internet.append(f"repositoryCredentials {repository_credentials} (Secrets Manager in {where})")
        else:
            need("secretsmanager", f"repositoryCredentials {repository_credentials}")
    if log_driver == "awslogs":
        if log_region and log_region != region:
            internet.append(f"CloudWatch Logs in {log_region} (awslogs-region)")
        else:
            need("logs", "the awslogs log driver")
    return JobNeeds(tuple(services), tuple(dict.fromkeys(internet)), tuple(reasons))


@dataclass(frozen=True)
class PathResult:
    """NET003's verdict for one subnet: ok and the path found, or each path's lack; opaque when a hop cannot be
    seen past (an `error` naming the hop and network.trusted_egress), with notes that do not change the verdict."""

    ok: bool
    path: str
    message: str
    opaque: bool = False
    endpoints: EndpointReport | None = None
    notes: tuple[str, ...] = ()


TRUST_HINT = ("declare it in network.trusted_egress once you have checked that it reaches the internet or the "
              "AWS service endpoints")


def _opaque_hint(targets: Sequence[str]) -> str:
    return f"cannot verify beyond {', '.join(targets)}: {TRUST_HINT}"


def analyze(data: NetworkLike, subnet_id: str, public_ips: PublicIps, instance_groups: Sequence[str] = (),
            services: Sequence[str] = INTERFACE_SERVICES, internet_only: Sequence[str] = ()) -> PathResult:
    """Exact egress path analysis for one described subnet (`services`: the interface endpoints it needs;
    `internet_only`: destinations of the job no endpoint reaches, so the endpoint path is not enough)."""
    subnet = data.subnets.get(subnet_id)
    if subnet is not None and subnet.ipv6_only:
        return PathResult(False, "none", f"{subnet_id} is IPv6-only: it has no IPv4 path, and the routes, NAT "
                          "gateways and endpoints checked here carry IPv4 (NAT64/DNS64 and dual-stack service "
                          "endpoints are not modelled); launch into a dual-stack subnet")
    rt, _how, hop = route_target(data, subnet_id)
    eps = endpoint_path(data, subnet_id, rt, instance_groups, services)
    captured = captured_by_endpoints(data, subnet_id, instance_groups, services)
    found: tuple[str, str] | None = None
    unseen: list[str] = []  # hops not seen past (not declared trusted)
    notes: list[str] = []
    nat_detail = "no NAT"
    if hop.kind == "igw" and hop.ok and public_ips.enabled:
        found = "internet", f"public: {hop.detail}; {public_ips.reason}"
    elif hop.kind == "nat":
        nat = nat_status(data, hop.target)
        nat_detail = nat.detail
        if nat.ok:
            found = "nat", f"private via NAT: {hop.detail}; {nat.detail}"
            if nat.trusted:
                notes.append(f"{nat.beyond} is declared trusted egress (network.trusted_egress): not verified "
                             "beyond it")
        elif nat.beyond:
            unseen.append(nat.beyond)
    elif hop.kind == "opaque":
        if hop.target in data.trusted_egress:
            found = "trusted", f"via declared trusted egress: {hop.detail}"
            notes.append(f"{hop.target} is declared trusted egress (network.trusted_egress): not verified beyond it")
        else:
            unseen.append(hop.target)
    if found is not None:
        # parts of the public address space that more specific routes send elsewhere: named, never passed silently
        broken: list[str] = []
        for leg in hop.elsewhere:
            verdict = _leg(data, leg, public_ips)
            if verdict == "ok":
                notes.append(f"{leg.ranges} takes another working path: {leg.hop.detail}")
            elif verdict == "trusted":
                notes.append(f"{leg.ranges} goes to declared trusted egress {leg.hop.target}: {leg.hop.detail}")
            elif verdict.startswith("opaque:"):
                unseen.append(verdict.partition(":")[2])
                broken.append(f"{leg.ranges}: {leg.hop.detail}")
            else:
                broken.append(f"{leg.ranges} does not follow it: {leg.hop.detail}")
        if captured:
            return PathResult(False, "none", f"{subnet_id}: {found[1]}; but " + "; ".join(captured), endpoints=eps)
        if broken:
            why = ("AWS service addresses in those ranges would not be reached; whether ECS, ECR and S3 use them "
                   "is not checked (AWS publishes its ranges in ip-ranges.json)")
            hint = f"; {_opaque_hint(unseen)}" if unseen else ""
            return PathResult(False, found[0], f"{subnet_id}: {found[1]}; but part of the public address space "
                              f"goes elsewhere: {'; '.join(broken)}: {why}{hint}", opaque=True, endpoints=eps,
                              notes=tuple(notes + eps.notes))
        return PathResult(True, found[0], f"{subnet_id}: {found[1]}", endpoints=eps, notes=tuple(notes + eps.notes))
    if eps.ok and internet_only:
        return PathResult(False, "none", f"{subnet_id}: private via VPC endpoints only ({', '.join(eps.found)}), "
                          f"but the job also reaches {'; '.join(internet_only)}: only a NAT gateway or an internet "
                          f"gateway with public IPs gets there ({hop.detail}; {nat_detail})", endpoints=eps)
    if eps.ok:
        return PathResult(True, "endpoints", f"{subnet_id}: private via VPC endpoints: {', '.join(eps.found)}",
                          endpoints=eps, notes=tuple(eps.notes))
    if hop.kind == "igw" and hop.ok:
        internet = f"public route ({hop.detail}) but no public IPs on launch ({public_ips.reason})"
    elif hop.kind == "nat":
        internet = f"private ({DEFAULT_V4} on {rt.id if rt else '?'} goes to {hop.target})"
    else:
        internet = f"private ({hop.detail})"
    parts = [internet, nat_detail]
    if eps.missing:
        parts.append(f"VPC endpoints missing: {', '.join(eps.missing)}")
    parts.extend(eps.problems)
    if unseen:
        parts.append(_opaque_hint(unseen))
    return PathResult(False, "none", f"{subnet_id}: " + "; ".join(parts), opaque=bool(unseen), endpoints=eps)


def _leg(data: NetworkLike, leg: Leg, public_ips: PublicIps) -> str:
    """ok | trusted | opaque:HOP | broken, for the path a part of the public address space takes."""
    hop = leg.hop
    if hop.kind == "igw" and hop.ok and public_ips.enabled:
        return "ok"
    if hop.kind == "nat":
        nat = nat_status(data, hop.target)
        if nat.ok:
            return "trusted" if nat.trusted else "ok"
        return f"opaque:{nat.beyond}" if nat.beyond else "broken"
    if hop.kind == "opaque":
        return "trusted" if hop.target in data.trusted_egress else f"opaque:{hop.target}"
    return "broken"


# -- network ACLs -----------------------------------------------------------------------------------------

def acl_allows(entries: Iterable[AclEntry], *, egress: bool, lo: int, hi: int,
               cidr: str) -> tuple[bool | None, str]:
    """Are TCP ports lo..hi to (egress) or from (ingress) the addresses of `cidr` allowed? 0.0.0.0/0 and ::/0
    stand for the internet's addresses (a rule for 10.0.0.0/8 or 192.168.0.0/16 is not about the internet).

    As VPC evaluates them: entries in rule-number order, the first that matches a packet (port and address)
    decides, so several Allow rules can together cover the range. True: every such packet is allowed. False: for
    some port every address is denied (named). None: some addresses are denied for some port while others are
    allowed; the denied ranges are named (whether AWS's service addresses are among them is not checked)."""
    world = secgroups.network(cidr)
    space = public_space(cidr)
    ordered = sorted((e for e in entries if e.egress == egress), key=lambda e: e.number)
    rules: list[tuple[str, str, Net, tuple[int, int]]] = []
    for entry in ordered:
        proto = secgroups.protocol(entry.protocol)
        if proto not in ("-1", "tcp"):
            continue
        ports = (0, 65535) if proto == "-1" or entry.ports is None else entry.ports
        ecidr = entry.cidr if world.version == 4 else entry.ipv6_cidr
        if not ecidr:
            continue
        number = "*" if entry.number == 32767 else str(entry.number)
        rules.append((number, entry.action, secgroups.network(ecidr), ports))
    # elementary port intervals: inside one, every rule either covers all its ports or none
    cuts = sorted({lo, hi + 1} | {p for *_, (a, b) in rules for p in (a, b + 1) if lo < p <= hi})
    direction = "to" if egress else "from"
    allowed_by: list[str] = []
    blocked: list[tuple[int, int, tuple[str, ...]]] = []  # port intervals where every address is denied, by whom
    partial: dict[str, list[Net]] = {}  # rule -> denied ranges, where other addresses are allowed
    for a, b in itertools.pairwise(cuts):
        b -= 1
        open_ = list(space)
        allowed: list[Net] = []
        denied: dict[str, list[Net]] = {}
        for number, action, net, (pa, pb) in rules:
            if not open_:
                break
            if pb < a or pa > b:
                continue
            hit = intersect(open_, net)
            if not hit:
                continue
            open_ = subtract(open_, [net])
            if action == "allow":
                allowed.extend(hit)
                if number not in allowed_by:
                    allowed_by.append(number)
            else:
                denied.setdefault(f"rule {number}|{net}", []).extend(hit)
        if open_:
            denied.setdefault(f"no rule|{world}", []).extend(open_)
        if not denied:
            continue
        if not allowed:
            keys = tuple(denied)
            if blocked and blocked[-1][1] + 1 == a and blocked[-1][2] == keys:
                blocked[-1] = (blocked[-1][0], b, keys)
            else:
                blocked.append((a, b, keys))
        else:
            for key, nets in denied.items():
                partial.setdefault(key, []).extend(nets)
    if blocked:
        return False, "; ".join(_acl_denial(key, direction, _span(a, b)) for a, b, keys in blocked for key in keys)
    if partial:
        named = "; ".join(f"{key.split('|')[0]} denies tcp/{_span(lo, hi)} {direction} "
                          f"{_ranges(_collapse(nets))}" for key, nets in partial.items())
        return None, (f"{named} (other addresses are allowed by rule {', '.join(allowed_by)}; whether ECS, ECR "
                      "and S3 addresses fall in the denied part is not checked)")
    return True, f"allowed by rule {', '.join(allowed_by)}"


def _acl_denial(key: str, direction: str, span: str) -> str:
    rule, _, net = key.partition("|")
    if rule == "no rule":
        return f"no rule allows tcp/{span} {direction} {net}"
    return f"{rule} denies tcp/{span} {direction} {net}"


def _span(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}-{b}"


@dataclass
class AclHop:
    """One hop's network ACL verdicts: which subnet, whose ACL, and what passed, failed or stayed undecided."""

    where: str
    acl: AclLike | None
    problems: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "no network ACL found" if self.acl is None else \
            f"network ACL {self.acl.id}" + (" (default)" if self.acl.default else "")


def _acl_rule(hop: AclHop, *, egress: bool, lo: int, hi: int, cidr: str, label: str, quiet: bool = False) -> None:
    """Decide one direction and port range on the hop's ACL (quiet: not listed when allowed)."""
    if hop.acl is None:
        hop.undecided.append(f"{label}: no network ACL of the subnet was returned")
        return
    ok, why = acl_allows(hop.acl.entries, egress=egress, lo=lo, hi=hi, cidr=cidr)
    text = f"{label} {'to' if egress else 'from'} {cidr}: {why}"
    if ok and quiet:
        return
    (hop.good if ok else hop.problems if ok is False else hop.undecided).append(text)


# The ports a NAT gateway translates connections to (its replies from the internet come back to them).
NAT_PORTS = (1024, 65535)


def acl_hops(data: NetworkLike, subnet_id: str, services: Sequence[str] = INTERFACE_SERVICES) -> list[AclHop]:
    """Network ACLs on every hop of the subnet's paths, both ways (ACLs are stateless): the subnet's own (to and
    from the internet, and to and from the interface endpoints the job's traffic goes to); the NAT gateway's
    subnet (443 in from the subnet and out to the internet, the NAT's ports back in, the replies out to the
    subnet); each subnet holding an interface endpoint's network interface (443 in from the subnet, the replies
    out). Traffic inside one subnet does not cross its ACL. The first hop is the subnet's own."""
    subnet = data.subnets.get(subnet_id)
    own = AclHop(subnet_id, data.acl_for(subnet_id))
    hops = [own]
    if subnet is None:
        return hops
    lo_e, hi_e = EPHEMERAL
    families = ([] if subnet.ipv6_only else [DEFAULT_V4]) + ([DEFAULT_V6] if subnet.ipv6_cidrs else [])
    for world in families:
        _acl_rule(own, egress=True, lo=443, hi=443, cidr=world, label="outbound 443")
        _acl_rule(own, egress=False, lo=lo_e, hi=hi_e, cidr=world, label=f"inbound {lo_e}-{hi_e} (ephemeral)")
    if subnet.cidr is None:
        return hops
    _, _, hop = route_target(data, subnet_id)
    nat = data.nat_gateways.get(hop.target) if hop.kind == "nat" else None
    if nat is not None and nat.subnet_id and nat.subnet_id != subnet_id:
        there = AclHop(f"NAT gateway {nat.id}'s subnet {nat.subnet_id}", data.acl_for(nat.subnet_id, nat.vpc_id))
        _acl_rule(there, egress=False, lo=443, hi=443, cidr=subnet.cidr, label="inbound 443")
        _acl_rule(there, egress=True, lo=443, hi=443, cidr=DEFAULT_V4, label="outbound 443")
        _acl_rule(there, egress=False, lo=NAT_PORTS[0], hi=NAT_PORTS[1], cidr=DEFAULT_V4,
                  label=f"inbound {NAT_PORTS[0]}-{NAT_PORTS[1]} (the NAT gateway's ports)")
        _acl_rule(there, egress=True, lo=lo_e, hi=hi_e, cidr=subnet.cidr, label=f"outbound {lo_e}-{hi_e} (ephemeral)")
        hops.append(there)
    seen: set[str] = set()
    for ep in data.endpoints:
        if ep.vpc_id != subnet.vpc_id or ep.type != "Interface" or not (ep.available and ep.private_dns) \
                or ep.service not in (*services, *GATEWAY_SERVICES):
            continue
        for where, address in ep.addresses:
            if where == subnet_id:
                continue
            if where not in seen:
                seen.add(where)
                there = AclHop(f"endpoint subnet {where}", data.acl_for(where, ep.vpc_id))
                _acl_rule(there, egress=False, lo=443, hi=443, cidr=subnet.cidr, label="inbound 443")
                _acl_rule(there, egress=True, lo=lo_e, hi=hi_e, cidr=subnet.cidr,
                          label=f"outbound {lo_e}-{hi_e} (ephemeral)")
                hops.append(there)
            _acl_rule(own, egress=True, lo=443, hi=443, cidr=f"{address}/32",
                      label=f"outbound 443 ({ep.service} endpoint {ep.id})", quiet=True)
            _acl_rule(own, egress=False, lo=lo_e, hi=hi_e, cidr=f"{address}/32",
                      label=f"inbound {lo_e}-{hi_e} (ephemeral, {ep.service} endpoint {ep.id})", quiet=True)
    return hops


# -- endpoint policies ------------------------------------------------------------------------------------

def layer_bucket(region: str) -> str:
    """ECR keeps image layers in this S3 bucket (AWS: 'Amazon ECR interface VPC endpoints', S3 gateway policy)."""
    return f"prod-{region}-starport-layer-bucket"


def _secret_arn(value: str) -> str:
    """A Secrets Manager valueFrom without its JSON-key / version-stage / version-id suffix."""
    return ":".join(value.split(":")[:7])


def bucket_of(resource: str) -> str | None:
    """'arn:aws:s3:::ml-data/train/*' -> 'ml-data'; None for anything that is not an S3 bucket or object ARN."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "s3" or parts[3] or parts[4]:
        return None
    return parts[5].split("/", 1)[0] or None


def declared_s3(declared: Iterable[policy.Request]) -> list[policy.Request]:
    """The S3 requests among what the job role is declared to do (iam.job_role.allow): an s3: action on a bucket or
    object ARN. Each reaches S3 from the job's network, through an S3 endpoint on the path if there is one."""
    return [r for r in declared if r.action.lower().startswith("s3:") and r.resource.startswith("arn:")
            and bucket_of(r.resource) is not None]


def concrete_bucket(name: str) -> bool:
    """A bucket name without wildcards (a pattern names no one bucket whose region could be read)."""
    return not any(c in name for c in "*?$")


def job_requests(region: str, account: str | None, *, image: ImageRef | None,
                 secrets: Sequence[tuple[str, str]] = (), repository_credentials: str | None = None,
                 log_group: str | None = None, logs: bool = False,
                 declared: Sequence[policy.Request] = ()) -> dict[str, list[policy.Request]]:
    """What the job asks of each service through an endpoint, by endpoint service: the S3 layer bucket and the
    ECR repository for an ECR image of this region; the secrets (Secrets Manager, SSM) it reads; its log group;
    the S3 requests the job role is declared to make (`declared`, iam.job_role.allow: the job's own code reads its
    buckets over the same network). (KMS is not asked from the job's network: Secrets Manager and SSM decrypt on
    the service side.)"""
    out: dict[str, list[policy.Request]] = {}
    if image is not None and image.is_ecr and image.region == region:
        repo = f"arn:aws:ecr:{region}:{image.account}:repository/{image.repository}"
        pulls = [policy.Request("ecr:GetAuthorizationToken"), policy.Request("ecr:BatchGetImage", repo),
                 policy.Request("ecr:GetDownloadUrlForLayer", repo)]
        out["ecr.api"] = pulls
        out["ecr.dkr"] = pulls
        out["s3"] = [policy.Request("s3:GetObject", f"arn:aws:s3:::{layer_bucket(region)}/{SAMPLE_LAYER}")]
    for store, value in [*secrets, *([("secretsmanager", repository_credentials)] if repository_credentials
                                     else [])]:
        if _arn_region(value) not in (None, region):
            continue
        if store == "secretsmanager":
            out.setdefault("secretsmanager", []).append(policy.Request("secretsmanager:GetSecretValue",
                                                                       _secret_arn(value)))
        elif value.startswith("arn:"):
            out.setdefault("ssm", []).append(policy.Request("ssm:GetParameters", value))
        elif account:
            name = value.lstrip("/")
            out.setdefault("ssm", []).append(policy.Request("ssm:GetParameters",
                                                            f"arn:aws:ssm:{region}:{account}:parameter/{name}"))
    if logs and account:
        group = log_group or "/aws/batch/job"
        stream = f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{SAMPLE_STREAM}"
        out["logs"] = [policy.Request("logs:CreateLogStream", stream), policy.Request("logs:PutLogEvents", stream)]
    s3 = declared_s3(declared)
    if s3:
        out.setdefault("s3", []).extend(r for r in s3 if r not in out.get("s3", []))
    return out


SAMPLE_LAYER = "sha256:pytest-mlbatch-layer"
SAMPLE_STREAM = "pytest-mlbatch/default/pytest-mlbatch"


@dataclass(frozen=True)
class PolicyVerdict:
    """One endpoint's policy against the job's requests through it."""

    endpoint: str
    service: str
    decisions: tuple[policy.Decision, ...]
    note: str = ""
    hop: str = ""  # where the endpoint takes the subnet's traffic: its route table, or private DNS in the VPC


def endpoint_policies(data: NetworkLike, subnet_id: str,
                      requests: Mapping[str, Sequence[policy.Request]]) -> list[PolicyVerdict]:
    """The policies of the endpoints the subnet's traffic goes through, against the job's requests: every
    available interface endpoint with private DNS of the VPC (it takes its service's traffic from every subnet),
    and S3 gateway endpoints on the subnet's route table (they take S3 traffic on the NAT and internet paths too).
    An endpoint without a policy has the default (full access). A statement naming principals other than '*'
    makes the decision unknown (the caller's identity is not modelled)."""
    subnet = data.subnets.get(subnet_id)
    if subnet is None:
        return []
    rt, _ = data.route_table(subnet_id)
    out: list[PolicyVerdict] = []
    for ep in data.endpoints:
        svc = ep.service
        if svc is None or svc not in requests or ep.vpc_id != subnet.vpc_id or not ep.available:
            continue
        if ep.type == "Interface" and not ep.private_dns:
            continue
        if ep.type == "Gateway" and (rt is None or rt.id not in ep.route_tables):
            continue
        if ep.type not in ("Interface", "Gateway"):
            continue
        wanted = requests[svc]
        where = f"{svc} {ep.type.lower()} endpoint {ep.id}"
        hop = f"on {subnet_id}'s route table {rt.id}" if ep.type == "Gateway" and rt is not None else \
            f"private DNS in {ep.vpc_id}"
        if ep.policy is None:
            out.append(PolicyVerdict(ep.id, svc, tuple(policy.Decision(r, "allowed", "endpoint policy",
                                                                             "default full access") for r in wanted),
                                     hop=hop))
            continue
        try:
            document = policy.parse_document(ep.policy)
        except ValueError as exc:
            out.append(PolicyVerdict(ep.id, svc, tuple(policy.Decision(r, "unknown", "endpoint policy", None,
                                                                             f"policy unreadable: {exc}")
                                                              for r in wanted), hop=hop))
            continue
        named = any(s.get("Principal") not in (None, "*", {"AWS": "*"}) or "NotPrincipal" in s
                    for s in policy.statements(document))
        decisions = []
        for r in wanted:
            d = policy.evaluate([policy.Document(f"policy of {where}", document)], r, method="endpoint policy")
            if named and d.verdict == "allowed":
                d = policy.Decision(r, "unknown", d.method, d.statement,
                                    "the policy names principals; which one calls is not modelled")
            decisions.append(d)
        out.append(PolicyVerdict(ep.id, svc, tuple(decisions), hop=hop))
    return out
