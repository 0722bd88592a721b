"""Which resources each check runs on, per resource kind, taken from a target's scope."""

from __future__ import annotations

from collections.abc import Callable

from pytest_mlbatch.findings import Resource
from pytest_mlbatch.model.scope import Scope

# A provider returns the resources of its kind, or a string: the reason there are none (the check is skipped).
Provider = Callable[[Scope, str], "list[Resource] | str"]
PROVIDERS: dict[str, Provider] = {}


def provider(kind: str) -> Callable[[Provider], Provider]:
    def register(fn: Provider) -> Provider:
        if kind in PROVIDERS:
            raise ValueError(f"duplicate resource kind {kind}")
        PROVIDERS[kind] = fn
        return fn

    return register


def resources_for(kind: str, scope: Scope, target_label: str) -> list[Resource] | str:
    try:
        fn = PROVIDERS[kind]
    except KeyError:
        raise ValueError(f"unknown resource kind {kind!r}") from None
    return fn(scope, target_label)


def _one(kind: str, value: str | None, missing: str, **data: object) -> list[Resource] | str:
    return [Resource(kind, value, data)] if value else missing


@provider("target")
def _target(scope: Scope, label: str) -> list[Resource] | str:
    return [Resource("target", label)]


@provider("docker")
def _docker(scope: Scope, label: str) -> list[Resource] | str:
    return [Resource("docker", "docker-daemon")]


@provider("image")
def _image(scope: Scope, label: str) -> list[Resource] | str:
    return _one("image", scope.image_uri, "no image: set image.uri (or batch.job_definition to discover it)",
                local=scope.image_local)


@provider("key_pair")
def _key_pair(scope: Scope, label: str) -> list[Resource] | str:
    return _one("key_pair", scope.key_name, "no key pair: set key_pair.name (or a compute environment with "
                "ec2KeyPair)", private_key_file=scope.key_file)


@provider("vpc")
def _vpc(scope: Scope, label: str) -> list[Resource] | str:
    return _one("vpc", scope.vpc_id, "no VPC: set network.vpc_id (or a compute environment to discover it)")


@provider("subnet")
def _subnet(scope: Scope, label: str) -> list[Resource] | str:
    if not scope.subnet_ids:
        return "no subnets: set network.subnet_ids (or a compute environment to discover them)"
    return [Resource("subnet", s) for s in scope.subnet_ids]


@provider("subnet_set")
def _subnet_set(scope: Scope, label: str) -> list[Resource] | str:
    if not scope.subnet_ids:
        return "no subnets: set network.subnet_ids (or a compute environment to discover them)"
    name = scope.compute_environments[0] if len(scope.compute_environments) == 1 else (scope.vpc_id or "subnets")
    return [Resource("subnet_set", name, {"subnet_ids": list(scope.subnet_ids)})]


@provider("security_group")
def _security_group(scope: Scope, label: str) -> list[Resource] | str:
    out = [Resource("security_group", g) for g in scope.security_group_ids]
    if scope.security_group is not None:
        out.append(Resource("security_group", scope.security_group.name, {"declared": True}))
    return out or "no security groups: set network.security_group_ids or network.security_group"


@provider("declared_security_group")
def _declared_security_group(scope: Scope, label: str) -> list[Resource] | str:
    if scope.security_group is None:
        return "no declared security group: set network.security_group"
    return [Resource("declared_security_group", scope.security_group.name)]


@provider("service_role")
def _service_role(scope: Scope, label: str) -> list[Resource] | str:
    return _one("service_role", scope.service_role, "no service role: set iam.service_role (or a compute "
                "environment to discover it)")


@provider("instance_role")
def _instance_role(scope: Scope, label: str) -> list[Resource] | str:
    return _one("instance_role", scope.instance_role, "no instance role: set iam.instance_role (or an instance "
                "profile to discover it)")


@provider("instance_profile")
def _instance_profile(scope: Scope, label: str) -> list[Resource] | str:
    return _one("instance_profile", scope.instance_profile, "no instance profile: set iam.instance_profile (or "
                "a compute environment to discover it)")


@provider("execution_role")
def _execution_role(scope: Scope, label: str) -> list[Resource] | str:
    return _one("execution_role", scope.execution_role, "no execution role configured (needed on Fargate or "
                "for secrets): set iam.execution_role")


@provider("job_role")
def _job_role(scope: Scope, label: str) -> list[Resource] | str:
    return _one("job_role", scope.job_role.name if scope.job_role else None,
                "no job role: set iam.job_role.name (or a job definition with jobRoleArn)")


@provider("caller")
def _caller(scope: Scope, label: str) -> list[Resource] | str:
    if not (scope.job_queue or scope.job_definition):
        return "nothing to submit to: set batch.job_queue and batch.job_definition"
    return [Resource("caller", "caller")]


def discovery_problems(scope: Scope, *whats: str) -> list[tuple[str, str, str]]:
    """Discovery failures about these kinds (and unattributed ones): shown by the check that runs on the kind."""
    return [p for p in scope.problems if p[0] in (*whats, "discovery")]


@provider("compute_environment")
def _compute_environment(scope: Scope, label: str) -> list[Resource] | str:
    if not scope.compute_environments:
        problems = discovery_problems(scope, "job_queue", "compute_environment")
        if problems:  # discovery could not find them: one item that fails or errors with the reason
            return [Resource("compute_environment", "undiscovered", {"problems": problems})]
        return "no compute environment: set batch.compute_environment (or batch.job_queue to discover it)"
    return [Resource("compute_environment", c) for c in scope.compute_environments]


@provider("job_queue")
def _job_queue(scope: Scope, label: str) -> list[Resource] | str:
    return _one("job_queue", scope.job_queue, "no job queue: set batch.job_queue")


@provider("job_definition")
def _job_definition(scope: Scope, label: str) -> list[Resource] | str:
    out = [Resource("job_definition", scope.job_definition)] if scope.job_definition else []
    if scope.job_definition_file:  # validated before it is registered, also next to a registered one
        out.append(Resource("job_definition", scope.job_definition_file, {"file": scope.job_definition_file}))
    return out or "no job definition: set batch.job_definition (or batch.job_definition_file)"


@provider("job")
def _job(scope: Scope, label: str) -> list[Resource] | str:
    if scope.job_definition or scope.job_definition_file or scope.job is not None:
        return [Resource("job", scope.job_definition or scope.job_definition_file or "job")]
    return "no job: set batch.job_definition, batch.job_definition_file or batch.job"
