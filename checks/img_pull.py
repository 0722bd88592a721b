"""IMG006: may the principal that pulls the image (EC2: instance role; Fargate: execution role) pull it from ECR,
including a cross-account repository policy; answered by the shared permission evaluator."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pytest_mlbatch.analysis import imageref, policy
from pytest_mlbatch.analysis.policy import Decision, Document, Request
from pytest_mlbatch.aws import batchinfo, principals, roles
from pytest_mlbatch.aws.inventory import AwsError
from pytest_mlbatch.engine.context import CheckContext
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")

def parse_ecr(uri: str) -> tuple[str, str, str, str | None] | None:
    """(account, region, repository, tag-or-digest) of an ECR image URI (parsed by imageref, the image area's
    parser); None for any other registry or a malformed reference (the IMG checks report those)."""
    try:
        ref = imageref.parse(uri)
    except imageref.ImageRefError:
        return None
    if not ref.is_ecr or ref.account is None or ref.region is None:
        return None
    return ref.account, ref.region, ref.repository, ref.digest or (ref.tag if ref.explicit_tag else None)


def pulling_role(ctx: CheckContext) -> tuple[str, str]:
    """(role name or ARN, why): the execution role on Fargate, else the EC2 instance role."""
    ces = [ce for name, ce in batchinfo.compute_environments(ctx).items() if not name.startswith("arn:")]
    jd = batchinfo.job_definition(ctx) if ctx.scope.job_definition else None
    fargate = any(batchinfo.is_fargate(ce) for ce in ces) or "FARGATE" in ((jd or {}).get("platformCapabilities")
                                                                          or [])
    if fargate:
        value = ((jd or {}).get("containerProperties") or {}).get("executionRoleArn") or ctx.scope.execution_role
        if not value:
            return "", "the job runs on Fargate, and no execution role is configured or in the job definition"
        return str(value), "execution role (Fargate)"
    if not ces and not ctx.scope.instance_role and not ctx.scope.instance_profile:
        raise NotApplicable("no compute environment or instance role: cannot tell which principal pulls")
    if ctx.scope.instance_role:
        return ctx.scope.instance_role, "instance role (EC2)"
    profile_value = ctx.scope.instance_profile
    if profile_value:
        try:
            name = roles.parse_profile(profile_value).name
        except ValueError:
            name = ""
        profile = roles.get_instance_profile(ctx.inventory, name) if name else None
        inside = [r["RoleName"] for r in (profile or {}).get("Roles", [])]
        if inside:
            return inside[0], f"instance role (EC2, from instance profile {name})"
    return "", "no instance role could be resolved (see IAM002/IAM003)"


def repository_policy(ctx: CheckContext, account: str, region: str, repo: str,
                      cross: bool) -> dict[str, Any] | None:
    """The repository's policy; None when it has none. Another account's repository that cannot be seen is
    `error` (NotEvaluable), never read as "no policy"."""
    try:
        found = ctx.inventory.call("ecr", "get_repository_policy", region=region, registryId=account,
                                   repositoryName=repo)
    except AwsError as exc:
        if exc.code == "RepositoryPolicyNotFoundException":
            return None
        if exc.code == "RepositoryNotFoundException":
            if cross:
                raise NotEvaluable(f"repository {repo} of account {account} ({region}) cannot be seen from "
                                   f"account {ctx.account}, so its repository policy cannot be read") from None
            return None  # the repository is missing: IMG001 reports it
        raise
    return policy.parse_document(found.get("policyText") or "{}")


@check(
    id="IMG006", slug="pull-permissions", title="The pulling principal may pull the image from ECR",
    severity="high", resource="image",
    permissions=["iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:GetRolePolicy",
                 "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GetInstanceProfile", "iam:SimulatePrincipalPolicy",
                 "ecr:GetRepositoryPolicy", "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions"],
    rationale="An instance role (EC2) or execution role (Fargate) without ECR pull rights, or a cross-account "
              "repository whose policy does not grant them, fails every job with CannotPullContainerError.",
    remediation="Allow ecr:GetAuthorizationToken (on *) and ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, "
                "ecr:BatchCheckLayerAvailability on the repository to the pulling role (AmazonEC2Container"
                "ServiceforEC2Role / AmazonECSTaskExecutionRolePolicy do); for another account's repository, "
                "grant the role those actions in the repository policy too.",
)
def pull_permissions(ctx: CheckContext, res: Resource) -> Finding:
    parsed = parse_ecr(res.id)
    if parsed is None:
        raise NotApplicable(f"{res.id} is not an ECR image; pull rights are IAM's only for ECR")
    account, region, repo, _ = parsed
    value, why = pulling_role(ctx)
    if not value and "Fargate" in why:
        return failed(f"{why}: nothing can pull {res.id}")
    if not value:
        raise NotEvaluable(why)
    try:
        name = roles.parse_role(value).name
    except ValueError as exc:
        raise NotEvaluable(str(exc)) from None
    role = roles.get_role(ctx.inventory, name)
    if role is None:
        raise NotApplicable(f"the {why} {name} does not exist (see IAM002/IAM004)")
    partition = principals.caller_partition(ctx.target)
    repo_arn = f"arn:{partition}:ecr:{region}:{account}:repository/{repo}"
    requests = [Request("ecr:GetAuthorizationToken")] + [Request(a, repo_arn) for a in PULL_ACTIONS]
    principal = principals.role_principal(role)
    decisions = principals.decide(ctx.inventory, principal, requests)
    cross = bool(ctx.account) and account != ctx.account
    if cross or any(d.verdict == "denied" and d.statement is None for d in decisions[1:]):
        decisions = _with_repository_policy(ctx, decisions, role, account, region, repo, cross)
    return policy.finding(decisions, f"{why} {role['Arn']} pulling {repo_arn}")


def _with_repository_policy(ctx: CheckContext, decisions: list[Decision], role: dict[str, Any], account: str,
                            region: str, repo: str, cross: bool) -> list[Decision]:
    """Same account: the repository policy can grant what the role's policies do not. Another account: the
    repository policy must grant the pull actions as well as the role's own policies."""
    doc = repository_policy(ctx, account, region, repo, cross)
    docs = [Document(f"repository policy of {repo} ({account})", doc)] if doc else []
    who = [str(role["Arn"]), str(role.get("RoleId", "")), str(ctx.account or ""),
           f"arn:{principals.caller_partition(ctx.target)}:iam::{ctx.account}:root"]
    method = "repository policy"
    out = [decisions[0]]
    for d in decisions[1:]:
        asked = policy.with_known_context(d.request, region=region,
                                          principal_account=policy.arn_account(str(role["Arn"])))
        r = replace(policy.evaluate(docs, asked, principals=who, method=method), request=d.request)
        if not docs:
            r = Decision(d.request, "denied", method, None, f"repository {repo} in account {account} has no "
                                                              "repository policy" + (" granting this account"
                                                                                     if cross else ""))
        if cross:  # both must allow
            if d.verdict == "denied" or r.verdict == "denied":
                out.append(d if d.verdict == "denied" else r)
            elif "unknown" in (d.verdict, r.verdict):
                out.append(d if d.verdict == "unknown" else r)
            else:
                out.append(d)
        else:  # either grants, an explicit deny in the role's policies wins
            if d.verdict == "allowed" or (d.statement is not None and d.verdict == "denied"):
                out.append(d)
            else:
                out.append(r if r.verdict != "denied" else d)
    return out
