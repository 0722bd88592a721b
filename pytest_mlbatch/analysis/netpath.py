"""NET003/NET005 path analysis as pure functions over described EC2 data: routes, NAT, endpoints, network ACLs."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_mlbatch.analysis import secgroups

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
OPAQUE_TARGETS = {
    "TransitGatewayId": "transit gateway",
    "VpcPeeringConnectionId": "VPC peering connection",
    "NetworkInterfaceId": "network interface",
    "InstanceId": "instance",
    "LocalGatewayId": "local gateway",
    "CarrierGatewayId": "carrier gateway",
    "CoreNetworkArn": "core network",
}
NAT_GONE = {"deleted", "deleting", "failed"}
# The ports replies to the instances' and tasks' HTTPS calls return to: Linux's ip_local_port_range (Batch runs
# Linux hosts and tasks). A network ACL rule outside it (a Deny of inbound 3389, say) does not cut them.
EPHEMERAL = (32768, 60999)

Doc = dict[str, Any]


@dataclass
class NetData:
    """Everything NET/SG checks read for one target, each fetched in one call (see checks/net.py)."""

    region: str
    subnets: dict[str, Doc] = field(default_factory=dict)
    vpc_ids: list[str] = field(default_factory=list)  # the VPCs in question (configured, and the subnets')
    vpcs: dict[str, Doc] = field(default_factory=dict)
    route_tables: list[Doc] = field(default_factory=list)
    internet_gateways: list[Doc] = field(default_factory=list)
    nat_gateways: dict[str, Doc] = field(default_factory=dict)
    endpoints: list[Doc] = field(default_factory=list)
    security_groups: dict[str, Doc] = field(default_factory=dict)
    network_acls: list[Doc] = field(default_factory=list)
    # availability zone of each interface endpoint's network interfaces: {endpoint id: {zone: subnet id}}
    endpoint_zones: dict[str, dict[str, str]] = field(default_factory=dict)
    # hops the user declared as trusted egress (network.trusted_egress): tgw-, pcx-, eni-, vpce- ids, ...
    trusted_egress: frozenset[str] = frozenset()

    # -- route tables ---------------------------------------------------------------------------------
    def route_table(self, subnet_id: str, vpc_id: str | None = None) -> tuple[Doc | None, str]:
        """The route table that applies to a subnet: its explicit association, else its VPC's main table."""
        for rt in self.route_tables:
            for a in rt.get("Associations", []):
                if a.get("SubnetId") == subnet_id and _associated(a):
                    return rt, "explicitly associated"
        vpc = self.subnets.get(subnet_id, {}).get("VpcId", vpc_id)
        for rt in self.route_tables:
            if rt.get("VpcId") == vpc and any(a.get("Main") and _associated(a) for a in rt.get("Associations", [])):
                return rt, "main"
        return None, "none"

    def attached_igws(self, vpc_id: str) -> list[str]:
        return [g["InternetGatewayId"] for g in self.internet_gateways
                if any(a.get("VpcId") == vpc_id and a.get("State") in ("available", "attached")
                       for a in g.get("Attachments", []))]

    def explicitly_associated(self, rt_id: str) -> list[str]:
        return [a["SubnetId"] for rt in self.route_tables if rt.get("RouteTableId") == rt_id
                for a in rt.get("Associations", []) if a.get("SubnetId") and _associated(a)]

    def prefix_list_of(self, endpoint_id: str) -> list[str]:
        """Prefix lists a gateway endpoint puts in route tables (its routes name them)."""
        return sorted({r["DestinationPrefixListId"] for rt in self.route_tables for r in rt.get("Routes", [])
                       if r.get("GatewayId") == endpoint_id and r.get("DestinationPrefixListId")})


def _associated(assoc: Doc) -> bool:
    return str(assoc.get("AssociationState", {}).get("State", "associated")) == "associated"


def default_route(rt: Doc | None, cidr: str = DEFAULT_V4) -> Doc | None:
    """The route for exactly `cidr` (0.0.0.0/0), if the table has one."""
    if rt is None:
        return None
    key = "DestinationCidrBlock" if ":" not in cidr else "DestinationIpv6CidrBlock"
    return next((r for r in rt.get("Routes", []) if r.get(key) == cidr), None)


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


def _cidr_routes(rt: Doc, version: int = 4) -> list[tuple[Net, Doc]]:
    key = "DestinationCidrBlock" if version == 4 else "DestinationIpv6CidrBlock"
    out = []
    for r in rt.get("Routes", []):
        if r.get(key):
            try:
                out.append((ipaddress.ip_network(str(r[key]), strict=False), r))
            except ValueError:
                continue
    return out


def lpm_legs(rt: Doc, world: str = DEFAULT_V4) -> list[tuple[list[Net], Doc | None]]:
    """Longest-prefix match of every route of the table over the address space: which ranges each route decides
    (None: no route matches them), keeping only those that hold internet addresses, the largest share of the
    internet first."""
    top = ipaddress.ip_network(world, strict=False)
    routes = _cidr_routes(rt, top.version)
    leaves: dict[int, list[Net]] = {}
    chosen: dict[int, Doc | None] = {}

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


def _route_key(route: Doc | None) -> str:
    if route is None:
        return "none"
    return f"{_target_id(route)}|{route.get('State', 'active')}"


def _dest(route: Doc) -> str:
    return str(route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock") or "?")


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


def route_target(data: NetData, subnet_id: str, vpc_id: str | None = None) -> tuple[Doc | None, str, Hop]:
    """The applicable table, how it applies, and what its routes for the public address space reach (longest
    prefix match: 0.0.0.0/1 + 128.0.0.0/1 are a default route; states derived, not trusted). The hop is the
    target of the largest share; parts that more specific routes send elsewhere are its `elsewhere` legs."""
    rt, how = data.route_table(subnet_id, vpc_id)
    if rt is None:
        return None, how, Hop("none", "", False, "no route table applies")
    rid = rt["RouteTableId"]
    vpc = data.subnets.get(subnet_id, {}).get("VpcId", vpc_id or "")
    groups: dict[str, tuple[list[Net], list[Doc]]] = {}
    for nets, route in lpm_legs(rt):
        key = _route_key(route)
        have = groups.setdefault(key, ([], []))
        have[0].extend(nets)
        if route is not None:
            have[1].append(route)
    # the largest routed share is the hop; a part without any route is one of its `elsewhere` legs
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == "none", -sum(n.num_addresses for n in kv[1][0])))
    if not ordered or ordered[0][0] == "none":
        return rt, how, Hop("none", "", False, f"route table {rid} has no {DEFAULT_V4} route")
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


def _hop(data: NetData, rid: str, how: str, vpc: str, route: Doc, dest: str) -> Hop:
    """What one route reaches."""
    if route.get("State") == "blackhole":
        target = _target_id(route)
        return Hop("blackhole", target, False, f"{dest} on {rid} is a blackhole ({target} is gone)")
    gateway = str(route.get("GatewayId") or "")
    if gateway.startswith("igw-"):
        if gateway in data.attached_igws(vpc):
            return Hop("igw", gateway, True, f"route table {rid} ({how}) sends {dest} to {gateway}")
        known = any(g["InternetGatewayId"] == gateway for g in data.internet_gateways)
        why = "is not attached to" if known else "does not exist or is not attached to"
        return Hop("igw", gateway, False, f"{dest} on {rid} goes to {gateway}, which {why} {vpc}")
    nat = str(route.get("NatGatewayId") or "")
    if nat:
        return Hop("nat", nat, True, f"route table {rid} ({how}) sends {dest} to {nat}")
    if gateway == "local":
        return Hop("local", "local", False, f"{dest} on {rid} stays in the VPC (local)")
    for key, label in OPAQUE_TARGETS.items():
        if route.get(key):
            target = str(route[key])
            return _opaque(target, f"{label} {target}", f"{dest} on {rid} goes to {label} {target}")
    endpoint = gateway if gateway.startswith("vpce-") else str(route.get("VpcEndpointId") or "")
    if endpoint:
        label = f"endpoint {endpoint} (a Gateway Load Balancer or AWS Network Firewall endpoint)"
        return _opaque(endpoint, label, f"{dest} on {rid} goes to {label}")
    target = _target_id(route) or "an unknown target"
    return _opaque(target, target, f"{dest} on {rid} goes to {target}")


def _opaque(target: str, label: str, where: str) -> Hop:
    return Hop("opaque", target, False, f"{where}; cannot verify beyond {label} from this VPC")


def _target_id(route: Doc) -> str:
    for key in ("GatewayId", "NatGatewayId", *OPAQUE_TARGETS, "VpcEndpointId", "EgressOnlyInternetGatewayId"):
        if route.get(key):
            return str(route[key])
    return ""


def public_route(data: NetData, subnet_id: str, vpc_id: str | None = None) -> tuple[bool, str]:
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


def nat_status(data: NetData, nat_id: str) -> NatStatus:
    """A NAT gateway works when it is available, public, has an address, and sits in a subnet with a public route
    (or a route to declared trusted egress, e.g. the Network Firewall reference design)."""
    nat = data.nat_gateways.get(nat_id)
    if nat is None:
        return NatStatus(False, f"NAT gateway {nat_id} does not exist (the route is a blackhole)")
    state = str(nat.get("State", "?"))
    if state in NAT_GONE:
        return NatStatus(False, f"NAT gateway {nat_id} is {state} (the route is a blackhole)")
    if state != "available":
        return NatStatus(False, f"NAT gateway {nat_id} is {state}, not available")
    if nat.get("ConnectivityType", "public") == "private":
        return NatStatus(False, f"NAT gateway {nat_id} is a private NAT gateway (no internet access)")
    addresses = [a.get("PublicIp") for a in nat.get("NatGatewayAddresses", []) if a.get("PublicIp")]
    if not addresses:
        return NatStatus(False, f"NAT gateway {nat_id} has no public address")
    where = str(nat.get("SubnetId", ""))
    # the NAT gateway's subnet is in its VPC; that subnet's table decides even if the subnet was not described
    _, _, hop = route_target(data, where, nat.get("VpcId"))
    if hop.kind == "opaque":
        trusted = hop.target in data.trusted_egress
        return NatStatus(trusted, f"NAT gateway {nat_id} (available, {addresses[0]}) in {where}, whose "
                         f"{hop.detail}", hop.target, trusted)
    if not (hop.kind == "igw" and hop.ok):
        return NatStatus(False, f"NAT gateway {nat_id} sits in {where}, which has no public route ({hop.detail})")
    return NatStatus(True, f"NAT gateway {nat_id} (available, {addresses[0]}) in public subnet {where}")


def nat_usable(data: NetData, nat_id: str) -> tuple[bool, str]:
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

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def endpoint_path(data: NetData, subnet_id: str, rt: Doc | None, instance_groups: Sequence[str],
                  services: Sequence[str] = INTERFACE_SERVICES) -> EndpointReport:
    """Check the interface endpoints (private DNS, in the VPC, 443 admitted from the subnet; an endpoint answers
    every zone of its VPC, so one without an interface in the subnet's zone is an availability note) and S3: a
    gateway endpoint on the subnet's route table, or an S3 interface endpoint with private DNS."""
    subnet = data.subnets.get(subnet_id, {})
    vpc, az, cidr = subnet.get("VpcId"), subnet.get("AvailabilityZone"), subnet.get("CidrBlock")
    report = EndpointReport()
    by_service: dict[str, list[Doc]] = {}
    for ep in data.endpoints:
        svc = service_of(str(ep.get("ServiceName", "")), data.region)
        if svc and ep.get("VpcId") == vpc:
            by_service.setdefault(svc, []).append(ep)
    for svc in services:
        candidates = [e for e in by_service.get(svc, []) if e.get("VpcEndpointType") == "Interface"]
        if not candidates:
            report.missing.append(svc)
            continue
        working, reasons = _first_working(data, svc, candidates, cidr, instance_groups)
        if working is None:
            report.problems.append(reasons[0])
            continue
        report.found.append(f"{svc} ({working['VpcEndpointId']})")
        report.interface_groups.extend(g["GroupId"] for g in working.get("Groups", []))
        note = _zone_note(data, svc, working, az)
        if note:
            report.notes.append(note)
    for svc in GATEWAY_SERVICES:
        gateways = [e for e in by_service.get(svc, []) if e.get("VpcEndpointType") == "Gateway"]
        rid = rt["RouteTableId"] if rt else None
        good = [e for e in gateways if rid in e.get("RouteTableIds", []) and _available(e)]
        interfaces = [e for e in by_service.get(svc, []) if e.get("VpcEndpointType") == "Interface"]
        if good:
            report.found.append(f"{svc} gateway ({good[0]['VpcEndpointId']}) on {rid}")
            for e in good:
                report.s3_prefix_lists.extend(data.prefix_list_of(e["VpcEndpointId"]))
            continue
        working, reasons = _first_working(data, svc, interfaces, cidr, instance_groups) if interfaces else (None, [])
        if working is not None:
            report.found.append(f"{svc} interface ({working['VpcEndpointId']}, private DNS)")
            report.interface_groups.extend(g["GroupId"] for g in working.get("Groups", []))
            report.s3_interface = True
            note = _zone_note(data, svc, working, az)
            if note:
                report.notes.append(note)
        elif gateways:
            report.problems.append(f"{svc} gateway endpoint {gateways[0]['VpcEndpointId']} is not on route table "
                                   f"{rid}" if _available(gateways[0]) else
                                   f"{svc} gateway endpoint {gateways[0]['VpcEndpointId']} is "
                                   f"{gateways[0].get('State')}")
        elif reasons:
            report.problems.append(reasons[0])
        else:
            report.missing.append(svc)
    return report


def _first_working(data: NetData, svc: str, candidates: Sequence[Doc], cidr: str | None,
                   instance_groups: Sequence[str]) -> tuple[Doc | None, list[str]]:
    reasons: list[str] = []
    for ep in candidates:
        why = _interface_problem(data, ep, cidr, instance_groups)
        if why is None:
            return ep, []
        reasons.append(f"{svc} endpoint {ep['VpcEndpointId']} {why}")
    return None, reasons


def _zone_note(data: NetData, svc: str, ep: Doc, az: str | None) -> str | None:
    zones = data.endpoint_zones.get(str(ep.get("VpcEndpointId")), {})
    if az is None or az in zones:
        return None
    return (f"availability: {svc} endpoint {ep['VpcEndpointId']} has no interface in {az} (it covers "
            f"{', '.join(sorted(zones))}): it still answers this subnet across zones, but an outage of "
            f"{'that zone' if len(zones) == 1 else 'those zones'} cuts it off (and cross-zone traffic is charged)")


def _available(ep: Doc) -> bool:
    return str(ep.get("State", "")).lower() == "available"


def _interface_problem(data: NetData, ep: Doc, cidr: str | None, instance_groups: Sequence[str]) -> str | None:
    if not _available(ep):
        return f"is {ep.get('State')}"
    if not ep.get("PrivateDnsEnabled"):
        return "has private DNS off (the default service names would not resolve to it)"
    if not data.endpoint_zones.get(str(ep.get("VpcEndpointId"))):
        return "has no network interface in any zone"
    return _admission_problem(data, ep, cidr, instance_groups)


def _admission_problem(data: NetData, ep: Doc, cidr: str | None, instance_groups: Sequence[str]) -> str | None:
    """None when one of the endpoint's groups admits tcp/443 from the subnet's CIDR or the instances' groups."""
    groups = [g["GroupId"] for g in ep.get("Groups", [])]
    for gid in groups:
        sg = data.security_groups.get(gid)
        if sg and secgroups.allows(sg.get("IpPermissions", []), "tcp", 443, 443, cidr=cidr, groups=instance_groups):
            return None
    return f"has groups {', '.join(groups) or '(none)'} that do not admit tcp/443 from {cidr}"


def captured_by_endpoints(data: NetData, subnet_id: str, instance_groups: Sequence[str],
                          services: Sequence[str] = INTERFACE_SERVICES) -> list[str]:
    """Interface endpoints with private DNS take a service's traffic from every subnet of the VPC, whatever its
    route: those whose groups do not admit tcp/443 from this subnet break the internet and NAT paths too."""
    subnet = data.subnets.get(subnet_id, {})
    out: list[str] = []
    for ep in data.endpoints:
        svc = service_of(str(ep.get("ServiceName", "")), data.region)
        if svc not in (*services, *GATEWAY_SERVICES) or ep.get("VpcId") != subnet.get("VpcId") or \
                ep.get("VpcEndpointType") != "Interface":
            continue
        if not (_available(ep) and ep.get("PrivateDnsEnabled")):
            continue
        why = _admission_problem(data, ep, subnet.get("CidrBlock"), instance_groups)
        if why:
            out.append(f"{svc} endpoint {ep['VpcEndpointId']} (private DNS, so it receives the {svc} traffic) {why}")
    return out


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


def analyze(data: NetData, subnet_id: str, public_ips: PublicIps, instance_groups: Sequence[str] = (),
            services: Sequence[str] = INTERFACE_SERVICES) -> PathResult:
    """Exact egress path analysis for one described subnet (`services`: the interface endpoints it needs)."""
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
    if eps.ok:
        return PathResult(True, "endpoints", f"{subnet_id}: private via VPC endpoints: {', '.join(eps.found)}",
                          endpoints=eps, notes=tuple(eps.notes))
    if hop.kind == "igw" and hop.ok:
        internet = f"public route ({hop.detail}) but no public IPs on launch ({public_ips.reason})"
    elif hop.kind == "nat":
        internet = f"private ({DEFAULT_V4} on {rt['RouteTableId'] if rt else '?'} goes to {hop.target})"
    else:
        internet = f"private ({hop.detail})"
    parts = [internet, nat_detail]
    if eps.missing:
        parts.append(f"VPC endpoints missing: {', '.join(eps.missing)}")
    parts.extend(eps.problems)
    if unseen:
        parts.append(_opaque_hint(unseen))
    return PathResult(False, "none", f"{subnet_id}: " + "; ".join(parts), opaque=bool(unseen), endpoints=eps)


def _leg(data: NetData, leg: Leg, public_ips: PublicIps) -> str:
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

def acl_for(data: NetData, subnet_id: str) -> Doc | None:
    """The network ACL associated with a subnet (every subnet has exactly one), else the VPC's default."""
    for acl in data.network_acls:
        if any(a.get("SubnetId") == subnet_id for a in acl.get("Associations", [])):
            return acl
    vpc = data.subnets.get(subnet_id, {}).get("VpcId")
    return next((a for a in data.network_acls if a.get("VpcId") == vpc and a.get("IsDefault")), None)


def _entry_ports(entry: Doc) -> tuple[int, int] | None:
    """The TCP port range an ACL entry applies to, or None when it is not about TCP."""
    proto = secgroups.protocol(entry.get("Protocol", "-1"))
    if proto == "-1":
        return 0, 65535
    if proto != "tcp":
        return None
    pr = entry.get("PortRange") or {}
    return int(pr.get("From", 0)), int(pr.get("To", 65535))


def _entry_cidr(entry: Doc, version: int) -> str | None:
    cidr = entry.get("CidrBlock") if version == 4 else entry.get("Ipv6CidrBlock")
    return str(cidr) if cidr else None


def acl_allows(entries: Iterable[Doc], *, egress: bool, lo: int, hi: int, cidr: str) -> tuple[bool | None, str]:
    """Are TCP ports lo..hi to (egress) or from (ingress) the addresses of `cidr` allowed? 0.0.0.0/0 and ::/0
    stand for the internet's addresses (a rule for 10.0.0.0/8 or 192.168.0.0/16 is not about the internet).

    As VPC evaluates them: entries in rule-number order, the first that matches a packet (port and address)
    decides, so several Allow rules can together cover the range. True: every such packet is allowed. False: for
    some port every address is denied (named). None: some addresses are denied for some port while others are
    allowed; the denied ranges are named (whether AWS's service addresses are among them is not checked)."""
    world = secgroups.network(cidr)
    space = public_space(cidr)
    ordered = sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: int(e["RuleNumber"]))
    rules: list[tuple[str, str, Net, tuple[int, int]]] = []
    for entry in ordered:
        ports = _entry_ports(entry)
        ecidr = _entry_cidr(entry, world.version)
        if ports is None or ecidr is None:
            continue
        number = "*" if int(entry["RuleNumber"]) == 32767 else str(entry["RuleNumber"])
        rules.append((number, str(entry.get("RuleAction")), secgroups.network(ecidr), ports))
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


def subnet_has_ipv6(subnet: Doc) -> bool:
    """Does the subnet have an IPv6 block? (Any association not on its way out counts: checking more is safe.)"""
    gone = {"disassociating", "disassociated", "failing", "failed"}
    return any(str(a.get("Ipv6CidrBlockState", {}).get("State", "associated")) not in gone
               for a in subnet.get("Ipv6CidrBlockAssociationSet", []))


def acl_problems(data: NetData, subnet_id: str) -> tuple[Doc | None, list[str], list[str], list[str]]:
    """NET005: (acl, problems, undecided, what passed) for outbound 443 and inbound replies to the Linux ephemeral
    ports, IPv4 and (if any) IPv6. Undecided: part of the internet's addresses is denied, the rest allowed."""
    acl = acl_for(data, subnet_id)
    if acl is None:
        return None, [], [], []
    entries = acl.get("Entries", [])
    families = [DEFAULT_V4] + ([DEFAULT_V6] if subnet_has_ipv6(data.subnets.get(subnet_id, {})) else [])
    problems: list[str] = []
    undecided: list[str] = []
    good: list[str] = []
    for world in families:
        lo_e, hi_e = EPHEMERAL
        for egress, lo, hi, label in ((True, 443, 443, "outbound 443"),
                                      (False, lo_e, hi_e, f"inbound {lo_e}-{hi_e} (ephemeral)")):
            ok, why = acl_allows(entries, egress=egress, lo=lo, hi=hi, cidr=world)
            text = f"{label} {'to' if egress else 'from'} {world}: {why}"
            (good if ok else problems if ok is False else undecided).append(text)
    return acl, problems, undecided, good


def is_ipv4(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).version == 4
    except ValueError:
        return False
