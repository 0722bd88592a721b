"""IMG006: may the principal that pulls the image (EC2: instance role; Fargate: execution role) pull it from ECR,
including a cross-account repository policy; answered by the shared permission evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pytest_mlbatch.analysis import policy
from pytest_mlbatch.analysis.policy import Decision, Document, Request
from pytest_mlbatch.engine.context import CheckContext
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed
from pytest_mlbatch.model.principals import Role, ecr_repository, parse_profile, parse_role

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
# stands for the identity policy's Allow when asking whether a resource policy's Deny could still apply
ALLOW_ALL = Document("the identity policy", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
parse_ecr = ecr_repository  # (account, region, repository, tag-or-digest) of an ECR image URI, else None


def pulling_role(ctx: CheckContext) -> tuple[str, str]:
    """(role name or ARN, why): the execution role on Fargate, else the EC2 instance role."""
    ces = ctx.model.compute_environments()
    job = ctx.model.job() if ctx.scope.job_definition else None
    fargate = any(ce.fargate for ce in ces) or "FARGATE" in (job.platforms if job else ())
    if fargate:
        value = (job.execution_role if job else None) or ctx.scope.execution_role
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
            name = parse_profile(profile_value).name
        except ValueError:
            name = ""
        profile = ctx.model.instance_profile(name) if name else None
        if profile is not None and profile.roles:
            return profile.roles[0], f"instance role (EC2, from instance profile {name})"
    return "", "no instance role could be resolved (see IAM002/IAM003)"


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
        name = parse_role(value).name
    except ValueError as exc:
        raise NotEvaluable(str(exc)) from None
    role = ctx.model.role(name)
    if role is None:
        raise NotApplicable(f"the {why} {name} does not exist (see IAM002/IAM004)")
    repo_arn = f"arn:{ctx.model.partition}:ecr:{region}:{account}:repository/{repo}"
    requests = [Request("ecr:GetAuthorizationToken")] + [Request(a, repo_arn) for a in PULL_ACTIONS]
    decisions = list(ctx.model.permissions(role.principal, requests))
    cross = bool(ctx.account) and account != ctx.account
    doc = ctx.model.repository_policy(account, region, repo)
    docs = [Document(f"repository policy of {repo} ({account})", doc)] if doc else []
    decisions = decisions[:1] + with_resource_policy(decisions[1:], docs, role_identities(ctx, role), cross,
                                                     f"repository {repo} in account {account}", region)
    return policy.finding(decisions, f"{why} {role.arn} pulling {repo_arn}")


def role_identities(ctx: CheckContext, role: Role) -> list[str]:
    """How a resource policy may name the role: its ARN, its unique id, its account (id or root ARN)."""
    return [role.arn, role.role_id, str(ctx.account or ""), f"arn:{ctx.model.partition}:iam::{ctx.account}:root"]


def with_resource_policy(decisions: Sequence[Decision], docs: Sequence[Document], who: Sequence[str], cross: bool,
                         what: str, region: str) -> list[Decision]:
    """Identity decisions joined with a resource policy the way IAM joins them: an explicit Deny in either wins;
    in the resource's own account either may grant; from another account both must (IAM User Guide, "Policy
    evaluation logic", "Cross-account policy evaluation logic"). SimulatePrincipalPolicy's answers, which do not
    see resource policies, are joined the same way."""
    method = "repository policy"
    out: list[Decision] = []
    for d in decisions:
        asked = policy.with_known_context(d.request, region=region,
                                          principal_account=policy.arn_account(who[0]))
        r = replace(policy.evaluate(docs, asked, principals=who, method=method), request=d.request)
        if not docs:
            r = Decision(d.request, "denied", method, None,
                         f"{what} has no repository policy" + (" granting this account" if cross else ""))
        explicit = [x for x in (d, r) if x.verdict == "denied" and x.statement is not None and
                    x.reason == "explicit deny"]
        if explicit:
            out.append(explicit[0])
        elif cross:  # both must allow
            if d.verdict == "denied" or r.verdict == "denied":
                out.append(d if d.verdict == "denied" else r)
            elif "unknown" in (d.verdict, r.verdict):
                out.append(d if d.verdict == "unknown" else r)
            else:
                out.append(d)
        elif d.verdict == "allowed":  # same account: either grants, unless a Deny of the resource's may apply
            probe = policy.evaluate([*docs, ALLOW_ALL], asked, principals=who, method=method)
            out.append(replace(probe, request=d.request) if probe.verdict == "unknown" else d)
        elif d.verdict == "denied" and d.statement is not None:
            out.append(d)
        else:
            out.append(r if r.verdict != "denied" else d)
    return out
