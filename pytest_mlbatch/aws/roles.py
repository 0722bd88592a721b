"""IAM role and instance-profile resolution (name, ARN with path, "service-linked") and trust-policy decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_mlbatch.analysis.policy import TrustDecision, trust
from pytest_mlbatch.aws.inventory import AwsError
from pytest_mlbatch.model.principals import (
    BATCH_SERVICE,
    BATCH_SLR_NAME,
    SERVICE_LINKED,
    ProfileRef,
    RoleRef,
    linked_service,
    parse_profile,
    parse_role,
    trust_policy,
)

if TYPE_CHECKING:
    from pytest_mlbatch.aws.inventory import Inventory

__all__ = ["BATCH_SERVICE", "BATCH_SLR_NAME", "SERVICE_LINKED", "ProfileRef", "RoleRef", "TrustDecision",
           "get_instance_profile", "get_role", "is_not_found", "linked_service", "parse_profile", "parse_role",
           "service_linked_role", "trust", "trust_policy"]

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


def get_instance_profile(inv: Inventory, name: str) -> dict[str, Any] | None:
    """GetInstanceProfile by name; None when the profile does not exist."""
    return _get(inv, "get_instance_profile", "InstanceProfile", InstanceProfileName=name)
