"""The first wave of a target's reads: each part of what the checks decide over declares the reads it needs, and
a run starts all of them at once, instead of each chain of reads waiting until a check reaches it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_mlbatch.analysis.imageref import ImageRefError, parse
from pytest_mlbatch.aws import batchinfo, principals, reads, roles
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.model.scope import Scope

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target

Read = Callable[[], object]
Part = Callable[["Target", Scope], list[Read]]
PARTS: dict[str, Part] = {}

# The parts each area's checks read (a check of an area reads no other part of the target).
AREA_PARTS: dict[str, tuple[str, ...]] = {
    "ENV": (),
    "IMG": ("image", "roles"),
    "KEY": ("key_pairs",),
    "SG": ("network",),
    "NET": ("network",),
    "IAM": ("roles", "secrets"),
    "BAT": ("compute",),
}
# The AWS managed policies the IAM checks compare roles with (checks/iam.py), read beside the roles.
REFERENCE_POLICIES = {
    "service_role": "service-role/AWSBatchServiceRole",
    "instance_role": "service-role/AmazonEC2ContainerServiceforEC2Role",
    "execution_role": "service-role/AmazonECSTaskExecutionRolePolicy",
}


def part(name: str) -> Callable[[Part], Part]:
    def register(fn: Part) -> Part:
        PARTS[name] = fn
        return fn

    return register


def first_wave(target: Target, areas: Iterable[str]) -> list[Read]:
    """The reads of every part the given areas' checks use: chains of dependent reads, to be started side by side
    (each makes the same cached calls the checks make next, and swallows failures: the checks meet them)."""
    try:  # a target without usable credentials has nothing to read ahead; its items say why
        scope = target.scope()
        target.inventory  # noqa: B018
    except AwsError:
        return []
    names = sorted({p for area in areas for p in AREA_PARTS.get(area, ())})
    return [partial(_quietly, read) for name in names for read in PARTS[name](target, scope)]


def _quietly(read: Read) -> None:
    with contextlib.suppress(Exception):
        read()


# -- the parts ---------------------------------------------------------------------------------------------
@part("network")
def _network(target: Target, scope: Scope) -> list[Read]:
    inv = target.inventory

    def chain() -> None:
        if scope.vpc_id:  # the configured VPC's DNS attributes need not wait for its subnets
            inv.read_ahead(partial(reads.dns_off, inv, scope.vpc_id))
        data = reads.network(inv, scope, target.region, vpcs=True, groups=True, paths=True, acls=True)
        inv.read_ahead(*(partial(reads.dns_off, inv, vpc) for vpc in data.vpc_ids))
        dhcp = [str(v["DhcpOptionsId"]) for v in data.vpcs.values() if v.get("DhcpOptionsId") not in (None, "default")]
        if dhcp:
            inv.read_ahead(partial(reads.dhcp_options, inv, dhcp))

    return [chain]


@part("key_pairs")
def _key_pairs(target: Target, scope: Scope) -> list[Read]:
    return [partial(reads.key_pairs, target.inventory, [scope.key_name])] if scope.key_name else []


@part("image")
def _image(target: Target, scope: Scope) -> list[Read]:
    try:
        ref = parse(scope.image_uri or "")
    except ImageRefError:
        return []
    return [partial(reads.ecr_images, target.inventory, ref)] if ref.is_ecr else []


@dataclass
class _Where:
    inventory: Inventory
    scope: Scope

    def path(self, value: str) -> Path:
        return Path(value)


@part("compute")
def _compute(target: Target, scope: Scope) -> list[Read]:
    return [partial(batchinfo.all_instance_types, _Where(target.inventory, scope)),
            partial(_compute_chain, target, scope)]


def _compute_chain(target: Target, scope: Scope) -> None:
    """After the compute environments: the launch template versions they pin, their registered container instances
    and the instance type offerings of their subnets' zones side by side; then the AMIs those versions name."""
    from pytest_mlbatch.aws.world import AwsWorld
    from pytest_mlbatch.model.compute import templates_of

    inv = target.inventory
    world = AwsWorld(inv, scope, target.region, Path("."))
    ces = [ce for ce in world.compute_environments() if not ce.fargate]
    refs = [ref for ce in ces for ref in templates_of(ce)]

    def offerings(subnets: tuple[str, ...]) -> None:
        world.offered_types(sorted(set(world.subnet_zones(subnets).values())))

    inv.read_ahead(*(partial(world.launch_template_version, ref) for ref in refs),
                   *(partial(world.registered_memory, ce) for ce in ces),
                   *(partial(offerings, ce.subnets) for ce in ces if ce.managed))
    ids = {ce.image_id for ce in ces} | {c.image_id_override for ce in ces for c in ce.ec2_configuration}
    for ref in refs:
        version = world.launch_template_version(ref)
        ids.add(version.image_id if version else None)
    for one in sorted(i for i in ids if i):
        inv.read_ahead(partial(world.images, [one]))


@part("roles")
def _roles(target: Target, scope: Scope) -> list[Read]:
    inv = target.inventory
    values = {"service_role": scope.service_role, "instance_role": scope.instance_role,
              "execution_role": scope.execution_role, "job_role": scope.job_role.name if scope.job_role else None}
    out: list[Read] = []
    for field, value in values.items():
        try:
            ref = roles.parse_role(value) if value else None
        except ValueError:
            ref = None
        if ref is None or ref.service_linked:
            continue
        out.append(partial(_role_chain, inv, ref.name))
        if field in REFERENCE_POLICIES:
            out.append(partial(_reference_policy, target, REFERENCE_POLICIES[field]))
    return out


def _role_chain(inv: Inventory, name: str) -> None:
    """The role and the listings of its policies side by side, then (where SimulatePrincipalPolicy does not answer)
    every policy a local evaluation reads. Where it answers, the listings were read for nothing: two calls a role
    for a round trip less on the critical path."""
    inv.read_ahead(*principals.role_policy_listings(inv, name))
    role = roles.get_role(inv, name)
    if role is not None:
        principals.prefetch(inv, principals.role_principal(role))


def _reference_policy(target: Target, name: str) -> None:
    principals.managed_policy(target.inventory, f"arn:{principals.caller_partition(target)}:iam::aws:policy/{name}")



@part("secrets")
def _secrets(target: Target, scope: Scope) -> list[Read]:
    """The named job definition's secrets (and their customer managed keys) and its awslogs group: what IAM004,
    IAM007 and IAM008 read once the job definition is known."""
    if not scope.job_definition:
        return []

    def chain() -> None:
        world = AwsWorld(target.inventory, scope, target.region, Path("."))
        job = world.job()
        if job is None:
            return
        log = job.log
        if log and log.driver == "awslogs" and log.option("awslogs-group") and \
                (log.option("awslogs-region") or target.region) == target.region:
            target.inventory.read_ahead(partial(world.log_group, str(log.option("awslogs-group"))))
        values = job.secret_values()
        if not values or not (job.execution_role or scope.execution_role):
            return
        sources = world.secret_sources(values)
        if all(s.exists for s in sources):
            keys = {(str(s.kms_key), s.arn.split(":")[3] or target.region) for s in sources
                    if s.encrypted and s.kms_key and not s.kms_key.startswith("alias/aws/")}
            target.inventory.read_ahead(*(partial(world.kms_key, k, r) for k, r in sorted(keys, key=str)))

    return [chain]
