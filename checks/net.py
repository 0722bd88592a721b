"""NET checks: the VPC's DNS, usable subnets, each subnet's egress path to ECS/ECR/S3, zones, and network ACLs."""

from __future__ import annotations

from dataclasses import replace

from pytest_mlbatch.analysis import netpath, policy
from pytest_mlbatch.analysis.imageref import ImageRefError
from pytest_mlbatch.analysis.imageref import parse as parse_image
from pytest_mlbatch.analysis.netpath import DEFAULT_V4, PublicIps
from pytest_mlbatch.engine.context import PLAN_TAG, CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed, passed
from pytest_mlbatch.model.compute import ComputeEnvironment
from pytest_mlbatch.model.network import Network, Subnet
from pytest_mlbatch.model.network import job_needs as needs_of

# us-east-1 list prices (other regions differ): NAT gateway hourly charge and data processing, public IPv4 address.
NAT_HOURLY_USD = 0.045
NAT_PER_GB_USD = 0.045
PUBLIC_IPV4_HOURLY_USD = 0.005
HOURS_PER_MONTH = 730


def nat_cost_note() -> str:
    monthly = NAT_HOURLY_USD * HOURS_PER_MONTH
    ip = PUBLIC_IPV4_HOURLY_USD * HOURS_PER_MONTH
    return (f"cost: a NAT gateway costs about {monthly:.2f} USD a month ({NAT_HOURLY_USD} USD/hour) plus "
            f"{NAT_PER_GB_USD} USD per GB processed, and its Elastic IP about {ip:.2f} USD a month (us-east-1 "
            "prices; other regions differ)")


# -- the network, per target -------------------------------------------------------------------------------

def network(ctx: CheckContext, **parts: bool) -> Network:
    """The target's network (ctx.model) with the parts asked for, and the egress hops the config declares trusted."""
    return replace(ctx.model.network(**parts), trusted_egress=frozenset(ctx.settings.trusted_egress))


def instance_groups(ctx: CheckContext, net: Network) -> list[str]:
    """The groups the compute environment's instances carry: configured ids plus the declared group's id."""
    groups = list(ctx.scope.security_group_ids)
    declared = ctx.scope.security_group
    if declared is not None:
        groups += [g.id for g in net.security_groups.values() if g.name == declared.name]
    return sorted(set(groups))


def _subnet_or_skip(net: Network, ctx: CheckContext, subnet_id: str) -> Subnet:
    subnet = net.subnets.get(subnet_id)
    if subnet is None:
        raise NotApplicable(f"{subnet_id} was not found in {ctx.region} (see NET002)")
    return subnet


# -- public IPs on launch ----------------------------------------------------------------------------------

def compute_environments_using(ctx: CheckContext, subnet_id: str) -> list[ComputeEnvironment]:
    """The scope's compute environments that launch into this subnet (all of them if none names it)."""
    ces = list(ctx.model.compute_environments())
    return [ce for ce in ces if subnet_id in ce.subnets] or ces


def public_ips(ctx: CheckContext, net: Network, subnet_id: str) -> PublicIps:
    """Do instances or tasks launched in this subnet by the compute environment(s) get public IPv4 addresses?"""
    subnet = net.subnets.get(subnet_id)
    mapped = bool(subnet and subnet.map_public_ip)
    subnet_reason = f"MapPublicIpOnLaunch is {'on' if mapped else 'off'}"
    using = compute_environments_using(ctx, subnet_id)
    if not using:
        return PublicIps(mapped, f"public IPs on launch ({subnet_reason})" if mapped else subnet_reason)
    verdicts: list[tuple[bool, str]] = []
    for ce in using:
        if ce.fargate:
            verdicts.append(_fargate_public_ip(ctx, ce.name))
        else:
            verdicts.append(_ec2_public_ip(ctx, ce, mapped, subnet_reason))
    enabled = all(ok for ok, _ in verdicts)
    reasons = "; ".join(why for _, why in verdicts)
    return PublicIps(enabled, f"public IPs on launch ({reasons})" if enabled else reasons)


def _fargate_public_ip(ctx: CheckContext, ce_name: str) -> tuple[bool, str]:
    assign = ctx.model.job_assign_public_ip()
    if assign is None:
        return False, (f"{ce_name} is Fargate and there is no job definition to read assignPublicIp from "
                       "(default DISABLED)")
    job = ctx.model.job()
    name = job.name if job else ctx.scope.job_definition
    return assign == "ENABLED", f"{ce_name} is Fargate: job definition {name} has assignPublicIp {assign}"


def _ec2_public_ip(ctx: CheckContext, ce: ComputeEnvironment, mapped: bool, subnet_reason: str) -> tuple[bool, str]:
    if ce.launch_template is not None:
        launch = ctx.model.launch_settings(ce)
        if launch.template is None:
            raise NotEvaluable(f"launch template {ce.launch_template} of {ce.name} was not found")
        if launch.associate_public_ip is not None:
            on = launch.associate_public_ip
            return on, (f"{ce.name}'s launch template {launch.template} sets AssociatePublicIpAddress "
                        f"{str(on).lower()}")
    return mapped, subnet_reason


# -- NET001 ------------------------------------------------------------------------------------------------

@check(
    id="NET001", slug="vpc-dns", title="The VPC exists with DNS support and DNS hostnames on", severity="high",
    resource="vpc", permissions=["ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeSubnets"],
    rationale="Interface endpoints with private DNS, and the ECS agent's registration, need the VPC's DNS "
              "resolver and DNS hostnames; without them jobs fail with ResourceInitializationError or sit RUNNABLE.",
    remediation="Turn on enableDnsSupport and enableDnsHostnames for the VPC (VPC console: Edit VPC settings, or "
                "`aws ec2 modify-vpc-attribute --enable-dns-hostnames`).",
)
def vpc_dns(ctx: CheckContext, res: Resource) -> Finding:
    vpc = network(ctx, vpcs=True).vpcs.get(res.id)
    if vpc is None:
        return failed(f"{res.id} does not exist in {ctx.region}")
    if vpc.state != "available":
        return failed(f"{res.id} is {vpc.state}, not available")
    vpc = network(ctx, dns=True).vpcs[res.id]
    off = vpc.dns_off
    if off:
        return failed(f"{res.id} has {' and '.join(off)} off: endpoint private DNS names and instance hostnames "
                      "will not resolve")
    return passed(f"{res.id} is available with enableDnsSupport and enableDnsHostnames on")


# -- NET002 ------------------------------------------------------------------------------------------------

@check(
    id="NET002", slug="subnet-usable", title="Each subnet exists, is available, in the VPC, with free addresses",
    severity="high", resource="subnet", permissions=["ec2:DescribeSubnets"],
    rationale="A compute environment with a subnet that is gone, in another VPC or out of addresses cannot place "
              "instances there; scaling fails or jobs wait in RUNNABLE.",
    remediation="Use subnets of the compute environment's VPC that are available and have room (network."
                "min_free_ips free addresses), or free addresses in the subnet.",
)
def subnet_usable(ctx: CheckContext, res: Resource) -> Finding:
    subnet = network(ctx).subnets.get(res.id)
    vpc = ctx.scope.vpc_id
    if subnet is None:
        return failed(f"{res.id} does not exist in {ctx.region}")
    if vpc and subnet.vpc_id != vpc:
        return failed(f"{res.id} is in {subnet.vpc_id}, not in the compute environment's VPC {vpc}")
    if subnet.state != "available":
        return failed(f"{res.id} is {subnet.state}, not available")
    free = subnet.free_addresses
    need = ctx.settings.min_free_ips
    if free < need:
        return failed(f"{res.id} has {free} free addresses, fewer than network.min_free_ips ({need})")
    cidr = subnet.cidr or ", ".join(subnet.ipv6_cidrs)
    return passed(f"{res.id} ({subnet.zone}, {cidr}) in {subnet.vpc_id}: {free} free addresses (minimum {need})")


# -- NET003 ------------------------------------------------------------------------------------------------

def job_needs(ctx: CheckContext, subnet_id: str) -> netpath.JobNeeds:
    """What instances (or tasks) launched in this subnet reach (model/network.py's job_needs)."""
    return needs_of(ctx.model.job(), compute_environments_using(ctx, subnet_id), ctx.region or "")


def needed_services(ctx: CheckContext, subnet_id: str) -> tuple[str, ...]:
    """The interface endpoints instances (or tasks) launched in this subnet need to reach without the internet."""
    return job_needs(ctx, subnet_id).services


def declared_s3(ctx: CheckContext) -> list[policy.Request]:
    """The S3 requests the job role is declared to make (iam.job_role.allow, e.g. s3:GetObject on
    arn:aws:s3:::ml-data/*): the job's code makes them over the subnet's network."""
    jr = ctx.scope.job_role
    declared = [policy.Request(a, r) for st in (jr.allow if jr else ()) for a in st.actions for r in st.resources]
    return netpath.declared_s3(declared)


def declared_buckets(ctx: CheckContext) -> list[str]:
    return sorted({b for r in declared_s3(ctx) if (b := netpath.bucket_of(r.resource))})


def bucket_elsewhere(ctx: CheckContext, bucket: str) -> tuple[str | None, str | None]:
    """(the bucket's region when it is not the target's, why it cannot be told): a gateway or interface endpoint
    for S3 serves only its own region's buckets."""
    if not netpath.concrete_bucket(bucket):
        return None, f"bucket pattern {bucket} names no one bucket whose region could be read"
    try:
        where = ctx.model.bucket_region(bucket)
    except NotEvaluable as exc:
        return None, str(exc)
    if where is None:
        return None, f"S3 bucket {bucket} does not exist (s3:GetBucketLocation: NoSuchBucket), so its region is unknown"
    return (where, None) if where != ctx.region else (None, None)


def _declared_buckets_on_endpoints(ctx: CheckContext, subnet_id: str,
                                   result: netpath.PathResult) -> netpath.PathResult:
    """On an endpoint-only path, every bucket the job role is declared to read must be in the target's region: an
    S3 gateway (or interface) endpoint serves only its region's buckets, and nothing else leaves the VPC."""
    buckets = declared_buckets(ctx)
    if not buckets:
        return result
    eps = result.endpoints
    via = eps.s3_endpoint if eps and eps.s3_endpoint else "the S3 endpoint"
    _, _, hop = netpath.route_target(network(ctx, paths=True), subnet_id)
    away: list[str] = []
    unknown: list[str] = []
    for bucket in buckets:
        where, why = bucket_elsewhere(ctx, bucket)
        if why:
            unknown.append(why)
        elif where:
            away.append(f"S3 bucket {bucket} is in {where}, and {via} serves only {ctx.region}'s buckets")
    declared = "the job role is declared to reach (iam.job_role.allow)"
    if away:
        return replace(result, ok=False, path="none", message=f"{result.message}; but of the buckets {declared}: "
                       f"{'; '.join(away)}; only a NAT gateway or an internet gateway with public IPs gets there "
                       f"({hop.detail})")
    if unknown:
        return replace(result, ok=False, opaque=True, message=f"{result.message}; but of the buckets {declared}: "
                       f"{'; '.join(unknown)}: whether {via} (the only way out of {subnet_id}: {hop.detail}) "
                       "reaches them cannot be decided")
    return replace(result, notes=(*result.notes, f"the buckets {declared}, {', '.join(buckets)}, are in "
                                                 f"{ctx.region}, reached through {via}"))


def analyze(ctx: CheckContext, subnet_id: str) -> netpath.PathResult:
    data = network(ctx, paths=True)
    _subnet_or_skip(data, ctx, subnet_id)
    _, _, hop = netpath.route_target(data, subnet_id)
    # public IPs matter only on the internet path (and reading them may need the compute environment)
    ips = public_ips(ctx, data, subnet_id) if hop.kind == "igw" and hop.ok else PublicIps(False, "not needed")
    needs = job_needs(ctx, subnet_id)
    result = netpath.analyze(data, subnet_id, ips, instance_groups(ctx, data), needs.services, needs.internet_only)
    if result.ok and result.path == "endpoints":
        # endpoint private DNS names resolve only with both VPC DNS attributes on
        vpc = data.subnets[subnet_id].vpc_id
        off = network(ctx, dns=True).vpcs[vpc].dns_off if vpc in data.vpcs else []
        if off:
            return replace(result, ok=False, path="none", message=f"{result.message}; but {vpc} has "
                           f"{' and '.join(off)} off, so the endpoints' private DNS names do not resolve")
        return _declared_buckets_on_endpoints(ctx, subnet_id, result)
    return result


@check(
    id="NET003", slug="subnet-egress-path", title="Each subnet reaches ECS, ECR and S3", severity="critical",
    resource="subnet",
    permissions=["ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables", "ec2:DescribeInternetGateways",
                 "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcAttribute", "ec2:DescribeEgressOnlyInternetGateways",
                 "ec2:DescribeNatGateways", "ec2:DescribeVpcEndpoints", "ec2:DescribeSecurityGroups",
                 "ec2:DescribeLaunchTemplateVersions", "batch:DescribeComputeEnvironments",
                 "batch:DescribeJobDefinitions", "s3:GetBucketLocation"],
    rationale="Instances that cannot reach the ECS endpoint never register, so jobs sit in RUNNABLE; tasks that "
              "cannot reach ECR and S3 fail with CannotPullContainerError. A subnet needs a public route and "
              "public IPs, a working NAT gateway, or the full set of VPC endpoints; on the endpoints alone, the "
              "buckets the job role is declared to read must be in the subnet's region (an S3 endpoint serves only "
              "its own region).",
    remediation="Give the subnet one path: a 0.0.0.0/0 route to an attached internet gateway plus public IPs on "
                "launch; a 0.0.0.0/0 route to an available NAT gateway that sits in a public subnet; or interface "
                "endpoints ecs, ecs-agent, ecs-telemetry (not needed on Fargate), ecr.api, ecr.dkr, logs (private DNS "
                "on, in the subnet's zone, their groups admitting 443) and an S3 gateway endpoint on the subnet's "
                "route table.",
)
def subnet_egress_path(ctx: CheckContext, res: Resource) -> Finding:
    result = analyze(ctx, res.id)
    notes = "".join(f"; note: {n}" for n in result.notes)
    if result.ok:
        return passed(result.message + notes)
    if result.opaque:
        raise NotEvaluable(result.message + notes)
    return failed(result.message)


@subnet_egress_path.fix(summary="opt-in (fix.allow): internet gateway + public route, or NAT gateway + route",
                        permissions=["ec2:CreateInternetGateway", "ec2:AttachInternetGateway", "ec2:CreateRoute",
                                     "ec2:AllocateAddress", "ec2:CreateNatGateway", "ec2:CreateTags",
                                     "ec2:DescribeNatGateways", "ec2:DescribeAddresses"])
def add_egress_path(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    data = network(ctx, paths=True)
    subnet = _subnet_or_skip(data, ctx, res.id)
    vpc = subnet.vpc_id
    rt, how, hop = netpath.route_target(data, res.id)
    if rt is None:
        raise NotFixable(f"no route table applies to {res.id}")
    rid = rt.id
    if how != "explicitly associated":
        raise NotFixable(f"{res.id} uses the VPC's main route table {rid}: a default route there would change every "
                         "subnet without a table of its own; associate a route table of its own with the subnet "
                         "first (pytest-mlbatch never changes associations)")
    if netpath.default_route(rt) is not None:
        raise NotFixable(f"route table {rid} already has a {DEFAULT_V4} route ({hop.detail}); pytest-mlbatch never "
                         "replaces or deletes a route: repair that route yourself")
    allow = ctx.settings.fix_allow
    ips = public_ips(ctx, data, res.id)
    options: dict[str, FixPlan | str] = {
        "internet_gateway": _igw_plan(ctx, data, res.id, vpc, rid) if ips.enabled else
        f"an internet gateway would not help: {ips.reason} (turning it on is a change pytest-mlbatch does not make)",
        "nat_gateway": _nat_plan(ctx, data, res.id, vpc, rid),
    }
    # An internet gateway is offered only when instances get public IPs there (the subnet is meant to be public,
    # and it costs nothing); otherwise a NAT gateway. What the config allows comes first; else the plan is shown
    # and the engine asks for the opt-in.
    plans = [p for name in ("internet_gateway", "nat_gateway") if isinstance(p := options[name], FixPlan)]
    for plan in plans:
        if plan.opt_in in allow:
            return plan
    if plans:
        return plans[0]
    raise NotFixable("; ".join(str(v) for v in options.values()))


def _igw_plan(ctx: CheckContext, data: Network, subnet_id: str, vpc: str, rid: str) -> FixPlan:
    attached = data.attached_igws(vpc)
    if attached:
        igw = attached[0]
        action = f"add route {DEFAULT_V4} -> {igw} (already attached to {vpc}) to {subnet_id}'s route table {rid}"
        calls = ["ec2:CreateRoute"]
    else:
        igw = ""
        action = f"create an internet gateway, attach it to {vpc}, add route {DEFAULT_V4} -> it to {rid}"
        calls = ["ec2:CreateInternetGateway", "ec2:AttachInternetGateway", "ec2:CreateRoute"]

    def apply(fx: FixContext) -> None:
        ec2 = fx.client("ec2")
        gateway = igw
        if not gateway:
            gateway = ec2.create_internet_gateway(
                TagSpecifications=fx.tag_specifications("internet-gateway"))["InternetGateway"]["InternetGatewayId"]
            ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
        ec2.create_route(RouteTableId=rid, DestinationCidrBlock=DEFAULT_V4, GatewayId=gateway)

    return FixPlan(subnet_id, action, calls=calls,
                   permissions=[*calls, "ec2:CreateTags"], apply=apply, opt_in="internet_gateway",
                   notes=[f"instances in {subnet_id} become reachable from the internet where their security groups "
                          "allow it", f"{rid} is used by: {', '.join(data.explicitly_associated(rid))}"])


def _nat_plan(ctx: CheckContext, data: Network, subnet_id: str, vpc: str, rid: str) -> FixPlan | str:
    az = data.subnets[subnet_id].zone
    usable = [n for n, d in data.nat_gateways.items() if d.vpc_id == vpc and netpath.nat_usable(data, n)[0]]
    usable.sort(key=lambda n: n)
    notes = [f"{rid} is used by: {', '.join(data.explicitly_associated(rid))}"]
    if usable:
        nat = usable[0]
        action = f"add route {DEFAULT_V4} -> existing {nat} to {subnet_id}'s route table {rid}"

        def reuse(fx: FixContext) -> None:
            fx.client("ec2").create_route(RouteTableId=rid, DestinationCidrBlock=DEFAULT_V4, NatGatewayId=nat)

        return FixPlan(subnet_id, action, calls=["ec2:CreateRoute"], permissions=["ec2:CreateRoute"],
                       apply=reuse, opt_in="nat_gateway", notes=notes)
    # every subnet of the VPC (read only when planning this fix) that has a public route of its own
    found = ctx.model.vpc_subnets(vpc)
    public = [s.id for s in found if s.id != subnet_id and s.state == "available"
              and netpath.public_route(data, s.id, vpc)[0]]
    zone = {s.id: s.zone for s in found}
    public.sort(key=lambda s: (zone.get(s) != az, s))
    if not public:
        return f"a NAT gateway needs a subnet with a public route in {vpc}, and there is none"
    host = public[0]
    action = (f"allocate an Elastic IP, create a NAT gateway in public subnet {host}, add route {DEFAULT_V4} -> it "
              f"to {subnet_id}'s route table {rid} (about {NAT_HOURLY_USD * HOURS_PER_MONTH:.0f} USD/month + data)")
    calls = ["ec2:AllocateAddress", "ec2:CreateNatGateway", "ec2:DescribeNatGateways", "ec2:CreateRoute"]

    def apply(fx: FixContext) -> None:
        ec2 = fx.client("ec2")
        # What an earlier run of this very plan created (interrupted, timed out, or racing on another machine) is
        # adopted, never made a second time: it carries the plan's tag.
        mine = [{"Name": f"tag:{PLAN_TAG}", "Values": [fx.plan_id]}]
        nats = [n for n in ec2.describe_nat_gateways(Filter=mine)["NatGateways"]
                if n.get("State") in ("pending", "available")]
        if nats:
            nat_id = str(nats[0]["NatGatewayId"])
            fx.journal.record_outcome(fx.check.id, fx.resource.id, "adopt", "ok", f"{nat_id} (tagged by this plan)")
        else:
            free = [a for a in ec2.describe_addresses(Filters=mine)["Addresses"] if not a.get("AssociationId")]
            if free:
                allocation = str(free[0]["AllocationId"])
                fx.journal.record_outcome(fx.check.id, fx.resource.id, "adopt", "ok",
                                          f"{allocation} (tagged by this plan)")
            else:
                allocation = ec2.allocate_address(Domain="vpc",
                                                  TagSpecifications=fx.tag_specifications("elastic-ip"))["AllocationId"]
            nat_id = ec2.create_nat_gateway(SubnetId=host, AllocationId=allocation,
                                            ClientToken=fx.client_token("CreateNatGateway"),
                                            TagSpecifications=fx.tag_specifications("natgateway")
                                            )["NatGateway"]["NatGatewayId"]
        ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat_id],
                                                     WaiterConfig={"Delay": 15, "MaxAttempts": 40})
        ec2.create_route(RouteTableId=rid, DestinationCidrBlock=DEFAULT_V4, NatGatewayId=nat_id)

    return FixPlan(subnet_id, action, calls=calls,
                   permissions=["ec2:AllocateAddress", "ec2:CreateNatGateway", "ec2:DescribeNatGateways",
                                "ec2:DescribeAddresses", "ec2:CreateRoute", "ec2:CreateTags"],
                   apply=apply, opt_in="nat_gateway",
                   notes=[nat_cost_note(), "DescribeNatGateways polls until the new NAT gateway is available (up to "
                          "10 minutes) before the route is added", *notes])


# -- NET004 ------------------------------------------------------------------------------------------------

def cluster_placement(ctx: CheckContext) -> str | None:
    """Which compute environment keeps its instances in a cluster placement group (its placementGroup, or its
    launch template's Placement.GroupName), as described by DescribePlacementGroups; None when none does."""
    for ce in sorted(ctx.model.compute_environments(), key=lambda c: c.name):
        launch = ctx.model.launch_settings(ce)
        if launch.placement_group and launch.placement_strategy == "cluster":
            return f"compute environment {ce.name} uses cluster placement group {launch.placement_group} " \
                   f"({launch.placement_where})"
    return None


@check(
    id="NET004", slug="multi-az", title="The subnets span at least two availability zones", severity="low",
    resource="subnet_set", permissions=["ec2:DescribeSubnets", "batch:DescribeComputeEnvironments",
                                        "ec2:DescribeLaunchTemplateVersions", "ec2:DescribePlacementGroups"],
    rationale="With every subnet in one zone, an insufficient-capacity event in that zone leaves jobs waiting; "
              "two or more zones give Batch somewhere else to launch.",
    remediation="Add a subnet in another availability zone of the VPC to the compute environment (unless its "
                "instances are kept in one zone on purpose by a cluster placement group).",
)
def multi_az(ctx: CheckContext, res: Resource) -> Finding:
    data = network(ctx)
    ids = list(res.get("subnet_ids", []))
    zones: dict[str, list[str]] = {}
    for sid in ids:
        if sid in data.subnets:
            zones.setdefault(data.subnets[sid].zone, []).append(sid)
    missing = [s for s in ids if s not in data.subnets]
    listing = "; ".join(f"{z}: {', '.join(s)}" for z, s in sorted(zones.items()))
    if len(zones) >= 2:
        return passed(f"{len(zones)} availability zones ({listing})")
    gone = f"; not found: {', '.join(missing)}" if missing else ""
    if not zones:
        return failed(f"none of the subnets was found{gone}")
    cluster = cluster_placement(ctx)
    if cluster:
        return passed(f"all subnets are in one availability zone ({listing}){gone}, on purpose: {cluster} (a cluster "
                      "placement group keeps instances in one zone for low-latency multi-node jobs)")
    return failed(f"all subnets are in one availability zone ({listing}){gone}: add a subnet in another zone")


# -- NET005 ------------------------------------------------------------------------------------------------

@check(
    id="NET005", slug="network-acls", title="Network ACLs on every hop allow HTTPS out and the replies back",
    severity="medium", resource="subnet",
    permissions=["ec2:DescribeNetworkAcls", "ec2:DescribeSubnets", "ec2:DescribeRouteTables",
                 "ec2:DescribeNatGateways", "ec2:DescribeVpcEndpoints", "ec2:DescribeNetworkInterfaces",
                 "ec2:DescribeVpcs", "ec2:DescribeSecurityGroups", "ec2:DescribeInternetGateways",
                 "ec2:DescribeEgressOnlyInternetGateways", "batch:DescribeComputeEnvironments",
                 "batch:DescribeJobDefinitions"],
    rationale="Network ACLs are stateless and sit on every subnet a packet crosses: the job's subnet, the NAT "
              "gateway's subnet and the subnets of the interface endpoints' network interfaces. Without outbound "
              "TCP 443 and inbound TCP to the ephemeral ports the replies return to (32768-60999 on the Linux hosts "
              "and tasks Batch runs; 1024-65535 on a NAT gateway) on each of them, calls to ECS, ECR and S3 time out "
              "even with correct routes and security groups.",
    remediation="Add network ACL entries (before any deny) on the hop named: outbound TCP 443 and inbound TCP "
                "1024-65535 for 0.0.0.0/0 (and ::/0 when the subnet has IPv6) on the job's and the NAT gateway's "
                "subnets; inbound TCP 443 from the job's subnet and outbound TCP 1024-65535 to it on the NAT "
                "gateway's and the endpoints' subnets.",
)
def network_acls(ctx: CheckContext, res: Resource) -> Finding:
    data = network(ctx, acls=True, paths=True)
    _subnet_or_skip(data, ctx, res.id)
    hops = netpath.acl_hops(data, res.id, needed_services(ctx, res.id))
    if hops[0].acl is None:
        raise NotEvaluable(f"no network ACL of {res.id} was returned by DescribeNetworkAcls")
    problems = [f"{h.where}: {h.name}: " + "; ".join(h.problems + h.undecided) for h in hops if h.problems]
    undecided = [f"{h.where}: {h.name}: " + "; ".join(h.undecided) for h in hops if h.undecided and not h.problems]
    if problems:
        return failed("; ".join(problems))
    if undecided:
        raise NotEvaluable("; ".join(undecided + [f"{h.where}: {h.name}: " + "; ".join(h.good) for h in hops
                                                  if not h.undecided]))
    return passed("; ".join(f"{h.where}: {h.name}: " + "; ".join(h.good) for h in hops))


# -- NET006 ------------------------------------------------------------------------------------------------

@check(
    id="NET006", slug="vpc-dhcp-dns", title="The VPC's DHCP options point instances at the VPC's DNS resolver",
    severity="high", resource="vpc", permissions=["ec2:DescribeVpcs", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets"],
    rationale="Instances resolve the names of ECS, ECR, S3 and of the interface endpoints' private DNS with the "
              "DNS servers the VPC's DHCP option set names. Custom servers that do not forward to the VPC resolver "
              "(AmazonProvidedDNS, 169.254.169.253) resolve endpoint names to public addresses, or not at all: the "
              "agent never registers and pulls fail.",
    remediation="Use a DHCP option set with domain-name-servers AmazonProvidedDNS, or make sure your DNS servers "
                "forward AWS names (amazonaws.com) to the VPC resolver, then exempt NET006 for this VPC.",
)
def vpc_dhcp_dns(ctx: CheckContext, res: Resource) -> Finding:
    vpc = network(ctx, dhcp=True).vpcs.get(res.id)
    if vpc is None:
        raise NotApplicable(f"{res.id} does not exist in {ctx.region} (see NET001)")
    if vpc.dhcp_options_id in (None, "default"):
        return passed(f"{res.id} has no DHCP option set ('default'): instances use the VPC resolver "
                      "(AmazonProvidedDNS)")
    if vpc.dhcp is None:
        raise NotEvaluable(f"DHCP option set {vpc.dhcp_options_id} of {res.id} was not returned by "
                           "DescribeDhcpOptions")
    name = f"{res.id}'s DHCP option set {vpc.dhcp.id}"
    if not vpc.dhcp.domain_name_servers:
        return failed(f"{name} names no domain-name-servers: instances get no DNS server and resolve no AWS "
                      "endpoint; use a set with domain-name-servers AmazonProvidedDNS")
    custom = vpc.dhcp.custom_dns
    if custom:
        raise NotEvaluable(f"{name} names custom DNS servers {', '.join(custom)}: whether they forward AWS names "
                           "to the VPC resolver (so that interface endpoints' private DNS names resolve to the "
                           "endpoints) cannot be verified from AWS; check it, then exempt NET006 for this VPC")
    return passed(f"{name} uses the VPC resolver ({', '.join(vpc.dhcp.domain_name_servers)})")


# -- NET007 ------------------------------------------------------------------------------------------------

@check(
    id="NET007", slug="endpoint-policies", title="The VPC endpoint policies on the path allow what the job does",
    severity="high", resource="subnet",
    permissions=["ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
                 "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces", "ec2:DescribeInternetGateways",
                 "ec2:DescribeNatGateways", "ec2:DescribeEgressOnlyInternetGateways", "batch:DescribeJobDefinitions",
                 "batch:DescribeComputeEnvironments", "s3:GetBucketLocation"],
    rationale="An S3 gateway endpoint on the subnet's route table takes S3 traffic on every path, NAT included: "
              "if its policy does not allow ECR's layer bucket (prod-<region>-starport-layer-bucket), every pull "
              "fails with 403. Interface endpoints with private DNS (ecr.api, ecr.dkr, logs, secretsmanager, ssm) "
              "take their service's traffic from every subnet of the VPC, and their policies must allow the pull, "
              "the secrets and the log stream the job uses, and the S3 requests the job role is declared to make "
              "(iam.job_role.allow) on buckets of the endpoint's region.",
    remediation="Allow in the endpoint's policy what the message names: s3:GetObject on "
                "arn:aws:s3:::prod-<region>-starport-layer-bucket/* for the S3 gateway endpoint; ecr:BatchGetImage, "
                "ecr:GetDownloadUrlForLayer and ecr:GetAuthorizationToken for the ECR endpoints; "
                "secretsmanager:GetSecretValue / ssm:GetParameters on the job's secrets; logs:CreateLogStream and "
                "logs:PutLogEvents on its log group; each declared iam.job_role.allow S3 action on its bucket.",
)
def endpoint_policies(ctx: CheckContext, res: Resource) -> Finding:
    data = network(ctx, paths=True)
    _subnet_or_skip(data, ctx, res.id)
    job = ctx.model.job()
    if job is None:
        raise NotApplicable("no job definition: what the job asks of each endpoint is derived from it")
    image = None
    if job.image:
        try:
            image = parse_image(job.image)
        except ImageRefError:
            image = None  # IMG checks say why
    account = ctx.account or (image.account if image and image.is_ecr else None) or next(
        (a for r in (job.execution_role, job.job_role) if r and (a := policy.arn_account(r))), None)
    logs = bool(job.log and job.log.driver == "awslogs")
    declared = declared_s3(ctx)
    requests = netpath.job_requests(ctx.region or "", account, image=image,
                                    secrets=[(s.store, s.value_from) for s in job.secrets],
                                    repository_credentials=job.repository_credentials,
                                    log_group=job.log.option("awslogs-group") if job.log else None, logs=logs,
                                    declared=declared)
    verdicts = netpath.endpoint_policies(data, res.id, requests)
    if not verdicts:
        return passed(f"{res.id}: no VPC endpoint with a policy is on the job's path "
                      f"({', '.join(sorted(requests)) or 'nothing'} asked of endpoints)")
    verdicts, notes = _regional_s3(ctx, verdicts, set(declared))
    denied = [(v, d) for v in verdicts for d in v.decisions if d.verdict == "denied"]
    unknown = [(v, d) for v in verdicts for d in v.decisions if d.verdict == "unknown"]

    def what(d: policy.Decision) -> str:
        return ("the job role's declared " if d.request in declared else "") + d.describe()

    if denied:
        return failed(f"{res.id}: " + "; ".join(f"{v.service} endpoint {v.endpoint} ({v.hop}): its policy does "
                                                f"not allow {what(d)}" for v, d in denied))
    if unknown:
        raise NotEvaluable(f"{res.id}: " + "; ".join(f"{v.service} endpoint {v.endpoint} ({v.hop}): its policy: "
                                                     f"{what(d)}" for v, d in unknown))
    return passed(f"{res.id}: " + "; ".join(f"{v.service} endpoint {v.endpoint} ({v.hop}) allows "
                                            f"{len(v.decisions)} request{'s' if len(v.decisions) != 1 else ''} of "
                                            "the job" for v in verdicts if v.decisions)
                  + "".join(f"; note: {n}" for n in notes))


def _regional_s3(ctx: CheckContext, verdicts: list[netpath.PolicyVerdict],
                 declared: set[policy.Request]) -> tuple[list[netpath.PolicyVerdict], list[str]]:
    """An S3 endpoint carries only its region's buckets: a declared bucket its policy does not allow matters only
    when the bucket is in the target's region (GetBucketLocation); one in another region takes the NAT or internet
    path instead (NET003 says whether there is one), and one whose region cannot be read stays undecided."""
    out: list[netpath.PolicyVerdict] = []
    notes: list[str] = []
    for v in verdicts:
        if v.service != "s3":
            out.append(v)
            continue
        decisions = []
        for d in v.decisions:
            bucket = netpath.bucket_of(d.request.resource)
            if d.verdict != "denied" or d.request not in declared or bucket is None:
                decisions.append(d)
                continue
            where, why = bucket_elsewhere(ctx, bucket)
            if where:
                notes.append(f"S3 bucket {bucket} is in {where}: S3 endpoint {v.endpoint} does not carry its "
                             f"traffic, so its policy does not decide {d.request}")
            elif why:
                decisions.append(policy.Decision(d.request, "unknown", d.method, d.statement,
                                                 f"{d.reason or 'not allowed'}, if the bucket is in {ctx.region}: "
                                                 f"{why}"))
            else:
                decisions.append(d)
        out.append(replace(v, decisions=tuple(decisions)))
    return out, notes
