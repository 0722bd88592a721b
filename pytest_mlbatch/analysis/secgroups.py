"""Security group rule matching as pure functions: protocols, port ranges, -1, IPv4/IPv6, prefix lists, groups."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_mlbatch.config import Rule

PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "-1": "-1", "all": "-1"}
ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
WORLD = ("0.0.0.0/0", "::/0")



def protocol(value: object) -> str:
    """IpProtocol as a name: '6' -> 'tcp', 'all'/-1 -> '-1'."""
    text = str(value).lower()
    return PROTOCOL_NAMES.get(text, text)


def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def cidr_covers(outer: str, inner: str) -> bool:
    """True when every address of `inner` is in `outer` (same IP version)."""
    try:
        a, b = network(outer), network(inner)
    except ValueError:
        return False
    if a.version != b.version:
        return False
    return b.subnet_of(a)  # type: ignore[arg-type]


def ports_cover(perm: Permission, proto: str, lo: int, hi: int) -> bool:
    """Does the permission's protocol and port range include protocol `proto` ports lo..hi?"""
    p = protocol(perm.protocol)
    if p == "-1":
        return True
    if p != protocol(proto):
        return False
    if p not in ("tcp", "udp"):
        # icmp: from/to port are type and code; -1 means all
        f = -1 if perm.from_port is None else perm.from_port
        t = -1 if perm.to_port is None else perm.to_port
        return f == -1 or (f == lo and t in (-1, hi))
    start, end = perm.from_port, perm.to_port
    if start is None or end is None:
        return True
    return start <= lo and hi <= end


@dataclass(frozen=True)
class Peer:
    """The other side of a rule: kind is cidr, cidr6, group or prefix."""

    kind: str
    value: str

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Permission:
    """One security group permission (IpPermissions entry): protocol ('tcp', '6', '-1', ...), port range (None:
    all) and the peers it names."""

    protocol: str
    from_port: int | None
    to_port: int | None
    peers: tuple[Peer, ...]


def peers(perm: Permission) -> list[Peer]:
    return list(perm.peers)


def describe(perm: Permission, peer: Peer | None = None) -> str:
    p = protocol(perm.protocol)
    if p == "-1":
        what = "all traffic"
    else:
        f, t = perm.from_port, perm.to_port
        what = f"{p}/{f}" if f == t else f"{p}/{f}-{t}"
    return f"{what} {peer}" if peer else what


def allows(perms: Iterable[Permission], proto: str, lo: int, hi: int, *, cidr: str | None = None,
           groups: Iterable[str] = (), prefix_lists: Iterable[str] = ()) -> list[str]:
    """The permissions (described) that let proto lo..hi through to/from the given peer(s); [] when none.

    A CIDR rule matches when it covers `cidr`; group and prefix-list rules match by id."""
    group_set, prefix_set = set(groups), set(prefix_lists)
    found: list[str] = []
    for perm in perms:
        if not ports_cover(perm, proto, lo, hi):
            continue
        for peer in peers(perm):
            if (peer.kind in ("cidr", "cidr6") and cidr and cidr_covers(peer.value, cidr)) or \
                    (peer.kind == "group" and peer.value in group_set) or \
                    (peer.kind == "prefix" and peer.value in prefix_set):
                found.append(describe(perm, peer))
    return found


def rule_peer(rule: Rule) -> Peer:
    if rule.cidr:
        return Peer("cidr", rule.cidr)
    if rule.cidr_ipv6:
        return Peer("cidr6", rule.cidr_ipv6)
    if rule.source_security_group:
        return Peer("group", rule.source_security_group)
    if rule.prefix_list_id:
        return Peer("prefix", rule.prefix_list_id)
    raise ValueError(f"rule {rule} has no peer")


def rule_present(perms: Sequence[Permission], rule: Rule) -> bool:
    """A declared rule is present when an existing permission covers its protocol, ports and peer."""
    peer = rule_peer(rule)
    lo, hi = (0, 65535) if rule.protocol == "-1" else (rule.from_port, rule.to_port)
    for perm in perms:
        if rule.protocol == "-1":
            if protocol(perm.protocol) != "-1":
                continue
        elif not ports_cover(perm, rule.protocol, lo, hi):
            continue
        for have in peers(perm):
            if have.kind != peer.kind:
                continue
            if peer.kind in ("cidr", "cidr6"):
                if cidr_covers(have.value, peer.value):
                    return True
            elif have.value == peer.value:
                return True
    return False


def world_admin_ports(perms: Iterable[Permission]) -> list[str]:
    """Ingress permissions that open SSH (22) or RDP (3389) to 0.0.0.0/0 or ::/0, described."""
    out: list[str] = []
    for perm in perms:
        for port, name in ADMIN_PORTS.items():
            if not ports_cover(perm, "tcp", port, port):
                continue
            for peer in peers(perm):
                if peer.kind in ("cidr", "cidr6") and network(peer.value).prefixlen == 0:
                    out.append(f"{name} ({describe(perm)}) from {peer.value}")
    return out


def rule_opens_admin_to_world(rule: Rule) -> str | None:
    """The reason a declared rule must never be authorized (22/3389 from the whole internet), else None."""
    peer = rule_peer(rule)
    if peer.kind not in ("cidr", "cidr6") or network(peer.value).prefixlen != 0:
        return None
    for port, name in ADMIN_PORTS.items():
        if rule.protocol == "-1" or (rule.protocol == "tcp" and rule.from_port <= port <= rule.to_port):
            return f"{rule} would open {name} (port {port}) to {peer.value}; allow it only from your own address"
    return None


def ip_permission(rule: Rule) -> dict[str, Any]:
    """The IpPermissions entry that authorizes exactly this declared rule."""
    perm: dict[str, Any] = {"IpProtocol": rule.protocol}
    if rule.protocol != "-1":
        perm["FromPort"], perm["ToPort"] = rule.from_port, rule.to_port
    extra = {"Description": rule.description} if rule.description else {}
    peer = rule_peer(rule)
    if peer.kind == "cidr":
        perm["IpRanges"] = [{"CidrIp": peer.value, **extra}]
    elif peer.kind == "cidr6":
        perm["Ipv6Ranges"] = [{"CidrIpv6": peer.value, **extra}]
    elif peer.kind == "group":
        perm["UserIdGroupPairs"] = [{"GroupId": peer.value, **extra}]
    else:
        perm["PrefixListIds"] = [{"PrefixListId": peer.value, **extra}]
    return perm
