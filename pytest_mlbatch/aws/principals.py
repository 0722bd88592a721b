"""A principal's permissions through the inventory: SimulatePrincipalPolicy where the account answers it, else a
local evaluation (analysis.policy) of the identity policies and permissions boundary it reads."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_mlbatch.analysis.policy import (
    LOCAL,
    Decision,
    Document,
    Request,
    arn_account,
    evaluate_with_boundary,
    parse_document,
    with_known_context,
)
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.principals import Caller, InstanceProfile, ManagedPolicy, Principal, Role

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target

SIMULATION = "iam:SimulatePrincipalPolicy"
__all__ = ["Principal"]  # the model's principal, re-exported for the callers of decide()


def _managed_document(inv: Inventory, arn: str) -> Document:
    policy = inv.call("iam", "get_policy", PolicyArn=arn)["Policy"]
    version = inv.call("iam", "get_policy_version", PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    return Document(f"managed policy {policy.get('PolicyName', arn)}",
                    parse_document(version["PolicyVersion"]["Document"]))


def managed_policy(inv: Inventory, arn: str) -> tuple[str, dict[str, Any]]:
    """(default version id, document) of a managed policy, e.g. AWSBatchServiceRole."""
    policy = inv.call("iam", "get_policy", PolicyArn=arn)["Policy"]
    version = inv.call("iam", "get_policy_version", PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    return str(policy["DefaultVersionId"]), parse_document(version["PolicyVersion"]["Document"])


def role_policy_listings(inv: Inventory, name: str) -> tuple[Callable[[], list[Any]], Callable[[], list[Any]]]:
    """The two listings of a role's policies (attached managed, inline names): they need only the role's name."""

    def attached() -> list[Any]:
        return inv.paginate("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)

    def inline() -> list[Any]:
        return inv.paginate("iam", "list_role_policies", "PolicyNames", RoleName=name)

    return attached, inline


def identity_documents(inv: Inventory, principal: Principal) -> list[Document]:
    """The attached managed and inline policies of a role, or of a user and its groups."""
    docs: list[Document] = []
    if principal.kind == "role":
        n = principal.name
        attached, inline = role_policy_listings(inv, n)

        def inline_document(pname: str) -> Any:
            return inv.call("iam", "get_role_policy", RoleName=n, PolicyName=pname)["PolicyDocument"]

        # three rounds in flight instead of one read at a time: both listings; every policy they name; the
        # managed policies' default versions (read_ahead does nothing in a serial run)
        inv.read_ahead(attached, inline)
        arns = [str(att["PolicyArn"]) for att in attached()]
        names = [str(pname) for pname in inline()]
        inv.read_ahead(*(functools.partial(_managed_document, inv, arn) for arn in arns),
                       *(functools.partial(inline_document, pname) for pname in names))
        docs.extend(_managed_document(inv, arn) for arn in arns)
        docs.extend(Document(f"inline policy {pname}", parse_document(inline_document(pname))) for pname in names)
        return docs
    n = principal.name
    for att in inv.paginate("iam", "list_attached_user_policies", "AttachedPolicies", UserName=n):
        docs.append(_managed_document(inv, att["PolicyArn"]))
    for pname in inv.paginate("iam", "list_user_policies", "PolicyNames", UserName=n):
        doc = inv.call("iam", "get_user_policy", UserName=n, PolicyName=pname)["PolicyDocument"]
        docs.append(Document(f"inline policy {pname}", parse_document(doc)))
    for group in inv.paginate("iam", "list_groups_for_user", "Groups", UserName=n):
        g = group["GroupName"]
        for att in inv.paginate("iam", "list_attached_group_policies", "AttachedPolicies", GroupName=g):
            d = _managed_document(inv, att["PolicyArn"])
            docs.append(Document(f"{d.source} (group {g})", d.document))
        for pname in inv.paginate("iam", "list_group_policies", "PolicyNames", GroupName=g):
            doc = inv.call("iam", "get_group_policy", GroupName=g, PolicyName=pname)["PolicyDocument"]
            docs.append(Document(f"inline policy {pname} (group {g})", parse_document(doc)))
    return docs


def role_principal(role: Mapping[str, Any]) -> Principal:
    boundary = role.get("PermissionsBoundary", {}) or {}
    return Principal("role", str(role["RoleName"]), str(role["Arn"]), boundary.get("PermissionsBoundaryArn"))


def user_principal(user: Mapping[str, Any]) -> Principal:
    boundary = user.get("PermissionsBoundary", {}) or {}
    return Principal("user", str(user["UserName"]), str(user["Arn"]), boundary.get("PermissionsBoundaryArn"))


def _simulate(inv: Inventory, principal: Principal, requests: Sequence[Request]) -> list[Decision]:
    """One SimulatePrincipalPolicy call per (resource, context); raises AwsError if the API does not answer."""
    out: dict[Request, Decision] = {}
    groups: dict[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], list[Request]] = {}
    for req in requests:
        groups.setdefault((req.resource, req.context), []).append(req)
    for (resource, context), reqs in groups.items():
        params: dict[str, Any] = {"PolicySourceArn": principal.arn,
                                  "ActionNames": sorted({r.action for r in reqs})}
        if resource != "*":
            params["ResourceArns"] = [resource]
        if context:
            params["ContextEntries"] = [{"ContextKeyName": k, "ContextKeyValues": list(v),
                                         "ContextKeyType": "stringList"} for k, v in context]
        results = inv.paginate("iam", "simulate_principal_policy", "EvaluationResults", **params)
        by_action = {str(r.get("EvalActionName", "")).lower(): r for r in results}
        for req in reqs:
            r = by_action.get(req.action.lower())
            if r is None:
                out[req] = Decision(req, "unknown", SIMULATION, None, "the simulation returned no result for it")
                continue
            out[req] = _simulated_decision(req, r)
    return [out[r] for r in requests]


def _simulated_decision(req: Request, r: Mapping[str, Any]) -> Decision:
    decision = str(r.get("EvalDecision", ""))
    matched = [f"{m.get('SourcePolicyType', 'policy')} {m.get('SourcePolicyId', '?')}"
               for m in r.get("MatchedStatements", []) or []]
    statement = ", ".join(matched) or None
    missing = list(r.get("MissingContextValues", []) or [])
    orgs = (r.get("OrganizationsDecisionDetail") or {}).get("AllowedByOrganizations")
    boundary = (r.get("PermissionsBoundaryDecisionDetail") or {}).get("AllowedByPermissionsBoundary")
    if missing and decision != "explicitDeny":
        return Decision(req, "unknown", SIMULATION, statement,
                        f"depends on context keys the simulation lacks: {', '.join(missing)}")
    if decision == "allowed":
        return Decision(req, "allowed", SIMULATION, statement)
    if decision == "explicitDeny":
        return Decision(req, "denied", SIMULATION, statement, "explicit deny")
    if orgs is False:
        return Decision(req, "denied", SIMULATION, statement, "denied by an organization SCP")
    if boundary is False:
        return Decision(req, "denied", SIMULATION, statement, "not allowed by the permissions boundary")
    return Decision(req, "denied", SIMULATION, statement, "no statement allows it (implicit deny)")


def local_decisions(inv: Inventory, principal: Principal, requests: Sequence[Request],
                    note: str = "") -> list[Decision]:
    identity = identity_documents(inv, principal)
    boundary = [_managed_document(inv, principal.boundary_arn)] if principal.boundary_arn else None
    method = f"{LOCAL} of identity policies (organization SCPs not visible)" + (f"; {note}" if note else "")
    return [evaluate_with_boundary(identity, boundary, req, method) for req in requests]


def _simulation_unavailable(inv: Inventory, principal: Principal, requests: Sequence[Request],
                            first: list[Decision]) -> str | None:
    """Whether SimulatePrincipalPolicy answers (None) or why not: learned once per inventory (target and run) by the
    first asker, whose decisions land in `first`, while concurrent askers wait for its answer instead of probing."""

    def probe() -> str | None:
        try:
            first.extend(_simulate(inv, principal, requests))
        except AwsError as exc:
            return f"{SIMULATION} not available: {exc.code}"
        return None

    unavailable: str | None = inv.memo("iam-simulation-probe", probe)
    return unavailable


def prefetch(inv: Inventory, principal: Principal) -> None:
    """Read what decide() will need for this principal before a check asks: whether the simulation answers (asked
    about the principal reading itself), and where it does not, every policy the local evaluation reads."""
    if _simulation_unavailable(inv, principal, [Request("iam:GetRole", principal.arn)], []) is None:
        return
    identity_documents(inv, principal)
    if principal.boundary_arn:
        _managed_document(inv, principal.boundary_arn)


def decide(inv: Inventory, principal: Principal, requests: Sequence[Request]) -> list[Decision]:
    """Answer every request: by SimulatePrincipalPolicy if this account answers it, else locally. The local
    path reads the principal's policies (AwsError propagates: the check's outcome is then `error`).
    Both are asked with the context keys known for the request (aws:RequestedRegion, aws:PrincipalAccount);
    the decisions name the request as asked."""
    if not requests:
        return []
    asked = list(requests)
    known = [with_known_context(r, region=inv.region, principal_account=arn_account(principal.arn)) for r in asked]
    return [dataclasses.replace(d, request=r) for d, r in zip(_decide(inv, principal, known), asked, strict=True)]


def _decide(inv: Inventory, principal: Principal, requests: Sequence[Request]) -> list[Decision]:
    first: list[Decision] = []
    unavailable = _simulation_unavailable(inv, principal, requests, first)
    if first:
        return first
    if unavailable is None:
        try:
            return _simulate(inv, principal, requests)
        except AwsError as exc:
            return local_decisions(inv, principal, requests, f"{SIMULATION} not available: {exc.code}")
    return local_decisions(inv, principal, requests, unavailable)


def caller_partition(target: Target) -> str:
    """The partition of the caller's ARN (aws, aws-cn, aws-us-gov); 'aws' when the identity cannot be read."""
    try:
        return str(target.identity()["Arn"]).split(":")[1] or "aws"
    except (AwsError, KeyError, IndexError):
        return "aws"


# -- the model's facts of principals (aws/world.py's World methods answer with these) ----------------------------
def role_fact(role: Mapping[str, Any]) -> Role:
    """A GetRole / ListRoles entry as a model role."""
    boundary = role.get("PermissionsBoundary", {}) or {}
    return Role(name=str(role["RoleName"]), arn=str(role["Arn"]), path=str(role.get("Path", "/")),
                role_id=str(role.get("RoleId", "")), trust_policy=role.get("AssumeRolePolicyDocument") or {},
                boundary_arn=boundary.get("PermissionsBoundaryArn"),
                tags=tuple((str(t.get("Key")), str(t.get("Value"))) for t in role.get("Tags", []) or []))


def profile_fact(profile: Mapping[str, Any]) -> InstanceProfile:
    return InstanceProfile(str(profile["InstanceProfileName"]), str(profile["Arn"]),
                           tuple(str(r["RoleName"]) for r in profile.get("Roles", []) or []))


def managed_policy_fact(inv: Inventory, arn: str) -> ManagedPolicy:
    """A managed policy's default version; NotEvaluable when it cannot be read."""
    try:
        version, document = managed_policy(inv, arn)
    except AwsError as exc:
        raise NotEvaluable(f"cannot read the reference policy {arn}: {exc}") from None
    return ManagedPolicy(arn, version, document)


def role_policy_names(inv: Inventory, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    attached, inline = role_policy_listings(inv, name)
    return tuple(str(p["PolicyArn"]) for p in attached()), tuple(str(n) for n in inline())


def caller(inv: Inventory, get_role: Callable[[str], Mapping[str, Any] | None]) -> Caller:
    """The STS identity as a principal whose policies can be read; the root user has none."""
    arn = str(inv.call("sts", "get_caller_identity")["Arn"])
    parts = arn.split(":", 5)
    if len(parts) != 6:
        raise NotEvaluable(f"caller ARN {arn!r} cannot be parsed")
    service, rest = parts[2], parts[5]
    if service == "iam" and rest == "root":
        return Caller(arn, True, None)
    if service == "iam" and rest.startswith("user/"):
        name = rest.rpartition("/")[2]
        try:
            user = inv.call("iam", "get_user", UserName=name)["User"]
        except AwsError as exc:
            if exc.code in ("NoSuchEntity", "NoSuchEntityException"):
                raise NotEvaluable(f"the caller {arn} is not an IAM user of this account (iam:GetUser: "
                                   f"{exc.code}); its permissions cannot be evaluated") from None
            raise
        return Caller(arn, False, user_principal(user))
    if service == "sts" and rest.startswith("assumed-role/"):
        role_name = rest.split("/")[1]
        role = get_role(role_name)
        if role is None:
            raise NotEvaluable(f"the caller {arn} assumed role {role_name}, which GetRole does not find")
        principal = dataclasses.replace(role_principal(role), notes=("session policies, if any, are not visible",))
        return Caller(arn, False, principal)
    raise NotEvaluable(f"the caller {arn} is neither an IAM user nor an assumed role: its permissions cannot be "
                       "evaluated")


def repository_policy(inv: Inventory, account: str, region: str, repo: str, own_account: str | None) -> \
        dict[str, Any] | None:
    """The repository's policy; None when it has none. Another account's repository that cannot be seen is
    NotEvaluable, never read as "no policy"."""
    cross = bool(own_account) and account != own_account
    try:
        found = inv.call("ecr", "get_repository_policy", region=region, registryId=account, repositoryName=repo)
    except AwsError as exc:
        if exc.code == "RepositoryPolicyNotFoundException":
            return None
        if exc.code == "RepositoryNotFoundException":
            if cross:
                raise NotEvaluable(f"repository {repo} of account {account} ({region}) cannot be seen from "
                                   f"account {own_account}, so its repository policy cannot be read") from None
            return None  # the repository is missing: IMG001 reports it
        raise
    return parse_document(found.get("policyText") or "{}")
