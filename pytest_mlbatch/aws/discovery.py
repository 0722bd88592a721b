"""Complete a target's scope from AWS Batch: queue -> compute environments -> network and roles;
job definition -> image, roles and resources. Failures become problems, never a crash.

The calls (each once, through the inventory's cache, the same calls the checks make later):
batch:DescribeJobQueues, batch:DescribeComputeEnvironments, ec2:DescribeSubnets (the VPC of the subnets),
iam:GetInstanceProfile (the instance role), batch:DescribeJobDefinitions.

What lands in `scope.discovered` (raw API documents, for every area):
  job_queue                        the queue (DescribeJobQueues)
  queue_compute_environment_names  the queue's compute environments, in order
  compute_environments             every compute environment looked at, raw, in queue order
  compute_resources                {ce name: computeResources}
  instance_types, max_vcpus, launch_templates, ec2_configuration, compute_types   {ce name: value}
  subnet_vpcs                      {subnet id: vpc id}
  instance_profile                 the instance profile (GetInstanceProfile)
  job_definition                   the job definition (DescribeJobDefinitions), or the local file's contents
  container                        the container it runs (containerProperties, main node, or ECS task container)
  resource_requirements, platform_capabilities, network_configuration, secrets, repository_credentials,
  linux_parameters, runtime_platform, log_configuration
Problems are (what, reason, outcome) with what in job_queue, compute_environment, job_definition,
instance_profile, network: BAT001-BAT003 and BAT006 report them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_mlbatch.aws import batchinfo as bi
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.roles import get_instance_profile
from pytest_mlbatch.config import JobRole
from pytest_mlbatch.model.scope import Scope

SERVICE_LINKED = "service-linked"


# AWS failures after which no further call can succeed: the remaining stages are not tried (each would wait for
# its own timeouts and retries), and record the same reason.
UNREACHABLE = ("connection", "timeout", "credentials", "assume-role")


def discover(scope: Scope, inventory: Inventory) -> None:
    """Fill what the config left out, from the queue and the job definition; record what disagrees."""
    _read_ahead(scope, inventory)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("job_queue", lambda: _queue(scope, inventory)),
        ("compute_environment", lambda: _compute_environments(scope, inventory)),
        ("network", lambda: _found_by_compute(scope, inventory)),
        ("instance_profile", lambda: _instance_role(scope, inventory)),
        ("job_definition", lambda: _job_definition(scope, inventory)),
    ]
    for i, (what, fn) in enumerate(stages):
        failure = _stage(scope, what, fn)
        if failure is not None and failure.kind in UNREACHABLE:
            for later, _ in stages[i + 1:]:
                scope.problems.append((later, f"discovery stopped: {failure}", "error"))
            return


def _read_ahead(scope: Scope, inventory: Inventory) -> None:
    """The stages run in order (each may complete the scope for the next), but whatever the config already names
    can be read at once, side by side: the queue, the job definition, and, when configured, the compute
    environments, the instance profile and the subnets (the same reads the stages then make)."""
    config = {name for name, source in scope.sources.items() if source == "config"}
    reads: list[Callable[[], object]] = []
    if scope.job_queue:
        reads.append(lambda: bi.describe_job_queue(inventory, scope.job_queue or ""))
    if scope.job_definition:
        reads.append(lambda: bi.describe_job_definition(inventory, scope.job_definition or ""))
    if "compute_environments" in config:
        names = bi.ce_names(scope)
        reads.append(lambda: bi.describe_compute_environments(inventory, names))
    if "instance_profile" in config and scope.instance_profile:
        name = bi.arn_name(scope.instance_profile)
        reads.append(lambda: get_instance_profile(inventory, name))
    if "subnet_ids" in config and scope.subnet_ids:
        subnets = sorted(scope.subnet_ids)
        reads.append(lambda: describe_subnets(inventory, subnets))
    inventory.read_ahead(*reads)


def _found_by_compute(scope: Scope, inventory: Inventory) -> None:
    """The network stage, after reading ahead what the compute environments named: their subnets and instance
    profile are independent reads, in flight together (the next stages make the same reads)."""
    reads: list[Callable[[], object]] = []
    if scope.subnet_ids:
        subnets = list(scope.subnet_ids)
        reads.append(lambda: describe_subnets(inventory, subnets))
    if scope.instance_profile:
        name = bi.arn_name(scope.instance_profile)
        reads.append(lambda: get_instance_profile(inventory, name))
    inventory.read_ahead(*reads)
    _network(scope, inventory)


def describe_subnets(inventory: Inventory, subnet_ids: list[str]) -> list[dict[str, Any]]:
    """The subnets by id, one call (discovery's query for their VPC; NET checks ask the same, from the cache)."""
    found: list[dict[str, Any]] = inventory.paginate("ec2", "describe_subnets", "Subnets",
                                                     Filters=[{"Name": "subnet-id", "Values": sorted(subnet_ids)}])
    return found


def _stage(scope: Scope, what: str, fn: Callable[[], None]) -> AwsError | None:
    try:
        fn()
    except AwsError as exc:
        scope.problems.append((what, f"discovery could not read {what.replace('_', ' ')}: {exc}", "error"))
        return exc
    except Exception as exc:
        scope.problems.append((what, f"discovery failed on {what.replace('_', ' ')}: {type(exc).__name__}: {exc}",
                               "error"))
    return None


def _offer_name(scope: Scope, name: str, value: str | None, how: str) -> None:
    """Offer a role/profile/key name; a config value naming the same thing by name or ARN is no conflict."""
    if not value:
        return
    current = getattr(scope, name)
    if current and scope.sources.get(name) == "config":
        if _same_role(current, value):
            return
        scope.conflicts[name] = (current, value)
        return
    scope.offer(name, value, how)


def _same_role(a: str, b: str) -> bool:
    if SERVICE_LINKED in (a, b):
        other = b if a == SERVICE_LINKED else a
        return other == SERVICE_LINKED or "aws-service-role/batch.amazonaws.com/" in other \
            or bi.arn_name(other) == "AWSServiceRoleForBatch"
    return bi.same_name(a, b)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# -- queue -> compute environments -------------------------------------------------------------------------------
def _queue(scope: Scope, inventory: Inventory) -> None:
    if not scope.job_queue:
        return
    queue = bi.describe_job_queue(inventory, scope.job_queue)
    if queue is None:
        scope.problems.append(("job_queue", f"job queue {scope.job_queue} does not exist in {inventory.region}",
                               "failed"))
        return
    scope.discovered["job_queue"] = queue
    names = [bi.arn_name(ce) for ce in bi.queue_order(queue)]
    scope.discovered["queue_compute_environment_names"] = names
    if not names:
        scope.problems.append(("compute_environment", f"job queue {scope.job_queue} orders no compute environment",
                               "failed"))
        return
    current = [bi.arn_name(c) for c in scope.compute_environments]
    if scope.sources.get("compute_environments") == "config":
        missing = [c for c in current if c not in names]
        if missing:
            scope.conflicts["compute_environments"] = (list(scope.compute_environments), names)
        return
    scope.offer("compute_environments", names, f"job queue {scope.job_queue} computeEnvironmentOrder")


def _compute_environments(scope: Scope, inventory: Inventory) -> None:
    names = bi.ce_names(scope)
    if not names:
        return
    found = {ce["computeEnvironmentName"]: ce for ce in bi.describe_compute_environments(inventory, names)}
    order = _unique([bi.arn_name(c) for c in scope.compute_environments]
                    + list(scope.discovered.get("queue_compute_environment_names", [])))
    scope.discovered["compute_environments"] = [found[n] for n in order if n in found]
    resources: dict[str, dict[str, Any]] = {n: found[n].get("computeResources", {}) for n in order if n in found}
    scope.discovered["compute_resources"] = resources
    scope.discovered["instance_types"] = {n: list(cr.get("instanceTypes", []) or []) for n, cr in resources.items()}
    scope.discovered["max_vcpus"] = {n: cr.get("maxvCpus") for n, cr in resources.items()}
    scope.discovered["launch_templates"] = {n: cr["launchTemplate"] for n, cr in resources.items()
                                            if cr.get("launchTemplate")}
    scope.discovered["ec2_configuration"] = {n: cr["ec2Configuration"] for n, cr in resources.items()
                                             if cr.get("ec2Configuration")}
    scope.discovered["compute_types"] = {n: cr.get("type") for n, cr in resources.items()}

    checked = [found[bi.arn_name(c)] for c in scope.compute_environments if bi.arn_name(c) in found]
    if not checked:
        return
    label = ", ".join(ce["computeEnvironmentName"] for ce in checked)
    how = f"compute environment{'s' if len(checked) > 1 else ''} {label}"
    subnets: list[str] = []
    groups: list[str] = []
    for ce in checked:
        cr = ce.get("computeResources", {})
        subnets.extend(cr.get("subnets", []) or [])
        groups.extend(cr.get("securityGroupIds", []) or [])
    _offer_list(scope, "subnet_ids", _unique(subnets), f"{how} computeResources.subnets")
    _offer_list(scope, "security_group_ids", _unique(groups), f"{how} computeResources.securityGroupIds")

    first = checked[0]
    first_name = first["computeEnvironmentName"]
    cr = first.get("computeResources", {})
    if first.get("type", "MANAGED") == "MANAGED":
        role = first.get("serviceRole") or SERVICE_LINKED
        _offer_name(scope, "service_role", role, f"compute environment {first_name} serviceRole")
    if not bi.is_fargate(first):
        if cr.get("instanceRole"):
            _offer_name(scope, "instance_profile", bi.arn_name(str(cr["instanceRole"])),
                        f"compute environment {first_name} computeResources.instanceRole")
        if cr.get("ec2KeyPair"):
            _offer_name(scope, "key_name", str(cr["ec2KeyPair"]),
                        f"compute environment {first_name} computeResources.ec2KeyPair")


def _offer_list(scope: Scope, name: str, values: list[str], how: str) -> None:
    if scope.sources.get(name) == "config":
        if set(values) - set(getattr(scope, name)) or set(getattr(scope, name)) - set(values):
            scope.conflicts[name] = (list(getattr(scope, name)), values)
        return
    scope.offer(name, values, how)


def _network(scope: Scope, inventory: Inventory) -> None:
    if not scope.subnet_ids or (scope.sources.get("vpc_id") == "config"
                                and scope.sources.get("subnet_ids") == "config"):
        return
    found = describe_subnets(inventory, list(scope.subnet_ids))
    vpcs = {s["SubnetId"]: s["VpcId"] for s in found}
    scope.discovered["subnet_vpcs"] = vpcs
    ordered = _unique([vpcs[s] for s in scope.subnet_ids if s in vpcs])
    if ordered:
        source = scope.sources.get("subnet_ids", "")
        scope.offer("vpc_id", ordered[0], f"VPC of subnet {next(s for s in scope.subnet_ids if s in vpcs)}"
                    + (f" ({source})" if source.startswith("discovered") else ""))
    if len(ordered) > 1:
        scope.problems.append(("network", f"the subnets are in {len(ordered)} VPCs ({', '.join(ordered)}); a "
                               "compute environment's subnets must share one VPC", "failed"))


def _instance_role(scope: Scope, inventory: Inventory) -> None:
    profile = scope.instance_profile
    if not profile:
        return
    ip = get_instance_profile(inventory, bi.arn_name(profile))
    if ip is None:
        scope.problems.append(("instance_profile", f"instance profile {profile} "
                               f"({scope.sources.get('instance_profile', '')}) does not exist, so its role "
                               "cannot be discovered", "failed"))
        return
    scope.discovered["instance_profile"] = ip
    roles = ip.get("Roles", [])
    if not roles:
        scope.problems.append(("instance_profile", f"instance profile {profile} contains no role", "failed"))
        return
    _offer_name(scope, "instance_role", str(roles[0]["RoleName"]), f"instance profile {profile} Roles[0]")


# -- job definition ----------------------------------------------------------------------------------------------
def _job_definition(scope: Scope, inventory: Inventory) -> None:
    if not scope.job_definition:
        return
    jd, why = bi.describe_job_definition(inventory, scope.job_definition)
    if jd is None:
        scope.problems.append(("job_definition", why, "failed"))
        return
    scope.discovered["job_definition"] = jd
    how = f"job definition {jd.get('jobDefinitionName', scope.job_definition)}:{jd.get('revision', '?')}"
    apply_job_definition(scope, jd, how)


def apply_job_definition(scope: Scope, jd: dict[str, Any], how: str) -> None:
    """Offer what a job definition (described, or a local file) says: image, roles, size; keep the rest raw."""
    cont = bi.container(jd)
    scope.discovered["container"] = cont
    for key, field in (("resource_requirements", "resourceRequirements"), ("network_configuration",
                       "networkConfiguration"), ("secrets", "secrets"), ("repository_credentials",
                       "repositoryCredentials"), ("linux_parameters", "linuxParameters"),
                       ("runtime_platform", "runtimePlatform"), ("log_configuration", "logConfiguration")):
        if cont.get(field) is not None:
            scope.discovered[key] = cont[field]
    scope.discovered["platform_capabilities"] = bi.platform_capabilities(jd)
    image = cont.get("image")
    if image:
        scope.offer("image_uri", str(image), f"{how} image")
    if cont.get("jobRoleArn"):
        arn = str(cont["jobRoleArn"])
        name = bi.arn_name(arn)
        if scope.job_role is not None and scope.sources.get("job_role") == "config":
            if scope.job_role.name != name:
                scope.conflicts["job_role"] = (scope.job_role.name, name)
        else:
            scope.offer("job_role", JobRole(name=name, path=bi.arn_path(arn)), f"{how} jobRoleArn")
    if cont.get("executionRoleArn"):
        _offer_name(scope, "execution_role", bi.arn_name(str(cont["executionRoleArn"])), f"{how} executionRoleArn")
    try:
        size = bi.job_size(jd)
    except Exception:
        return
    if size.vcpus is None and size.memory is None and size.gpus is None:
        return
    if scope.job is not None and scope.sources.get("job") == "config":
        mine, theirs = scope.job, size
        if (mine.vcpus, mine.memory, mine.gpus or 0) != (theirs.vcpus, theirs.memory, theirs.gpus or 0):
            scope.conflicts["job"] = (mine, theirs)
        return
    scope.offer("job", size, f"{how} resourceRequirements")
