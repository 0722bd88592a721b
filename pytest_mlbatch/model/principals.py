"""Principals and what decides their rights: roles (trust, permissions boundary), instance profiles, the caller,
managed policies, resource policies (ECR repositories, KMS keys), secrets and log groups, as frozen, typed facts
(built by aws/world.py from the APIs; a template-based inventory would build the same)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_mlbatch.analysis import imageref

SERVICE_LINKED = "service-linked"
BATCH_SERVICE = "batch.amazonaws.com"
BATCH_SLR_NAME = "AWSServiceRoleForBatch"


# -- references (what a config value or a Batch resource says) ---------------------------------------------------
@dataclass(frozen=True)
class RoleRef:
    """What the config or a Batch resource says about a role."""

    raw: str
    name: str
    path: str | None = None  # known only from an ARN
    arn: str | None = None
    service_linked: bool = False

    @property
    def label(self) -> str:
        return self.arn or self.name


def parse_role(value: str) -> RoleRef:
    """A role name, a role ARN (arn:PARTITION:iam::ACCOUNT:role/PATH/NAME), or "service-linked"."""
    value = value.strip()
    if value.lower() in (SERVICE_LINKED, BATCH_SLR_NAME.lower()):  # Batch's service-linked role, by its name too
        return RoleRef(value, BATCH_SLR_NAME, f"/aws-service-role/{BATCH_SERVICE}/", None, True)
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
            raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/[PATH/]NAME)")
        rest = parts[5][len("role/"):]
        path, _, name = rest.rpartition("/")
        path = f"/{path}/" if path else "/"
        return RoleRef(value, name, path, value, path.startswith("/aws-service-role/"))
    if "/" in value:
        path, _, name = value.rpartition("/")
        return RoleRef(value, name, "/" + path.strip("/") + "/", None, path.strip("/").startswith("aws-service-role"))
    return RoleRef(value, value)


def linked_service(ref: RoleRef) -> str | None:
    """The service a service-linked role belongs to, from its path /aws-service-role/SERVICE/."""
    if not ref.service_linked or not ref.path:
        return None
    parts = ref.path.strip("/").split("/")
    return parts[1] if len(parts) > 1 else None


@dataclass(frozen=True)
class ProfileRef:
    raw: str
    name: str
    arn: str | None = None


def parse_profile(value: str) -> ProfileRef:
    """An instance profile name or ARN (arn:PARTITION:iam::ACCOUNT:instance-profile/PATH/NAME)."""
    value = value.strip()
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("instance-profile/"):
            return ProfileRef(value, parts[5].rpartition("/")[2], value)
        if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/"):
            return ProfileRef(value, parts[5].rpartition("/")[2], None)  # a role ARN: IAM003 says so
        raise ValueError(f"{value!r} is not an instance profile ARN")
    return ProfileRef(value, value.rpartition("/")[2])


def trust_policy(service: str) -> dict[str, Any]:
    """The trust policy of a role `service` may assume (what --fix creates roles with)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


# -- principals --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """A role or user whose identity policies decide what it may do (name, ARN, permissions boundary)."""

    kind: Literal["role", "user"]
    name: str
    arn: str
    boundary_arn: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    """An IAM role as IAM describes it: where it lives, who may assume it (trust policy), its boundary, tags."""

    name: str
    arn: str
    path: str
    role_id: str
    trust_policy: Any  # AssumeRolePolicyDocument as IAM returned it (a mapping, or URL-encoded JSON text)
    boundary_arn: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def principal(self) -> Principal:
        return Principal("role", self.name, self.arn, self.boundary_arn)

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)

    def as_trust_input(self) -> dict[str, Any]:
        """The fields a trust decision reads (analysis.policy.trust)."""
        return {"RoleName": self.name, "Arn": self.arn, "AssumeRolePolicyDocument": self.trust_policy}


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    arn: str
    roles: tuple[str, ...]  # role names inside it


@dataclass(frozen=True)
class Identity:
    """Whose credentials the target uses, as STS says (account and ARN), or why there are no usable credentials
    (then account and arn are None)."""

    account: str | None
    arn: str | None
    credentials_problem: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who runs the preflight (and would submit): the root user (principal None), or a user or an assumed role."""

    arn: str
    root: bool
    principal: Principal | None


@dataclass(frozen=True)
class ManagedPolicy:
    """An AWS managed policy's default version, e.g. AWSBatchServiceRole, used as the reference of a role's rights."""

    arn: str
    version: str
    document: Mapping[str, Any]


# -- resources whose own policies or existence decide ----------------------------------------------------------
@dataclass(frozen=True)
class KmsKey:
    """A KMS key: whose it is (AWS managed keys need no grant), its key policy (None when it cannot be read)."""

    arn: str
    manager: str  # "AWS" or "CUSTOMER"
    policy: Mapping[str, Any] | None
    enabled: bool = True

    @property
    def aws_managed(self) -> bool:
        return self.manager == "AWS"


@dataclass(frozen=True)
class SecretSource:
    """Where a `secrets[].valueFrom` (or repositoryCredentials) points, resolved: the Secrets Manager secret or SSM
    parameter's ARN, whether it exists, and the KMS key that encrypts it (None: the service's AWS managed key)."""

    value_from: str
    store: Literal["secretsmanager", "ssm"]
    arn: str  # the resource the execution role must be allowed to read
    exists: bool
    kms_key: str | None = None  # key id/ARN/alias as the secret or parameter names it
    encrypted: bool = True  # SSM String/StringList parameters are not
    versions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a secret's version ids and their staging labels

    def missing_version(self) -> str | None:
        """The version stage or version id valueFrom asks for (…:json-key:version-stage:version-id) that the secret
        does not have; None when it asks for none or has it."""
        if self.store != "secretsmanager" or not self.exists:
            return None
        parts = self.value_from.split(":")
        stage = parts[8] if len(parts) > 8 else ""
        version = parts[9] if len(parts) > 9 else ""
        by_id = dict(self.versions)
        if version and version not in by_id:
            return f"version id {version}"
        if stage and not any(stage in stages for v, stages in self.versions if not version or v == version):
            return f"version stage {stage}" + (f" on version {version}" if version else "")
        return None


@dataclass(frozen=True)
class LogGroup:
    name: str
    arn: str


def ecr_repository(uri: str) -> tuple[str, str, str, str | None] | None:
    """(account, region, repository, tag-or-digest) of an ECR image URI (parsed by analysis.imageref); None for any
    other registry or a malformed reference (the IMG checks report those)."""
    try:
        ref = imageref.parse(uri)
    except imageref.ImageRefError:
        return None
    if not ref.is_ecr or ref.account is None or ref.region is None:
        return None
    return ref.account, ref.region, ref.repository, ref.digest or (ref.tag if ref.explicit_tag else None)
