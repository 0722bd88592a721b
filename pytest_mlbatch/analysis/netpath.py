"""NET003/NET005 path analysis as pure functions over described EC2 data: routes, NAT, endpoints, network ACLs."""

from __future__ import annotations

import ipaddress
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
    if rt is None:
        return None
    key = "DestinationCidrBlock" if ":" not in cidr else "DestinationIpv6CidrBlock"
    return next((r for r in rt.get("Routes", []) if r.get(key) == cidr), None)


@dataclass(frozen=True)
class Hop:
    """Where a subnet's 0.0.0.0/0 goes: kind igw | nat | opaque | none | blackhole, and whether it works."""

    kind: str
    target: str
    ok: bool
    detail: str


def route_target(data: NetData, subnet_id: str, vpc_id: str | None = None) -> tuple[Doc | None, str, Hop]:
    """The applicable table, how it applies, and what its IPv4 default route reaches (state derived, not trusted)."""
    rt, how = data.route_table(subnet_id, vpc_id)
    if rt is None:
        return None, how, Hop("none", "", False, "no route table applies")
    rid = rt["RouteTableId"]
    route = default_route(rt)
    vpc = data.subnets.get(subnet_id, {}).get("VpcId", vpc_id or "")
    if route is None:
        return rt, how, Hop("none", "", False, f"route table {rid} has no {DEFAULT_V4} route")
    if route.get("State") == "blackhole":
        target = _target_id(route)
        return rt, how, Hop("blackhole", target, False, f"{DEFAULT_V4} on {rid} is a blackhole ({target} is gone)")
    gateway = str(route.get("GatewayId") or "")
    if gateway.startswith("igw-"):
        if gateway in data.attached_igws(vpc):
            return rt, how, Hop("igw", gateway, True, f"route table {rid} ({how}) sends {DEFAULT_V4} to {gateway}")
        known = any(g["InternetGatewayId"] == gateway for g in data.internet_gateways)
        why = "is not attached to" if known else "does not exist or is not attached to"
        return rt, how, Hop("igw", gateway, False, f"{DEFAULT_V4} on {rid} goes to {gateway}, which {why} {vpc}")
    nat = str(route.get("NatGatewayId") or "")
    if nat:
        return rt, how, Hop("nat", nat, True, f"route table {rid} ({how}) sends {DEFAULT_V4} to {nat}")
    for key, label in OPAQUE_TARGETS.items():
        if route.get(key):
            return rt, how, Hop("opaque", str(route[key]), False, f"{DEFAULT_V4} on {rid} goes to {label} "
                                f"{route[key]}; what lies beyond it cannot be verified from this VPC")
    if gateway.startswith("vpce-"):
        return rt, how, Hop("opaque", gateway, False, f"{DEFAULT_V4} on {rid} goes to endpoint {gateway} (a "
                            "firewall or load balancer); what lies beyond it cannot be verified from this VPC")
    target = _target_id(route) or "an unknown target"
    return rt, how, Hop("opaque", target, False, f"{DEFAULT_V4} on {rid} goes to {target}")


def _target_id(route: Doc) -> str:
    for key in ("GatewayId", "NatGatewayId", *OPAQUE_TARGETS, "EgressOnlyInternetGatewayId"):
        if route.get(key):
            return str(route[key])
    return ""


def public_route(data: NetData, subnet_id: str, vpc_id: str | None = None) -> tuple[bool, str]:
    """Does the subnet's table send 0.0.0.0/0 to an internet gateway attached to its VPC?"""
    _, _, hop = route_target(data, subnet_id, vpc_id)
    return hop.kind == "igw" and hop.ok, hop.detail


def nat_usable(data: NetData, nat_id: str) -> tuple[bool, str]:
    """A NAT gateway works when it is available, public, has an address, and sits in a subnet with a public route."""
    nat = data.nat_gateways.get(nat_id)
    if nat is None:
        return False, f"NAT gateway {nat_id} does not exist (the route is a blackhole)"
    state = str(nat.get("State", "?"))
    if state in NAT_GONE:
        return False, f"NAT gateway {nat_id} is {state} (the route is a blackhole)"
    if state != "available":
        return False, f"NAT gateway {nat_id} is {state}, not available"
    if nat.get("ConnectivityType", "public") == "private":
        return False, f"NAT gateway {nat_id} is a private NAT gateway (no internet access)"
    addresses = [a.get("PublicIp") for a in nat.get("NatGatewayAddresses", []) if a.get("PublicIp")]
    if not addresses:
        return False, f"NAT gateway {nat_id} has no public address"
    where = str(nat.get("SubnetId", ""))
    # the NAT gateway's subnet is in its VPC; that subnet's table decides even if the subnet was not described
    ok, detail = public_route(data, where, nat.get("VpcId"))
    if not ok:
        return False, f"NAT gateway {nat_id} sits in {where}, which has no public route ({detail})"
    return True, f"NAT gateway {nat_id} (available, {addresses[0]}) in public subnet {where}"


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
    """What the endpoint path has and lacks for one subnet."""

    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    s3_prefix_lists: list[str] = field(default_factory=list)
    interface_groups: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def endpoint_path(data: NetData, subnet_id: str, rt: Doc | None, instance_groups: Sequence[str],
                  services: Sequence[str] = INTERFACE_SERVICES) -> EndpointReport:
    """Check the interface endpoints (private DNS, in the VPC, covering the subnet's AZ, 443 admitted from the
    subnet) and the S3 gateway endpoint (on the subnet's route table)."""
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
        reasons: list[str] = []
        for ep in candidates:
            why = _interface_problem(data, ep, az, cidr, instance_groups)
            if why is None:
                report.found.append(f"{svc} ({ep['VpcEndpointId']})")
                report.interface_groups.extend(g["GroupId"] for g in ep.get("Groups", []))
                break
            reasons.append(f"{svc} endpoint {ep['VpcEndpointId']} {why}")
        else:
            report.problems.append(reasons[0])
    for svc in GATEWAY_SERVICES:
        gateways = [e for e in by_service.get(svc, []) if e.get("VpcEndpointType") == "Gateway"]
        rid = rt["RouteTableId"] if rt else None
        good = [e for e in gateways if rid in e.get("RouteTableIds", []) and _available(e)]
        if good:
            report.found.append(f"{svc} gateway ({good[0]['VpcEndpointId']}) on {rid}")
            for e in good:
                report.s3_prefix_lists.extend(data.prefix_list_of(e["VpcEndpointId"]))
        elif gateways:
            report.problems.append(f"{svc} gateway endpoint {gateways[0]['VpcEndpointId']} is not on route table "
                                   f"{rid}" if _available(gateways[0]) else
                                   f"{svc} gateway endpoint {gateways[0]['VpcEndpointId']} is "
                                   f"{gateways[0].get('State')}")
        else:
            report.missing.append(svc)
    return report


def _available(ep: Doc) -> bool:
    return str(ep.get("State", "")).lower() == "available"


def _interface_problem(data: NetData, ep: Doc, az: str | None, cidr: str | None,
                       instance_groups: Sequence[str]) -> str | None:
    if not _available(ep):
        return f"is {ep.get('State')}"
    if not ep.get("PrivateDnsEnabled"):
        return "has private DNS off (the default service names would not resolve to it)"
    zones = data.endpoint_zones.get(str(ep.get("VpcEndpointId")), {})
    if az not in zones:
        return f"has no interface in {az} (it covers {', '.join(sorted(zones)) or 'no zone'})"
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
        if svc not in services or ep.get("VpcId") != subnet.get("VpcId") or ep.get("VpcEndpointType") != "Interface":
            continue
        if not (_available(ep) and ep.get("PrivateDnsEnabled")):
            continue
        why = _admission_problem(data, ep, subnet.get("CidrBlock"), instance_groups)
        if why:
            out.append(f"{svc} endpoint {ep['VpcEndpointId']} (private DNS, so it receives the {svc} traffic) {why}")
    return out


@dataclass(frozen=True)
class PathResult:
    """NET003's verdict for one subnet: ok and the path found, or each path's lack; opaque when unverifiable."""

    ok: bool
    path: str
    message: str
    opaque: bool = False
    endpoints: EndpointReport | None = None


def analyze(data: NetData, subnet_id: str, public_ips: PublicIps, instance_groups: Sequence[str] = (),
            services: Sequence[str] = INTERFACE_SERVICES) -> PathResult:
    """Exact egress path analysis for one described subnet (`services`: the interface endpoints it needs)."""
    rt, _how, hop = route_target(data, subnet_id)
    eps = endpoint_path(data, subnet_id, rt, instance_groups, services)
    captured = captured_by_endpoints(data, subnet_id, instance_groups, services)
    found: tuple[str, str] | None = None
    if hop.kind == "igw" and hop.ok and public_ips.enabled:
        found = "internet", f"public: {hop.detail}; {public_ips.reason}"
    if hop.kind == "nat":
        nat_ok, nat_detail = nat_usable(data, hop.target)
        if nat_ok:
            found = "nat", f"private via NAT: {hop.detail}; {nat_detail}"
    else:
        nat_detail = "no NAT"
    if found is not None:
        if captured:
            return PathResult(False, "none", f"{subnet_id}: {found[1]}; but " + "; ".join(captured), endpoints=eps)
        return PathResult(True, found[0], f"{subnet_id}: {found[1]}", endpoints=eps)
    if eps.ok:
        return PathResult(True, "endpoints", f"{subnet_id}: private via VPC endpoints: {', '.join(eps.found)}",
                          endpoints=eps)
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
    return PathResult(False, "none", f"{subnet_id}: " + "; ".join(parts), opaque=hop.kind == "opaque",
                      endpoints=eps)


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


def acl_allows(entries: Iterable[Doc], *, egress: bool, lo: int, hi: int, cidr: str) -> tuple[bool, str]:
    """Are TCP ports lo..hi to (egress) or from (ingress) every address of `cidr` allowed?

    Entries are evaluated in rule-number order, first match wins, per port. An allow counts only when its CIDR
    covers `cidr` entirely; a deny counts when its CIDR overlaps `cidr` (part of the destinations is cut off)."""
    version = secgroups.network(cidr).version
    want = secgroups.network(cidr)
    ordered = sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: int(e["RuleNumber"]))
    open_ranges: list[tuple[int, int]] = [(lo, hi)]
    allowed_by: list[str] = []
    for entry in ordered:
        ports = _entry_ports(entry)
        ecidr = _entry_cidr(entry, version)
        if ports is None or ecidr is None:
            continue
        enet = secgroups.network(ecidr)
        if not enet.overlaps(want):
            continue
        hit = [(max(a, ports[0]), min(b, ports[1])) for a, b in open_ranges if max(a, ports[0]) <= min(b, ports[1])]
        if not hit:
            continue
        number = "*" if int(entry["RuleNumber"]) == 32767 else str(entry["RuleNumber"])
        if entry.get("RuleAction") == "deny":
            span = ", ".join(_span(a, b) for a, b in hit)
            return False, f"rule {number} denies tcp/{span} {'to' if egress else 'from'} {ecidr}"
        if not want.subnet_of(enet):  # type: ignore[arg-type]
            continue  # allows only part of the addresses: does not decide for all of them
        allowed_by.append(number)
        open_ranges = _subtract(open_ranges, ports)
        if not open_ranges:
            return True, f"allowed by rule {', '.join(allowed_by)}"
    span = ", ".join(_span(a, b) for a, b in open_ranges)
    return False, f"no rule allows tcp/{span} {'to' if egress else 'from'} {cidr}"


def _span(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}-{b}"


def _subtract(ranges: list[tuple[int, int]], cut: tuple[int, int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if cut[1] < a or cut[0] > b:
            out.append((a, b))
            continue
        if a < cut[0]:
            out.append((a, cut[0] - 1))
        if cut[1] < b:
            out.append((cut[1] + 1, b))
    return out


def subnet_has_ipv6(subnet: Doc) -> bool:
    """Does the subnet have an IPv6 block? (Any association not on its way out counts: checking more is safe.)"""
    gone = {"disassociating", "disassociated", "failing", "failed"}
    return any(str(a.get("Ipv6CidrBlockState", {}).get("State", "associated")) not in gone
               for a in subnet.get("Ipv6CidrBlockAssociationSet", []))


def acl_problems(data: NetData, subnet_id: str) -> tuple[Doc | None, list[str], list[str]]:
    """NET005: (acl, problems, what passed) for outbound 443 and inbound 1024-65535, IPv4 and (if any) IPv6."""
    acl = acl_for(data, subnet_id)
    if acl is None:
        return None, [], []
    entries = acl.get("Entries", [])
    families = [DEFAULT_V4] + ([DEFAULT_V6] if subnet_has_ipv6(data.subnets.get(subnet_id, {})) else [])
    problems: list[str] = []
    good: list[str] = []
    for world in families:
        for egress, lo, hi, label in ((True, 443, 443, "outbound 443"), (False, 1024, 65535, "inbound 1024-65535")):
            ok, why = acl_allows(entries, egress=egress, lo=lo, hi=hi, cidr=world)
            (good if ok else problems).append(f"{label} {'to' if egress else 'from'} {world}: {why}")
    return acl, problems, good


def is_ipv4(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).version == 4
    except ValueError:
        return False
