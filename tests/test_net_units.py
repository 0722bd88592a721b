"""Pure functions of netpath (network ACL evaluation) and secgroups (rule matching), on described data."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlbatch.analysis import secgroups
from pytest_mlbatch.analysis.netpath import (
    AclEntry,
    PublicIps,
    acl_allows,
    acl_hops,
    analyze,
    nat_usable,
    route_target,
    service_of,
)
from pytest_mlbatch.aws import network as build
from pytest_mlbatch.aws.reads import NetData
from pytest_mlbatch.config import Rule
from pytest_mlbatch.model.network import Network


def typed(data: NetData, trusted: frozenset[str] = frozenset()) -> Network:
    """Described data (the API's shapes) as the typed network the analysis takes."""
    from dataclasses import replace
    return replace(build.from_docs(data), trusted_egress=trusted)


def entry_doc(n: int, action: str, *, egress: bool, proto: str = "6", ports: tuple[int, int] | None = None,
              cidr: str = "0.0.0.0/0") -> dict[str, Any]:
    e: dict[str, Any] = {"RuleNumber": n, "RuleAction": action, "Egress": egress, "Protocol": proto}
    e["Ipv6CidrBlock" if ":" in cidr else "CidrBlock"] = cidr
    if ports:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    return e


def entry(n: int, action: str, *, egress: bool, proto: str = "6", ports: tuple[int, int] | None = None,
          cidr: str = "0.0.0.0/0") -> AclEntry:
    return build.acl_entry(entry_doc(n, action, egress=egress, proto=proto, ports=ports, cidr=cidr))


DEFAULT_DOCS = [entry_doc(100, "allow", egress=True, proto="-1"), entry_doc(32767, "deny", egress=True, proto="-1"),
                entry_doc(100, "allow", egress=False, proto="-1"), entry_doc(32767, "deny", egress=False, proto="-1")]
DEFAULT = [entry(100, "allow", egress=True, proto="-1"), entry(32767, "deny", egress=True, proto="-1"),
           entry(100, "allow", egress=False, proto="-1"), entry(32767, "deny", egress=False, proto="-1")]


def test_acl_default_allows_both_directions() -> None:
    assert acl_allows(DEFAULT, egress=True, lo=443, hi=443, cidr="0.0.0.0/0") == (True, "allowed by rule 100")
    assert acl_allows(DEFAULT, egress=False, lo=1024, hi=65535, cidr="0.0.0.0/0")[0]


def test_acl_rule_order_decides() -> None:
    entries = [entry(90, "deny", egress=True, ports=(443, 443)), *DEFAULT]
    assert acl_allows(entries, egress=True, lo=443, hi=443, cidr="0.0.0.0/0") == \
        (False, "rule 90 denies tcp/443 to 0.0.0.0/0")
    entries = [entry(110, "deny", egress=True, ports=(443, 443)), *DEFAULT]  # after the allow: no effect
    assert acl_allows(entries, egress=True, lo=443, hi=443, cidr="0.0.0.0/0")[0]


def test_acl_port_ranges_are_combined() -> None:
    entries = [entry(10, "allow", egress=False, ports=(1024, 30000)), entry(20, "allow", egress=False,
                                                                            ports=(30001, 65535)),
               entry(32767, "deny", egress=False, proto="-1")]
    assert acl_allows(entries, egress=False, lo=1024, hi=65535, cidr="0.0.0.0/0") == (True, "allowed by rule 10, 20")
    entries[1] = entry(20, "allow", egress=False, ports=(32768, 65535))
    assert acl_allows(entries, egress=False, lo=1024, hi=65535, cidr="0.0.0.0/0") == \
        (False, "rule * denies tcp/30001-32767 from 0.0.0.0/0")


def test_acl_allow_of_private_addresses_only_does_not_reach_the_internet() -> None:
    entries = [entry(10, "allow", egress=True, ports=(443, 443), cidr="10.0.0.0/8"),
               entry(32767, "deny", egress=True, proto="-1")]
    assert acl_allows(entries, egress=True, lo=443, hi=443, cidr="0.0.0.0/0") == \
        (False, "rule * denies tcp/443 to 0.0.0.0/0")


def test_acl_first_match_over_address_ranges() -> None:
    """A Deny for private addresses, or for inbound 3389, does not block HTTPS to the internet."""
    entries = [entry(10, "deny", egress=True, proto="-1", cidr="192.168.0.0/16"),
               entry(20, "deny", egress=False, ports=(3389, 3389)), *DEFAULT]
    assert acl_allows(entries, egress=True, lo=443, hi=443, cidr="0.0.0.0/0") == (True, "allowed by rule 100")
    assert acl_allows(entries, egress=False, lo=1024, hi=65535, cidr="0.0.0.0/0") == \
        (False, "rule 20 denies tcp/3389 from 0.0.0.0/0")  # 3389 is an ephemeral port too: a real cut
    entries = [entry(20, "deny", egress=False, ports=(22, 22)), *DEFAULT]
    assert acl_allows(entries, egress=False, lo=1024, hi=65535, cidr="0.0.0.0/0")[0] is True


def test_acl_partial_allows_combine() -> None:
    halves = [entry(10, "allow", egress=True, ports=(443, 443), cidr="0.0.0.0/1"),
              entry(20, "allow", egress=True, ports=(443, 443), cidr="128.0.0.0/1"),
              entry(32767, "deny", egress=True, proto="-1")]
    assert acl_allows(halves, egress=True, lo=443, hi=443, cidr="0.0.0.0/0") == (True, "allowed by rule 10, 20")
    # only public ranges matter: allowing all but the private blocks is enough
    public = [entry(n, "allow", egress=True, ports=(443, 443), cidr=c) for n, c in
              ((1, "1.0.0.0/8"), (2, "2.0.0.0/7"), (3, "4.0.0.0/6"), (4, "8.0.0.0/7"), (5, "11.0.0.0/8"),
               (6, "12.0.0.0/6"), (7, "16.0.0.0/4"), (8, "32.0.0.0/3"), (9, "64.0.0.0/2"), (10, "128.0.0.0/1"))]
    assert acl_allows([*public, entry(32767, "deny", egress=True, proto="-1")], egress=True, lo=443, hi=443,
                      cidr="0.0.0.0/0")[0] is True


def test_acl_deny_of_part_of_the_internet_is_named_not_passed() -> None:
    entries = [entry(10, "deny", egress=True, ports=(443, 443), cidr="52.0.0.0/8"), *DEFAULT]
    ok, why = acl_allows(entries, egress=True, lo=443, hi=443, cidr="0.0.0.0/0")
    assert ok is None
    assert why.startswith("rule 10 denies tcp/443 to 52.0.0.0/8 (other addresses are allowed by rule 100; whether "
                          "ECS, ECR and S3 addresses fall in the denied part is not checked)")


def test_acl_ipv6_is_separate() -> None:
    assert acl_allows(DEFAULT, egress=True, lo=443, hi=443, cidr="::/0") == (False, "no rule allows tcp/443 to ::/0")
    v6 = [entry(101, "allow", egress=True, proto="-1", cidr="::/0"), *DEFAULT]
    assert acl_allows(v6, egress=True, lo=443, hi=443, cidr="::/0")[0]
    udp_only = [entry(5, "allow", egress=True, proto="17", cidr="::/0")]
    assert not acl_allows(udp_only, egress=True, lo=443, hi=443, cidr="::/0")[0]


def test_acl_hops_check_ipv6_only_when_the_subnet_has_it() -> None:
    data = NetData("us-east-1", subnets={"subnet-1": {"SubnetId": "subnet-1", "VpcId": "vpc-1"}},
                   network_acls=[{"NetworkAclId": "acl-1", "VpcId": "vpc-1", "IsDefault": True, "Entries": DEFAULT_DOCS,
                                  "Associations": []}])
    [own] = acl_hops(typed(data), "subnet-1")
    assert own.acl is not None and own.acl.id == "acl-1" and own.problems == []
    data.subnets["subnet-1"]["Ipv6CidrBlockAssociationSet"] = [
        {"Ipv6CidrBlock": "2600::/64", "Ipv6CidrBlockState": {"State": "associated"}}]
    [own] = acl_hops(typed(data), "subnet-1")
    assert own.problems == ["outbound 443 to ::/0: no rule allows tcp/443 to ::/0",
                            "inbound 32768-60999 (ephemeral) from ::/0: no rule allows tcp/32768-60999 from ::/0"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.booleans(), st.integers(0, 70), st.integers(0, 70)),
                max_size=6), st.integers(0, 70), st.integers(0, 70))
def test_acl_matches_per_port_first_match(rules: list[tuple[int, bool, int, int]], a: int, b: int) -> None:
    """Against a brute-force oracle: every port in lo..hi is decided by the first matching rule."""
    lo, hi = min(a, b), max(a, b)
    seen: set[int] = set()
    entries = []
    for n, allow, p, q in rules:
        if n in seen:
            continue
        seen.add(n)
        entries.append(entry(n, "allow" if allow else "deny", egress=True, ports=(min(p, q), max(p, q))))
    entries.append(entry(32767, "deny", egress=True, proto="-1"))

    def port_ok(port: int) -> bool:
        for e in sorted(entries, key=lambda e: e.number):
            pr = e.ports or (0, 65535)
            if pr[0] <= port <= pr[1]:
                return e.action == "allow"
        return False

    assert acl_allows(entries, egress=True, lo=lo, hi=hi, cidr="0.0.0.0/0")[0] == \
        all(port_ok(p) for p in range(lo, hi + 1))


def test_route_target_prefers_explicit_association_and_derives_states() -> None:
    data = NetData("us-east-1", subnets={"s-1": {"SubnetId": "s-1", "VpcId": "vpc-1"},
                                         "s-2": {"SubnetId": "s-2", "VpcId": "vpc-1"}},
                   route_tables=[
                       {"RouteTableId": "rtb-main", "VpcId": "vpc-1", "Associations": [{"Main": True}],
                        "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}]},
                       {"RouteTableId": "rtb-1", "VpcId": "vpc-1", "Associations": [{"SubnetId": "s-1"}],
                        "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1",
                                    "State": "blackhole"}]}],
                   internet_gateways=[{"InternetGatewayId": "igw-1", "Attachments": [
                       {"VpcId": "vpc-1", "State": "attached"}]}])
    rt, how, hop = route_target(typed(data), "s-1")
    assert rt is not None and rt.id == "rtb-1" and how == "explicitly associated"
    assert hop.kind == "blackhole" and hop.detail == "0.0.0.0/0 on rtb-1 is a blackhole (nat-1 is gone)"
    rt, how, hop = route_target(typed(data), "s-2")
    assert how == "main" and hop.kind == "igw" and hop.ok


# -- security groups --------------------------------------------------------------------------------------

def perm(proto: str, lo: int | None = None, hi: int | None = None, **peer: Any) -> secgroups.Permission:
    return build.permission(perm_doc(proto, lo, hi, **peer))


def perm_doc(proto: str, lo: int | None = None, hi: int | None = None, **peer: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"IpProtocol": proto, "IpRanges": [], "Ipv6Ranges": [], "UserIdGroupPairs": [],
                         "PrefixListIds": []}
    if lo is not None:
        p["FromPort"], p["ToPort"] = lo, hi if hi is not None else lo
    if "cidr" in peer:
        p["IpRanges"] = [{"CidrIp": peer["cidr"]}]
    if "cidr6" in peer:
        p["Ipv6Ranges"] = [{"CidrIpv6": peer["cidr6"]}]
    if "group" in peer:
        p["UserIdGroupPairs"] = [{"GroupId": peer["group"]}]
    if "prefix" in peer:
        p["PrefixListIds"] = [{"PrefixListId": peer["prefix"]}]
    return p


def test_allows_ranges_all_protocols_and_peers() -> None:
    assert secgroups.allows([perm("tcp", 0, 65535, cidr="0.0.0.0/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert secgroups.allows([perm("-1", cidr="0.0.0.0/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert secgroups.allows([perm("6", 443, cidr="0.0.0.0/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert not secgroups.allows([perm("udp", 443, cidr="0.0.0.0/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert not secgroups.allows([perm("tcp", 80, cidr="0.0.0.0/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert not secgroups.allows([perm("tcp", 443, cidr="10.0.0.0/8")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert secgroups.allows([perm("tcp", 443, cidr="10.0.0.0/8")], "tcp", 443, 443, cidr="10.1.2.0/24")
    assert not secgroups.allows([perm("tcp", 443, cidr6="::/0")], "tcp", 443, 443, cidr="0.0.0.0/0")
    assert secgroups.allows([perm("tcp", 443, group="sg-1")], "tcp", 443, 443, groups=["sg-1"])
    assert not secgroups.allows([perm("tcp", 443, group="sg-1")], "tcp", 443, 443, groups=["sg-2"])
    assert secgroups.allows([perm("tcp", 443, prefix="pl-1")], "tcp", 443, 443, prefix_lists=["pl-1"])


def test_world_admin_ports() -> None:
    assert secgroups.world_admin_ports([perm("tcp", 22, cidr="0.0.0.0/0")]) == ["SSH (tcp/22) from 0.0.0.0/0"]
    assert secgroups.world_admin_ports([perm("tcp", 22, cidr="203.0.113.7/32")]) == []
    assert secgroups.world_admin_ports([perm("-1", cidr6="::/0")]) == ["SSH (all traffic) from ::/0",
                                                                       "RDP (all traffic) from ::/0"]
    assert secgroups.world_admin_ports([perm("tcp", 3000, 4000, cidr="0.0.0.0/0")]) == \
        ["RDP (tcp/3000-4000) from 0.0.0.0/0"]
    assert secgroups.world_admin_ports([perm("udp", 22, cidr="0.0.0.0/0")]) == []


def test_rule_present_and_refusals() -> None:
    ssh = Rule("tcp", 22, 22, cidr="203.0.113.7/32")
    assert secgroups.rule_present([perm("tcp", 22, cidr="203.0.113.0/24")], ssh)
    assert not secgroups.rule_present([perm("tcp", 22, cidr6="::/0")], ssh)
    assert not secgroups.rule_present([perm("tcp", 23, cidr="203.0.113.7/32")], ssh)
    nodes = Rule("-1", -1, -1, source_security_group="sg-1")
    assert secgroups.rule_present([perm("-1", group="sg-1")], nodes)
    assert not secgroups.rule_present([perm("tcp", 0, 65535, group="sg-1")], nodes)
    assert secgroups.rule_present([perm("tcp", 443, prefix="pl-9")], Rule("tcp", 443, 443, prefix_list_id="pl-9"))
    assert secgroups.rule_opens_admin_to_world(Rule("tcp", 22, 22, cidr="0.0.0.0/0")) is not None
    assert secgroups.rule_opens_admin_to_world(Rule("tcp", 1, 1000, cidr_ipv6="::/0")) is not None
    assert secgroups.rule_opens_admin_to_world(Rule("tcp", 22, 22, cidr="203.0.113.7/32")) is None
    assert secgroups.rule_opens_admin_to_world(Rule("tcp", 443, 443, cidr="0.0.0.0/0")) is None
    assert secgroups.ip_permission(Rule("tcp", 80, 90, cidr_ipv6="2600::/64", description="web")) == {
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 90, "Ipv6Ranges": [{"CidrIpv6": "2600::/64",
                                                                           "Description": "web"}]}


def _nat_world(**nat: Any) -> NetData:
    doc = {"NatGatewayId": "nat-1", "VpcId": "vpc-1", "SubnetId": "s-pub", "State": "available",
           "NatGatewayAddresses": [{"PublicIp": "198.51.100.7"}], **nat}
    return NetData("us-east-1", subnets={"s-pub": {"SubnetId": "s-pub", "VpcId": "vpc-1"}},
                   route_tables=[{"RouteTableId": "rtb-pub", "VpcId": "vpc-1", "Associations": [{"SubnetId": "s-pub"}],
                                  "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1",
                                              "State": "active"}]}],
                   internet_gateways=[{"InternetGatewayId": "igw-1", "Attachments": [
                       {"VpcId": "vpc-1", "State": "available"}]}],
                   nat_gateways={"nat-1": doc})


def test_nat_usable_states() -> None:
    assert nat_usable(typed(_nat_world()), "nat-1") == (True, "NAT gateway nat-1 (available, 198.51.100.7) in public "
                                                       "subnet s-pub")
    assert nat_usable(typed(_nat_world(State="pending")), "nat-1") == \
        (False, "NAT gateway nat-1 is pending, not available")
    assert nat_usable(typed(_nat_world(State="failed")), "nat-1")[1] == \
        "NAT gateway nat-1 is failed (the route is a blackhole)"
    assert nat_usable(typed(_nat_world(NatGatewayAddresses=[])), "nat-1") == \
        (False, "NAT gateway nat-1 has no public address")
    assert nat_usable(typed(_nat_world(ConnectivityType="private")), "nat-1")[1] == \
        "NAT gateway nat-1 is a private NAT gateway (no internet access)"
    assert nat_usable(typed(_nat_world()), "nat-2") == (False, "NAT gateway nat-2 does not exist (the route is a "
                                                               "blackhole)")
    # its subnet's table is not described as a subnet, yet found through the VPC and association
    world = _nat_world(SubnetId="s-other")
    assert nat_usable(typed(world), "nat-1")[1] == ("NAT gateway nat-1 sits in s-other, which has no public route "
                                                    "(no route table applies)")


def test_opaque_targets_and_endpoint_names() -> None:
    data = _nat_world()
    data.route_tables[0]["Routes"] = [{"DestinationCidrBlock": "0.0.0.0/0", "VpcPeeringConnectionId": "pcx-1",
                                       "State": "active"}]
    result = analyze(typed(data), "s-pub", PublicIps(True, "on"))
    assert not result.ok and result.opaque
    assert "goes to VPC peering connection pcx-1; cannot verify beyond VPC peering connection pcx-1" in result.message
    assert result.message.endswith("cannot verify beyond pcx-1: declare it in network.trusted_egress once you have "
                                   "checked that it reaches the internet or the AWS service endpoints")
    result = analyze(typed(data, frozenset({"pcx-1"})), "s-pub", PublicIps(True, "on"))
    assert result.ok and result.path == "trusted"
    assert result.notes == ("pcx-1 is declared trusted egress (network.trusted_egress): not verified beyond it",)
    assert service_of("com.amazonaws.us-east-1.ecr.dkr", "us-east-1") == "ecr.dkr"
    assert service_of("cn.com.amazonaws.cn-north-1.ecr.api", "cn-north-1") == "ecr.api"
    assert service_of("com.amazonaws.us-west-2.ecs", "us-east-1") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tcp", "6", "udp", "-1"]), st.integers(0, 40), st.integers(0, 40),
                          st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "::/0"])), max_size=5),
       st.integers(0, 40), st.integers(0, 40), st.sampled_from(["0.0.0.0/0", "10.1.2.0/24", "192.168.0.0/16"]))
def test_allows_matches_a_per_port_model(rules: list[tuple[str, int, int, str]], a: int, b: int, want: str) -> None:
    """allows(): some one permission must cover every port of lo..hi (tcp) and the whole wanted CIDR."""
    import ipaddress

    lo, hi = min(a, b), max(a, b)
    perms = [perm(p, min(x, y), max(x, y), **({"cidr6": c} if ":" in c else {"cidr": c})) for p, x, y, c in rules]

    def covers(p: tuple[str, int, int, str]) -> bool:
        proto, x, y, cidr = p
        net, w = ipaddress.ip_network(cidr), ipaddress.ip_network(want)
        ports = proto == "-1" or (proto in ("tcp", "6") and all(min(x, y) <= q <= max(x, y)
                                                                  for q in range(lo, hi + 1)))
        return ports and net.version == w.version and w.subnet_of(net)  # type: ignore[arg-type]

    assert bool(secgroups.allows(perms, "tcp", lo, hi, cidr=want)) == any(covers(r) for r in rules)


# -- longest-prefix match ----------------------------------------------------------------------------------
def _routes_world(*routes: dict[str, Any]) -> NetData:
    data = _nat_world()
    data.subnets["s-app"] = {"SubnetId": "s-app", "VpcId": "vpc-1"}
    data.route_tables.append({"RouteTableId": "rtb-app", "VpcId": "vpc-1", "Associations": [{"SubnetId": "s-app"}],
                              "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local",
                                          "State": "active"}, *routes]})
    return data


def route(cidr: str, **target: str) -> dict[str, Any]:
    return {"DestinationCidrBlock": cidr, "State": "active", **target}


def test_two_halves_are_a_default_route() -> None:
    data = _routes_world(route("0.0.0.0/1", NatGatewayId="nat-1"), route("128.0.0.0/1", NatGatewayId="nat-1"))
    _, _, hop = route_target(typed(data), "s-app")
    assert (hop.kind, hop.target, hop.elsewhere) == ("nat", "nat-1", ())
    assert hop.detail == "route table rtb-app (explicitly associated) sends 0.0.0.0/1, 128.0.0.0/1 to nat-1"
    assert analyze(typed(data), "s-app", PublicIps(False, "off")).ok


def test_private_ranges_elsewhere_do_not_matter() -> None:
    data = _routes_world(route("0.0.0.0/0", NatGatewayId="nat-1"), route("10.0.0.0/8", TransitGatewayId="tgw-1"),
                         route("192.168.0.0/16", State="blackhole", NatGatewayId="nat-9"))
    result = analyze(typed(data), "s-app", PublicIps(False, "off"))
    assert result.ok and result.notes == ()


def test_more_specific_public_route_elsewhere_is_named_never_passed_silently() -> None:
    data = _routes_world(route("0.0.0.0/0", NatGatewayId="nat-1"),
                         {**route("52.0.0.0/8", NatGatewayId="nat-9"), "State": "blackhole"})
    result = analyze(typed(data), "s-app", PublicIps(False, "off"))
    assert not result.ok and result.opaque
    assert "but part of the public address space goes elsewhere: 52.0.0.0/8 does not follow it: 52.0.0.0/8 on " \
           "rtb-app is a blackhole (nat-9 is gone)" in result.message
    data = _routes_world(route("0.0.0.0/0", NatGatewayId="nat-1"), route("3.0.0.0/8", TransitGatewayId="tgw-1"))
    result = analyze(typed(data), "s-app", PublicIps(False, "off"))
    assert not result.ok and result.opaque and result.message.endswith(
        "cannot verify beyond tgw-1: declare it in network.trusted_egress once you have checked that it reaches "
        "the internet or the AWS service endpoints")
    result = analyze(typed(data, frozenset({"tgw-1"})), "s-app", PublicIps(False, "off"))
    assert result.ok and result.notes == ("3.0.0.0/8 goes to declared trusted egress tgw-1: 3.0.0.0/8 on rtb-app "
                                          "goes to transit gateway tgw-1; cannot verify beyond transit gateway "
                                          "tgw-1 from this VPC",)
    # half of the address space with no route at all
    data = _routes_world(route("0.0.0.0/1", NatGatewayId="nat-1"))
    result = analyze(typed(data), "s-app", PublicIps(False, "off"))
    assert not result.ok and "128.0.0.0/1: no route on rtb-app" in result.message


def test_nat_behind_a_firewall_endpoint_is_unverifiable_until_trusted() -> None:
    data = _routes_world(route("0.0.0.0/0", NatGatewayId="nat-1"))
    data.route_tables[0]["Routes"] = [route("0.0.0.0/0", GatewayId="vpce-0fw")]  # the NAT's subnet -> firewall
    result = analyze(typed(data), "s-app", PublicIps(False, "off"))
    assert not result.ok and result.opaque
    assert "NAT gateway nat-1 (available, 198.51.100.7) in s-pub, whose 0.0.0.0/0 on rtb-pub goes to endpoint " \
           "vpce-0fw (a Gateway Load Balancer or AWS Network Firewall endpoint)" in result.message
    assert "cannot verify beyond vpce-0fw: declare it in network.trusted_egress" in result.message
    result = analyze(typed(data, frozenset({"vpce-0fw"})), "s-app", PublicIps(False, "off"))
    assert result.ok and result.path == "nat"
    assert result.notes == ("vpce-0fw is declared trusted egress (network.trusted_egress): not verified beyond it",)


# -- issue 14: destinations from the job, endpoint policies, ACLs on every hop (plain values) ----------------
def test_job_needs_follow_the_image_secrets_and_logs() -> None:
    from pytest_mlbatch.analysis.imageref import parse
    from pytest_mlbatch.analysis.netpath import job_needs

    ecr = parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml:1")
    needs = job_needs("us-east-1", "fargate", image=ecr)
    assert needs.services == ("ecr.api", "ecr.dkr") and needs.internet_only == ()
    needs = job_needs("us-east-1", "ec2", image=parse("python:3.12"), log_driver="awslogs",
                      secrets=[("ssm", "/ml/token")], repository_credentials="arn:aws:secretsmanager:us-east-1:1:x")
    assert needs.services == ("ecs", "ecs-agent", "ecs-telemetry", "ssm", "secretsmanager", "logs")
    assert needs.internet_only == ("the image's registry docker.io (not ECR: no VPC endpoint reaches it)",)
    other = job_needs("us-east-1", "fargate", image=parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml:1"),
                      log_driver="awslogs", log_region="eu-west-1")
    assert other.services == () and len(other.internet_only) == 2


def _policy_world(policy_doc: str | None) -> Network:
    data = _nat_world()
    data.route_tables[0]["Associations"].append({"SubnetId": "s-app"})
    data.subnets["s-app"] = {"SubnetId": "s-app", "VpcId": "vpc-1", "CidrBlock": "10.0.1.0/24"}
    data.endpoints = [{"VpcEndpointId": "vpce-s3", "VpcId": "vpc-1", "VpcEndpointType": "Gateway", "State": "available",
                       "ServiceName": "com.amazonaws.us-east-1.s3", "RouteTableIds": ["rtb-pub"],
                       **({"PolicyDocument": policy_doc} if policy_doc else {})}]
    return typed(data)


def test_s3_gateway_policy_against_the_layer_bucket() -> None:
    import json

    from pytest_mlbatch.analysis.imageref import parse
    from pytest_mlbatch.analysis.netpath import endpoint_policies, job_requests

    requests = job_requests("us-east-1", "123456789012",
                            image=parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml:1"))
    assert [v.decisions[0].verdict for v in endpoint_policies(_policy_world(None), "s-app", requests)] == ["allowed"]
    only_data = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                                           "Resource": "arn:aws:s3:::ml-data/*"}]})
    [verdict] = endpoint_policies(_policy_world(only_data), "s-app", requests)
    assert verdict.decisions[0].verdict == "denied"
    layers = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"}]})
    assert endpoint_policies(_policy_world(layers), "s-app", requests)[0].decisions[0].verdict == "allowed"
    someone = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/x"},
                                         "Action": "s3:GetObject", "Resource": "*"}]})
    assert endpoint_policies(_policy_world(someone), "s-app", requests)[0].decisions[0].verdict == "unknown"


def test_declared_s3_requests_join_the_s3_endpoints_requests() -> None:
    """iam.job_role.allow's S3 actions on bucket or object ARNs are asked of the S3 endpoint too (with the layer
    bucket when the image is in this region's ECR); other services' actions and '*' are not."""
    import json

    from pytest_mlbatch.analysis.netpath import bucket_of, concrete_bucket, declared_s3, endpoint_policies, job_requests
    from pytest_mlbatch.analysis.policy import Request

    assert bucket_of("arn:aws:s3:::ml-data/train/*") == "ml-data" and bucket_of("arn:aws:s3:::ml-data") == "ml-data"
    assert bucket_of("arn:aws:dynamodb:us-east-1:1:table/t") is None and bucket_of("*") is None
    assert not concrete_bucket("ml-*") and concrete_bucket("ml-data")
    declared = [Request("s3:GetObject", "arn:aws:s3:::ml-data/*"), Request("dynamodb:GetItem", "arn:aws:dynamodb:x"),
                Request("s3:ListAllMyBuckets", "*")]
    assert declared_s3(declared) == declared[:1]
    requests = job_requests("us-east-1", "123456789012", image=None, declared=declared)
    assert requests == {"s3": declared[:1]}
    layers = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"}]})
    [verdict] = endpoint_policies(_policy_world(layers), "s-app", requests)
    assert [d.verdict for d in verdict.decisions] == ["denied"] and verdict.hop.startswith("on s-app's route table")
    data = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                      "Resource": "arn:aws:s3:::ml-data/*"}]})
    assert [d.verdict for d in endpoint_policies(_policy_world(data), "s-app", requests)[0].decisions] == ["allowed"]


def test_acl_hops_include_the_nat_gateways_subnet() -> None:
    data = _routes_world(route("0.0.0.0/0", NatGatewayId="nat-1"))
    data.subnets["s-app"]["CidrBlock"] = "10.0.1.0/24"
    data.network_acls = [{"NetworkAclId": "acl-d", "VpcId": "vpc-1", "IsDefault": True, "Entries": DEFAULT_DOCS,
                          "Associations": []},
                         {"NetworkAclId": "acl-nat", "VpcId": "vpc-1", "IsDefault": False,
                          "Associations": [{"SubnetId": "s-pub"}],
                          "Entries": [entry_doc(100, "allow", egress=True, proto="-1"),
                                      entry_doc(100, "allow", egress=False, ports=(443, 443))]}]
    own, nat = acl_hops(typed(data), "s-app")
    assert own.acl is not None and own.acl.id == "acl-d" and not own.problems
    assert nat.where == "NAT gateway nat-1's subnet s-pub" and nat.acl is not None and nat.acl.id == "acl-nat"
    assert nat.problems == ["inbound 1024-65535 (the NAT gateway's ports) from 0.0.0.0/0: no rule allows "
                            "tcp/1024-65535 from 0.0.0.0/0"]
