"""SG checks: the security groups exist in the VPC, carry the declared rules, keep admin ports closed, allow 443 out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pytest_mlbatch.analysis import netpath, secgroups
from pytest_mlbatch.analysis.netpath import DEFAULT_V4, PublicIps
from pytest_mlbatch.config import Rule
from pytest_mlbatch.engine.context import CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, Resource, failed, passed
from pytest_mlbatch.model.network import Network, SecurityGroup, job_needs

HTTPS_DESCRIPTION = "pytest-mlbatch: HTTPS to ECS, ECR and S3"


def find_group(ctx: CheckContext, res: Resource) -> SecurityGroup | None:
    """The group a resource names: by id, or (the declared group) by name in the VPC."""
    net = ctx.model.network(groups=True)
    if not res.get("declared") and res.kind != "declared_security_group":
        return net.security_groups.get(res.id)
    vpcs = set(net.vpc_ids)
    found = [g for g in net.security_groups.values() if g.name == res.id and g.vpc_id in vpcs]
    return found[0] if found else None


def _group_or_skip(ctx: CheckContext, res: Resource) -> SecurityGroup:
    group = find_group(ctx, res)
    if group is None:
        raise NotApplicable(f"security group {res.id} does not exist (see SG001)")
    if res.get("declared") and group.id in ctx.scope.security_group_ids:
        raise NotApplicable(f"{res.id} is {group.id}, checked under its id")
    return group


def _label(group: SecurityGroup) -> str:
    return group.label


# -- SG001 -------------------------------------------------------------------------------------------------

@check(
    id="SG001", slug="security-group-exists", title="Each security group exists in the compute environment's VPC",
    severity="high", resource="security_group", permissions=["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"],
    rationale="A compute environment whose security group is missing or belongs to another VPC cannot launch "
              "instances; the compute environment turns INVALID.",
    remediation="Use security groups of the compute environment's VPC, or declare network.security_group so "
                "`--fix` creates it there.",
)
def security_group_exists(ctx: CheckContext, res: Resource) -> Finding:
    data = ctx.model.network(groups=True)
    vpc = ctx.scope.vpc_id or (data.vpc_ids[0] if len(data.vpc_ids) == 1 else None)
    group = find_group(ctx, res)
    if res.get("declared"):
        if not data.vpc_ids:
            raise NotApplicable("no VPC known to look the declared group up in: set network.vpc_id")
        if group is None:
            return failed(f"security group {res.id!r} does not exist in {', '.join(data.vpc_ids)}")
        return passed(f"{res.id} is {group.id} in {group.vpc_id}")
    if group is None:
        where = f"in {', '.join(data.vpc_ids)}" if data.vpc_ids else f"in {ctx.region}"
        return failed(f"{res.id} was not found {where}: it does not exist or belongs to another VPC")
    if vpc and group.vpc_id != vpc:
        return failed(f"{_label(group)} is in {group.vpc_id}, not in the compute environment's VPC {vpc}")
    return passed(f"{_label(group)} exists in {group.vpc_id}")


@security_group_exists.fix(summary="create the declared group in the VPC",
                           permissions=["ec2:CreateSecurityGroup", "ec2:CreateTags"])
def create_group(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    decl = ctx.scope.security_group
    if not res.get("declared") or decl is None:
        raise NotFixable(f"{res.id} is a group id, which cannot be created as such; declare "
                         "network.security_group to have a group created")
    vpcs = ctx.model.network().vpc_ids
    if len(vpcs) != 1:
        raise NotFixable("the VPC to create the group in is not known: set network.vpc_id")
    vpc = vpcs[0]

    def apply(fx: FixContext) -> None:
        fx.client("ec2").create_security_group(GroupName=decl.name, Description=decl.description, VpcId=vpc,
                                               TagSpecifications=fx.tag_specifications("security-group"))

    return FixPlan(res.id, f"create security group {decl.name} in {vpc}",
                   calls=["ec2:CreateSecurityGroup"], permissions=["ec2:CreateSecurityGroup", "ec2:CreateTags"],
                   apply=apply, notes=["a new group allows all outbound traffic and no inbound traffic; SG002 adds "
                                       "the declared rules"])


# -- SG002 -------------------------------------------------------------------------------------------------

def missing_rules(group: SecurityGroup, ingress: tuple[Rule, ...], egress: tuple[Rule, ...]) \
        -> list[tuple[str, Rule]]:
    out: list[tuple[str, Rule]] = []
    for direction, rules, have in (("ingress", ingress, group.ingress), ("egress", egress, group.egress)):
        out += [(direction, r) for r in rules if not secgroups.rule_present(have, r)]
    return out


def _rule_text(direction: str, rule: Rule) -> str:
    text = str(rule)
    return f"{direction} {text if direction == 'ingress' else text.replace(' from ', ' to ', 1)}"


@check(
    id="SG002", slug="declared-ingress", title="Every declared rule is present", severity="medium",
    resource="declared_security_group", permissions=["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"],
    rationale="The rules you declared (SSH from your address, traffic between nodes of a multi-node job) are what "
              "your jobs and your debugging rely on.",
    remediation="Add the missing rules to the group (`--fix` authorizes exactly the missing ones).",
)
def declared_rules(ctx: CheckContext, res: Resource) -> Finding:
    decl = ctx.scope.security_group
    if decl is None:
        raise NotApplicable("no declared security group")
    group = find_group(ctx, res)
    if group is None:
        raise NotApplicable(f"security group {res.id} does not exist (see SG001)")
    missing = missing_rules(group, decl.ingress, decl.egress)
    total = len(decl.ingress) + len(decl.egress)
    if missing:
        refused = [why for _, r in missing if (why := secgroups.rule_opens_admin_to_world(r))]
        warning = f" (--fix will not add it: {'; '.join(refused)})" if refused else ""
        return failed(f"{_label(group)} lacks {len(missing)} of {total} declared rules: "
                      + "; ".join(_rule_text(d, r) for d, r in missing) + warning)
    return passed(f"{_label(group)} has all {total} declared rules")


@declared_rules.fix(summary="authorize exactly the missing declared rules",
                    permissions=["ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                                 "ec2:CreateTags"])
def authorize_declared(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    decl = ctx.scope.security_group
    group = find_group(ctx, res)
    if decl is None or group is None:
        raise NotFixable("the declared group does not exist yet (SG001 creates it)")
    missing = missing_rules(group, decl.ingress, decl.egress)
    refused = [(d, r, why) for d, r in missing if (why := secgroups.rule_opens_admin_to_world(r))]
    todo = [(d, r) for d, r in missing if not secgroups.rule_opens_admin_to_world(r)]
    if not todo:
        raise NotFixable("; ".join(f"refusing {why}" for _, _, why in refused))
    gid = group.id
    ingress = [secgroups.ip_permission(r) for d, r in todo if d == "ingress"]
    egress = [secgroups.ip_permission(r) for d, r in todo if d == "egress"]
    calls = (["ec2:AuthorizeSecurityGroupIngress"] if ingress else []) + \
            (["ec2:AuthorizeSecurityGroupEgress"] if egress else [])

    def apply(fx: FixContext) -> None:
        ec2 = fx.client("ec2")
        if ingress:
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ingress,
                                                 TagSpecifications=fx.tag_specifications("security-group-rule"))
        if egress:
            ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=egress,
                                                TagSpecifications=fx.tag_specifications("security-group-rule"))

    return FixPlan(res.id, f"authorize on {gid}: " + "; ".join(_rule_text(d, r) for d, r in todo),
                   calls=calls, permissions=[*calls, "ec2:CreateTags"], apply=apply,
                   notes=[f"refusing {why}" for _, _, why in refused])


# -- SG003 -------------------------------------------------------------------------------------------------

@check(
    id="SG003", slug="no-admin-ports-open", title="No SSH or RDP open to the whole internet", severity="high",
    resource="security_group", permissions=["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"],
    rationale="Port 22 or 3389 open to 0.0.0.0/0 or ::/0 invites brute-force attempts on every instance the "
              "compute environment launches.",
    remediation="Replace the rule with one that allows SSH only from your own address (e.g. 203.0.113.7/32), or "
                "use SSM Session Manager; pytest-mlbatch never revokes rules itself.",
)
def no_admin_ports_open(ctx: CheckContext, res: Resource) -> Finding:
    group = _group_or_skip(ctx, res)
    open_ = secgroups.world_admin_ports(group.ingress)
    if open_:
        return failed(f"{_label(group)} opens " + "; ".join(open_))
    return passed(f"{_label(group)} opens neither 22 nor 3389 to 0.0.0.0/0 or ::/0")


# -- SG004 -------------------------------------------------------------------------------------------------

@check(
    id="SG004", slug="https-egress", title="Egress allows TCP 443 to the internet or the VPC endpoints",
    severity="critical", resource="security_group",
    permissions=["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeVpcEndpoints",
                 "ec2:DescribeRouteTables", "ec2:DescribeInternetGateways", "ec2:DescribeNatGateways",
                 "ec2:DescribeNetworkInterfaces", "ec2:DescribeEgressOnlyInternetGateways",
                 "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions"],
    rationale="The ECS agent registers, and images are pulled from ECR and S3, over HTTPS; a group without 443 "
              "egress leaves jobs in RUNNABLE or failing with CannotPullContainerError.",
    remediation="Allow outbound TCP 443 to 0.0.0.0/0 (or, for subnets that use VPC endpoints only, to the "
                "endpoints' security groups and the S3 prefix list).",
)
def https_egress(ctx: CheckContext, res: Resource) -> Finding:
    group = _group_or_skip(ctx, res)
    net = ctx.model.network(groups=True)
    verdicts = [_set_https(ctx, group, ces, members) for ces, members in group_sets(ctx, net, group)]
    bad = [why for ok, why in verdicts if not ok]
    if bad:
        return failed("; ".join(bad))
    return passed("; ".join(why for _, why in verdicts))


def group_sets(ctx: CheckContext, net: Network, group: SecurityGroup) -> list[tuple[str, list[SecurityGroup]]]:
    """The sets of groups an instance with this group carries: per compute environment that names it (an instance
    has all of its compute environment's groups), else the group on its own."""
    out: list[tuple[str, list[SecurityGroup]]] = []
    sets: dict[tuple[str, ...], list[str]] = {}
    for ce in ctx.model.compute_environments():
        if group.id in ce.security_groups:
            sets.setdefault(tuple(sorted(set(ce.security_groups))), []).append(ce.name)
    if not sets:  # no compute environment names it: the group on its own
        sets[(group.id,)] = []
    for ids, ces in sets.items():
        members = [group] + [net.security_groups[g] for g in ids if g != group.id and g in net.security_groups]
        where = f"compute environment {', '.join(ces)}" if ces else "no compute environment"
        out.append((where, members))
    return out


def _set_https(ctx: CheckContext, group: SecurityGroup, where: str, members: Sequence[SecurityGroup]) \
        -> tuple[bool, str]:
    """(ok, why) for tcp/443 egress of an instance carrying every group of `members` (the first is `group`)."""
    own = secgroups.allows(group.egress, "tcp", 443, 443, cidr=DEFAULT_V4)
    if own:
        return True, f"{_label(group)} allows tcp/443 to the internet ({own[0]})"
    egress = [p for g in members for p in g.egress]
    others = [g.label for g in members if g.id != group.id]
    label = _label(group) + (f" with {', '.join(others)} ({where}: an instance has all of them)" if others else "")
    world = secgroups.allows(egress, "tcp", 443, 443, cidr=DEFAULT_V4)
    if world:
        return True, f"{label} allows tcp/443 to the internet ({world[0]})"
    net = ctx.model.network(paths=True)
    results = [_path(ctx, net, s) for s in ctx.scope.subnet_ids if s in net.subnets]
    endpoint_only = bool(results) and all(r.ok and r.path == "endpoints" for r in results)
    if not endpoint_only:
        return False, f"{label} has no egress rule allowing tcp/443 to {DEFAULT_V4}"
    lacks: list[str] = []
    vpc_cidrs = [c for v in net.vpcs.values() for c in v.cidrs]
    for r in results:
        eps = r.endpoints
        assert eps is not None
        to_interfaces = secgroups.allows(egress, "tcp", 443, 443, groups=eps.interface_groups) or [
            d for c in vpc_cidrs for d in secgroups.allows(egress, "tcp", 443, 443, cidr=c)]
        if not to_interfaces:
            lacks.append(f"tcp/443 to the interface endpoints' groups ({', '.join(sorted(set(eps.interface_groups)))})"
                         f" or the VPC's CIDR")
        if not eps.s3_interface and not secgroups.allows(egress, "tcp", 443, 443, prefix_lists=eps.s3_prefix_lists):
            lacks.append(f"tcp/443 to the S3 prefix list ({', '.join(eps.s3_prefix_lists) or 'unknown'})")
    if lacks:
        return False, (f"{label} allows no tcp/443 to {DEFAULT_V4}, and its subnets use VPC endpoints only: "
                       f"missing {'; '.join(sorted(set(lacks)))}")
    return True, (f"{label} allows tcp/443 to the VPC endpoints and the S3 prefix list (the subnets' path is the "
                  "endpoint path)")


def _path(ctx: CheckContext, net: Network, subnet_id: str) -> netpath.PathResult:
    """Is the subnet's path the endpoint path? (Public IPs are not needed to tell: the endpoint path is the one
    taken when neither the internet nor a NAT gateway is.)"""
    net = replace(net, trusted_egress=frozenset(ctx.settings.trusted_egress))
    declared = ctx.scope.security_group
    groups = sorted(set(ctx.scope.security_group_ids) | ({g.id for g in net.security_groups.values()
                                                          if g.name == declared.name} if declared else set()))
    using = [ce for ce in ctx.model.compute_environments() if subnet_id in ce.subnets] or \
        list(ctx.model.compute_environments())
    needs = job_needs(ctx.model.job(), using, ctx.region or "")
    return netpath.analyze(net, subnet_id, PublicIps(False, "not needed"), groups, needs.services,
                           needs.internet_only)


@https_egress.fix(summary="authorize egress 443", permissions=["ec2:AuthorizeSecurityGroupEgress", "ec2:CreateTags"])
def authorize_https(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    group = _group_or_skip(ctx, res)
    gid = group.id

    def apply(fx: FixContext) -> None:
        fx.client("ec2").authorize_security_group_egress(
            GroupId=gid, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                         "IpRanges": [{"CidrIp": DEFAULT_V4, "Description": HTTPS_DESCRIPTION}]}],
            TagSpecifications=fx.tag_specifications("security-group-rule"))

    return FixPlan(res.id, f"authorize egress tcp/443 to {DEFAULT_V4} on {gid}",
                   calls=["ec2:AuthorizeSecurityGroupEgress"],
                   permissions=["ec2:AuthorizeSecurityGroupEgress", "ec2:CreateTags"], apply=apply)


