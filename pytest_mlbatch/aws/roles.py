"""IAM role and instance-profile resolution (name, ARN with path, "service-linked") and trust-policy decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_mlbatch.analysis.policy import (
    Request,
    arn_account,
    as_list,
    document_version,
    parse_document,
    statement_applies,
    statements,
    with_known_context,
)
from pytest_mlbatch.aws.inventory import AwsError

if TYPE_CHECKING:
    from pytest_mlbatch.aws.inventory import Inventory

SERVICE_LINKED = "service-linked"
BATCH_SERVICE = "batch.amazonaws.com"
BATCH_SLR_NAME = "AWSServiceRoleForBatch"


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


def is_not_found(exc: AwsError) -> bool:
    return exc.code in ("NoSuchEntity", "NoSuchEntityException")


def _get(inv: Inventory, method: str, result: str, **params: str) -> dict[str, Any] | None:
    """One IAM Get* call (cached); None when the entity does not exist. Other failures raise AwsError."""
    try:
        found: dict[str, Any] = inv.call("iam", method, **params)[result]
    except AwsError as exc:
        if is_not_found(exc):
            return None
        raise
    return found


def get_role(inv: Inventory, name: str) -> dict[str, Any] | None:
    """GetRole by name; None when the role does not exist."""
    return _get(inv, "get_role", "Role", RoleName=name)


def service_linked_role(inv: Inventory, service: str = BATCH_SERVICE) -> dict[str, Any] | None:
    """The service's service-linked role, found by its path (/aws-service-role/SERVICE/), whatever its name."""
    roles = inv.paginate("iam", "list_roles", "Roles", PathPrefix=f"/aws-service-role/{service}/")
    return dict(roles[0]) if roles else None


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


def get_instance_profile(inv: Inventory, name: str) -> dict[str, Any] | None:
    """GetInstanceProfile by name; None when the profile does not exist."""
    return _get(inv, "get_instance_profile", "InstanceProfile", InstanceProfileName=name)


@dataclass(frozen=True)
class TrustDecision:
    verdict: Literal["allowed", "denied", "unknown"]
    message: str


def trust(role: Mapping[str, Any], service: str) -> TrustDecision:
    """May `service` (e.g. ec2.amazonaws.com) call sts:AssumeRole on this role, per its trust policy?
    An Allow naming the service and no Deny: allowed; a condition on a deciding statement: unknown."""
    name = role.get("RoleName", "?")
    try:
        doc = parse_document(role.get("AssumeRolePolicyDocument") or {})
    except ValueError as exc:
        return TrustDecision("unknown", f"the trust policy of {name} cannot be read: {exc}")
    # the service assumes the role for a resource of the role's own account: aws:SourceAccount is known
    account = arn_account(str(role.get("Arn", "")))
    req = with_known_context(Request("sts:AssumeRole", str(role.get("Arn", "*"))), source_account=account)
    version = document_version(doc)
    allow = maybe = None
    for i, stmt in enumerate(statements(doc)):
        applies = statement_applies(stmt, req, [service], version)
        if applies is False:
            continue
        label = f"statement {stmt.get('Sid')!r}" if stmt.get("Sid") else f"statement #{i + 1}"
        if str(stmt.get("Effect", "")).lower() == "deny":
            if applies:
                return TrustDecision("denied", f"the trust policy of {name} denies {service} sts:AssumeRole "
                                               f"({label})")
            maybe = maybe or f"a Deny {label} with a condition or NotPrincipal may apply"
        elif applies:
            allow = allow or label
        else:
            maybe = maybe or f"the Allow {label} has a condition"
    if maybe:
        return TrustDecision("unknown", f"cannot tell whether {name} trusts {service}: {maybe}")
    if allow:
        return TrustDecision("allowed", f"{name} trusts {service} ({allow})")
    services = sorted({str(s) for stmt in statements(doc) if isinstance(stmt.get("Principal"), Mapping)
                       for s in as_list(stmt["Principal"].get("Service"))})
    found = f"; it trusts {', '.join(services)}" if services else ""
    return TrustDecision("denied", f"the trust policy of {name} does not let {service} assume it{found}")


def trust_policy(service: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
