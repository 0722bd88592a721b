"""IAM checks: the Batch service role, the ECS instance role and its instance profile, the execution and job roles,
and the submitter's rights (IAM001-IAM006), with create-only fixers."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_mlbatch.analysis import policy
from pytest_mlbatch.analysis.policy import Request
from pytest_mlbatch.engine.context import PLAN_TAG, CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed, passed
from pytest_mlbatch.model import principals as roles
from pytest_mlbatch.model.compute import ComputeEnvironment, templates_of
from pytest_mlbatch.model.job import Job
from pytest_mlbatch.model.principals import Principal, Role
from pytest_mlbatch.model.world import near_name

READ_ROLE = ["iam:GetRole", "iam:ListRoles", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies",
             "iam:GetRolePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:SimulatePrincipalPolicy"]
# what telling Batch on EKS from Batch on ECS reads (the compute environments, the job definition)
BATCH_ON_EKS = ["batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions"]
BATCH_POLICY = "service-role/AWSBatchServiceRole"
EC2_ROLE_POLICY = "service-role/AmazonEC2ContainerServiceforEC2Role"
EXECUTION_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"
ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
JOB_ROLE_POLICY = "pytest-mlbatch-job-role"


# -- helpers -----------------------------------------------------------------------------------------------
def managed_arn(ctx: CheckContext, name: str) -> str:
    return f"arn:{ctx.model.partition}:iam::aws:policy/{name}"


def named_job(ctx: CheckContext) -> Job | None:
    """The named job definition (the IAM checks judge the roles of a registered definition)."""
    return ctx.model.job() if ctx.scope.job_definition else None


def eks_reason(ctx: CheckContext) -> str | None:
    """Why the scope runs AWS Batch on Amazon EKS (every compute environment is an EKS one, or the job definition
    has eksProperties), else None: checks of what only ECS needs skip with this reason."""
    ces = ctx.model.compute_environments()
    if ces and all(ce.eks for ce in ces):
        names = ", ".join(sorted(ce.name for ce in ces))
        return f"Batch on Amazon EKS (compute environment {names} runs on an EKS cluster)"
    job = named_job(ctx)
    if job and job.eks:
        return f"Batch on Amazon EKS (job definition {job.name} has eksProperties)"
    return None


def source_arns(ctx: CheckContext, service: str, compute_environments: Sequence[str] = ()) -> list[str]:
    return policy.source_arns(service, ctx.model.partition, ctx.region, ctx.account, compute_environments)


def _ref(value: str) -> roles.RoleRef:
    try:
        return roles.parse_role(value)
    except ValueError as exc:
        raise NotEvaluable(str(exc)) from None


def _near(ctx: CheckContext, kind: str, name: str) -> str:
    """' (did you mean ...?)' from the account's names of that kind; '' when none is near or they cannot be read
    (the suggestion is a courtesy: the answer stands without it)."""
    return near_name(ctx.model, kind, name)


def resolve(ctx: CheckContext, value: str) -> tuple[roles.RoleRef, Role | Finding]:
    """The role a config value names, or a failed finding saying why it is not there (path included)."""
    ref = _ref(value)
    role = ctx.model.role(ref.name)
    if role is None:
        where = f" (path {ref.path})" if ref.path and ref.path != "/" else ""
        return ref, failed(f"role {ref.name}{where} does not exist{_near(ctx, 'role', ref.name)}")
    if ref.arn and ref.arn != role.arn:
        return ref, failed(f"{ref.arn} is not the role's ARN: role {ref.name} is {role.arn} "
                           f"(path {role.path}); use the real ARN")
    if not ref.arn and ref.path and ref.path != role.path:
        return ref, failed(f"role {ref.name} has path {role.path}, not {ref.path}: it is {role.arn}")
    return ref, role


def require_trust(role: Role, service: str, sources: Sequence[str] = ()) -> Finding | None:
    """None when `service` may assume the role (aws:SourceAccount / aws:SourceArn conditions decided with what the
    service sends, `sources`); else the failed finding, or NotEvaluable naming what cannot be decided."""
    decision = policy.trust(role.as_trust_input(), service, source_arns=sources)
    if decision.verdict == "denied":
        return failed(decision.message)
    if decision.verdict == "unknown":
        raise NotEvaluable(decision.message)
    return None


def trusted_role(ctx: CheckContext, value: str, service: str) -> tuple[roles.RoleRef, Role] | Finding:
    """The role a config value names, if it exists where the config says and `service` may assume it."""
    ref, found = resolve(ctx, value)
    if isinstance(found, Finding):
        return found
    return require_trust(found, service, source_arns(ctx, service)) or (ref, found)


def judge(ctx: CheckContext, role: Role, requests: Sequence[Request], what: str, extra: str = "") -> Finding:
    """Run the shared evaluator on a role and turn the decisions into a finding (unknown -> error)."""
    return policy.finding(ctx.model.permissions(role.principal, requests), what, extra)


def reference(ctx: CheckContext, name: str) -> tuple[str, list[Request]]:
    managed = ctx.model.managed_policy(name)
    version, document = managed.version, managed.document
    china = ctx.model.partition == "aws-cn"
    requests = [Request(r.action, policy.concrete(r.resource, ctx.region, ctx.account), r.context)
                for r in policy.reference_requests(document)
                # a context value of the other partition (ec2.amazonaws.com.cn outside China) never occurs here
                if china or not any(v.endswith(".amazonaws.com.cn") for _, vs in r.context for v in vs)]
    return version, list(dict.fromkeys(requests))


def create_role(fx: FixContext, name: str, path: str, service: str, description: str) -> None:
    fx.client("iam").create_role(RoleName=name, Path=path, Description=description,
                                 AssumeRolePolicyDocument=json.dumps(roles.trust_policy(service)),
                                 Tags=fx.tag_list())


def _missing_role_plan(ctx: CheckContext, res: Resource, service: str, managed: str | None,
                       inline: dict[str, Any] | None = None) -> FixPlan:
    ref = _ref(res.id)
    if ref.service_linked:
        raise NotFixable(f"{ref.name} is a service-linked role; it is created by its service")
    if ref.arn and ctx.account and ref.arn.split(":")[4] != ctx.account:
        raise NotFixable(f"{ref.arn} belongs to account {ref.arn.split(':')[4]}, not to {ctx.account}")
    path = ref.path or "/"
    if ctx.check.id == "IAM005" and ctx.scope.job_role is not None and not ref.path:
        path = ctx.scope.job_role.path
    calls = ["iam:CreateRole"]
    action = f"create role {path.rstrip('/')}/{ref.name} trusted by {service}"
    if managed:
        calls.append("iam:AttachRolePolicy")
        action += f", attach {managed.rpartition('/')[2]}"
    if inline:
        calls.append("iam:PutRolePolicy")
        action += f", put inline policy {JOB_ROLE_POLICY} with the {len(inline['Statement'])} declared statement(s)"
    managed_policy_arn = managed_arn(ctx, managed) if managed else None
    plan = FixPlan(res.id, action, calls=calls, permissions=[*calls, "iam:TagRole", "iam:ListRoleTags"],
                   apply=lambda fx: None)
    existing = ctx.model.role(ref.name)
    if existing is not None:
        # A role this very plan created (its tag says so) whose run ended before the rest: finish the plan.
        if existing.tag(PLAN_TAG) != plan.of(ctx.check).plan_id(ctx.account, ctx.region):
            raise NotFixable(f"role {ref.name} exists; --fix never edits an existing role or policy")
        attached, names = ctx.model.role_policy_names(ref.name)
        if managed_policy_arn in attached:
            managed_policy_arn = None
        if JOB_ROLE_POLICY in names:
            inline = None
        plan.calls = [c for c, todo in (("iam:AttachRolePolicy", managed_policy_arn), ("iam:PutRolePolicy", inline))
                      if todo]
        if not plan.calls:
            raise NotFixable(f"role {ref.name} was created by this plan and has every step of it")
        plan.notes.append(f"completes an earlier run of this plan: role {ref.name} exists and carries its tag "
                          f"{PLAN_TAG}={existing.tag(PLAN_TAG)}; still to do: {', '.join(plan.calls)}")
    create = existing is None

    def apply(fx: FixContext) -> None:
        if create:
            create_role(fx, ref.name, path, service, f"pytest-mlbatch: {ctx.check.slug}")
        if managed_policy_arn:
            fx.client("iam").attach_role_policy(RoleName=ref.name, PolicyArn=managed_policy_arn)
        if inline:
            fx.client("iam").put_role_policy(RoleName=ref.name, PolicyName=JOB_ROLE_POLICY,
                                             PolicyDocument=json.dumps(inline))

    plan.apply = apply
    return plan


# -- IAM001 ------------------------------------------------------------------------------------------------
@check(
    id="IAM001", slug="batch-service-role", title="The Batch service role exists, trusts Batch and has its rights",
    severity="critical", resource="service_role",
    permissions=[*READ_ROLE, "iam:ListRoles", "batch:DescribeComputeEnvironments"],
    rationale="A compute environment whose service role is given by a bare name or a wrong path, does not trust "
              "batch.amazonaws.com, or lacks AWSBatchServiceRole's actions turns INVALID (not authorized to "
              "perform sts:AssumeRole) or leaves jobs RUNNABLE with SERVICE_ROLE_PERMISSIONS.",
    remediation="Prefer the service-linked role (iam.service_role: service-linked; `--fix` creates it). For a "
                "custom role, give its full ARN including the path (service-role/), let batch.amazonaws.com "
                "assume it and attach AWSBatchServiceRole.",
)
def batch_service_role(ctx: CheckContext, res: Resource) -> Finding:
    ref = _ref(res.id)
    if ref.service_linked:
        # judged by what it is: AWS manages its permissions, so only whose role it is and that it exists matter
        service = roles.linked_service(ref)
        if service and service != roles.BATCH_SERVICE:
            return failed(f"{ref.label} is the service-linked role of {service}, not of {roles.BATCH_SERVICE}")
        slr = ctx.model.service_linked_role(roles.BATCH_SERVICE)
        if slr is None:
            return failed(f"the AWS Batch service-linked role does not exist (no role under "
                          f"/aws-service-role/{roles.BATCH_SERVICE}/)")
        if ref.arn and ref.arn.lower() != slr.arn.lower():
            return failed(f"{ref.arn} is not the service-linked role's ARN: it is {slr.arn}")
        return passed(f"the service-linked role {slr.arn} exists (its permissions are managed by AWS)")
    ref, found = resolve(ctx, res.id)
    if isinstance(found, Finding):
        return found
    role = found
    using: list[str] = []  # the compute environments Batch assumes the role for (aws:SourceArn)
    for ce in sorted(ctx.model.compute_environments(), key=lambda c: c.name):
        given = ce.service_role
        if not given:
            continue
        try:
            same = roles.parse_role(str(given)).name.lower() == ref.name.lower()
        except ValueError:
            same = False
        if same and given != role.arn:
            return failed(f"compute environment {ce.name} has serviceRole {given}, but the role's ARN is {role.arn}")
        if same and ce.arn:
            using.append(ce.arn)
    bad = require_trust(role, roles.BATCH_SERVICE, source_arns(ctx, roles.BATCH_SERVICE, using))
    if bad:
        return bad
    version, requests = reference(ctx, BATCH_POLICY)
    return judge(ctx, role, requests, f"role {role.arn} for AWSBatchServiceRole ({version}) actions",
                 f"{ref.name} trusts {roles.BATCH_SERVICE}; ")


@batch_service_role.fix(summary="create the Batch service-linked role",
                        permissions=["iam:CreateServiceLinkedRole", "iam:TagRole", "iam:ListRoleTags"])
def create_batch_slr(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    ref = _ref(res.id)
    if not ref.service_linked:
        raise NotFixable(f"{ref.name} is a custom role and is never created or edited: set "
                         "iam.service_role: service-linked to use the role --fix can create")
    if ctx.model.service_linked_role(roles.BATCH_SERVICE) is not None:
        raise NotFixable("the service-linked role exists")

    def apply(fx: FixContext) -> None:
        iam = fx.client("iam")
        created = iam.create_service_linked_role(AWSServiceName=roles.BATCH_SERVICE,
                                                 Description="AWS Batch (created by pytest-mlbatch)")
        iam.tag_role(RoleName=created["Role"]["RoleName"], Tags=fx.tag_list())

    return FixPlan(res.id, f"create the service-linked role for {roles.BATCH_SERVICE}",
                   calls=["iam:CreateServiceLinkedRole", "iam:TagRole"],
                   permissions=["iam:CreateServiceLinkedRole", "iam:TagRole", "iam:ListRoleTags"], apply=apply)


# -- IAM002 ------------------------------------------------------------------------------------------------
@check(
    id="IAM002", slug="ecs-instance-role", title="The ECS instance role trusts EC2 and has the ECS agent's rights",
    severity="critical", resource="instance_role", permissions=[*READ_ROLE, *BATCH_ON_EKS],
    rationale="Instances whose role cannot register with ECS or pull from ECR never join the cluster: the "
              "compute environment is invalidated and jobs stay RUNNABLE.",
    remediation="Let ec2.amazonaws.com assume the instance role and attach AmazonEC2ContainerServiceforEC2Role "
                "(`--fix` creates a missing role that way).",
)
def ecs_instance_role(ctx: CheckContext, res: Resource) -> Finding:
    eks = eks_reason(ctx)
    if eks:
        raise NotApplicable(f"{eks}: the ECS agent's rights are an ECS requirement; EKS nodes need "
                            "AmazonEKSWorkerNodePolicy, AmazonEC2ContainerRegistryReadOnly and AmazonEKS_CNI_Policy, "
                            "which this check does not judge")
    trusted = trusted_role(ctx, res.id, "ec2.amazonaws.com")
    if isinstance(trusted, Finding):
        return trusted
    ref, found = trusted
    version, requests = reference(ctx, EC2_ROLE_POLICY)
    return judge(ctx, found, requests, f"role {found.arn} for AmazonEC2ContainerServiceforEC2Role ({version}) "
                 "actions", f"{ref.name} trusts ec2.amazonaws.com; ")


@ecs_instance_role.fix(summary="create the role, attach AmazonEC2ContainerServiceforEC2Role",
                       permissions=["iam:CreateRole", "iam:AttachRolePolicy", "iam:TagRole", "iam:ListRoleTags"])
def create_instance_role(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    return _missing_role_plan(ctx, res, "ec2.amazonaws.com", EC2_ROLE_POLICY)


# -- IAM003 ------------------------------------------------------------------------------------------------
def _profile_role(ctx: CheckContext, profile_name: str) -> str | None:
    """The role that belongs in the profile: iam.instance_role, else a role named like the profile."""
    if ctx.scope.instance_role:
        return _ref(ctx.scope.instance_role).name
    if ctx.model.role(profile_name) is not None:
        return profile_name
    return None


@check(
    id="IAM003", slug="instance-profile",
    title="The compute environment's instanceRole is an instance profile holding the instance role",
    severity="critical", resource="instance_profile",
    permissions=["iam:GetInstanceProfile", "iam:GetRole", "iam:ListInstanceProfiles", "iam:ListRoles"],
    rationale="computeResources.instanceRole must name an instance profile; a role name there (the classic "
              "mistake) makes the compute environment INVALID (Invalid IamInstanceProfile).",
    remediation="Create an instance profile, add the instance role to it, and give the profile's name or ARN as "
                "the compute environment's instanceRole (`--fix` creates the profile with the role).",
)
def instance_profile(ctx: CheckContext, res: Resource) -> Finding:
    try:
        ref = roles.parse_profile(res.id)
    except ValueError as exc:
        return failed(str(exc))
    expected = _ref(ctx.scope.instance_role).name if ctx.scope.instance_role else None
    if res.id.startswith("arn:") and ":role/" in res.id:
        has = ctx.model.instance_profile(ref.name) is not None
        return failed(f"{res.id} is a role, not an instance profile: the compute environment's instanceRole must "
                      "name an instance profile that contains the role" +
                      (f" (instance profile {ref.name} exists: use its name or ARN)" if has else ""))
    profile = ctx.model.instance_profile(ref.name)
    if profile is None:
        role = ctx.model.role(ref.name)
        if role is not None:
            return failed(f"{res.id} is a role, not an instance profile: the compute environment's instanceRole "
                          f"must name an instance profile that contains the role (no instance profile "
                          f"{ref.name} exists)")
        return failed(f"instance profile {ref.name} does not exist{_near(ctx, 'instance_profile', ref.name)}")
    if ref.arn and ref.arn != profile.arn:
        return failed(f"{ref.arn} is not the instance profile's ARN: it is {profile.arn}")
    inside = list(profile.roles)
    if not inside:
        return failed(f"instance profile {ref.name} contains no role" +
                      (f"; add {expected}" if expected else ""))
    if expected and expected not in inside:
        return failed(f"instance profile {ref.name} contains {', '.join(inside)}, not the instance role {expected}")
    return passed(f"instance profile {profile.arn} contains role {', '.join(inside)}")


@instance_profile.fix(summary="create the instance profile, add the role",
                      permissions=["iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile",
                                   "iam:TagInstanceProfile", "iam:PassRole"])
def create_instance_profile(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    try:
        ref = roles.parse_profile(res.id)
    except ValueError as exc:
        raise NotFixable(str(exc)) from None
    if res.id.startswith("arn:") and ":role/" in res.id:
        raise NotFixable("the compute environment names a role ARN; it must be changed to an instance profile")
    role_name = _profile_role(ctx, ref.name)
    if role_name is None:
        raise NotFixable("no role to put in the profile: set iam.instance_role")
    if ctx.model.role(role_name) is None:
        raise NotFixable(f"role {role_name} does not exist (see IAM002)")
    profile = ctx.model.instance_profile(ref.name)
    if profile is not None and profile.roles:
        raise NotFixable(f"instance profile {ref.name} already holds a role; --fix never changes it")
    create = profile is None

    def apply(fx: FixContext) -> None:
        iam = fx.client("iam")
        if create:
            iam.create_instance_profile(InstanceProfileName=ref.name, Tags=fx.tag_list())
        iam.add_role_to_instance_profile(InstanceProfileName=ref.name, RoleName=role_name)

    calls = (["iam:CreateInstanceProfile"] if create else []) + ["iam:AddRoleToInstanceProfile"]
    action = (f"create instance profile {ref.name} and add role {role_name}" if create
              else f"add role {role_name} to the empty instance profile {ref.name}")
    return FixPlan(res.id, action, calls=calls, permissions=[*calls, "iam:TagInstanceProfile",
                                                                        "iam:PassRole"], apply=apply)


# -- IAM004 ------------------------------------------------------------------------------------------------
def ecr_repository_arn(uri: str | None, partition: str) -> str | None:
    """arn:...:ecr:REGION:ACCOUNT:repository/NAME for an ECR image URI, else None."""
    parsed = roles.ecr_repository(uri) if uri else None
    if parsed is None:
        return None
    account, region, repo = parsed[:3]
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repo}"


def secret_resource(value: str, partition: str, region: str | None, account: str | None) -> Request:
    """What reading one secret takes: secretsmanager:GetSecretValue on the secret, ssm:GetParameters on the
    parameter (a name is a parameter of this account and region)."""
    if value.startswith("arn:") and ":secretsmanager:" in value:
        return Request("secretsmanager:GetSecretValue", ":".join(value.split(":")[:7]))
    if value.startswith("arn:") and ":ssm:" in value:
        return Request("ssm:GetParameters", value)
    return Request("ssm:GetParameters", f"arn:{partition}:ssm:{region}:{account or '*'}:parameter/{value.lstrip('/')}")


def secret_requests(ctx: CheckContext, job: Job | None, partition: str) -> list[Request]:
    """What reading the job definition's secrets takes: ssm:GetParameters / secretsmanager:GetSecretValue, on the
    secret's full ARN (random suffix included) where it can be resolved, as IAM sees the request; else on the ARN
    valueFrom gives (IAM007 says when a secret is missing or cannot be looked up)."""
    if not job:
        return []
    values = job.secret_values()
    asked = [secret_resource(v, partition, ctx.region, ctx.account) for v in values]
    try:
        sources = ctx.model.secret_sources(values)
    except NotEvaluable:
        return asked
    return [Request(r.action, s.arn) if s.exists else r for r, s in zip(asked, sources, strict=True)]


def log_group(job: Job | None) -> str:
    """The awslogs group the job writes to: the job definition's awslogs-group, else Batch's /aws/batch/job."""
    if job and job.log and job.log.driver == "awslogs":
        return job.log.option("awslogs-group") or "/aws/batch/job"
    return "/aws/batch/job"


# -- who the awslogs driver writes as ----------------------------------------------------------------------------
# On EC2 the ECS agent hands the awslogs driver the task execution role's credentials when the task has one and the
# agent's ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE is true; otherwise the driver uses the container instance's role.
# Sources: the ECS agent's README (github.com/aws/amazon-ecs-agent, ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE: "Needs
# to be true if you want to use awslogs log driver in a task that has task execution IAM role specified. When using
# the ecs-init RPM with version equal or later than V1.16.0-1, this env is set to true by default" -- the ECS-optimized
# AMIs ship ecs-init); AWS re:Post "ecs-container-logs-cloudwatch" (EC2 tasks without a task execution role: the
# container instance role needs logs:CreateLogStream and logs:PutLogEvents). On Fargate the execution role writes.
OVERRIDE_OFF = re.compile(r"ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE\s*=\s*[\"']?false", re.IGNORECASE)


@dataclass(frozen=True)
class LogWriter:
    """A role the awslogs driver authenticates with for the job: its name (None: it cannot be resolved) and why."""

    role: str | None
    kind: str  # "execution role" or "instance role"
    why: str


def _override_off(ctx: CheckContext, ce: ComputeEnvironment) -> str | None:
    """The launch template (version) of the compute environment whose user data turns the override off, if any."""
    for ref in templates_of(ce):
        version = ctx.model.launch_template_version(ref)
        if version is not None and version.user_data and OVERRIDE_OFF.search(version.user_data):
            return f"{ref.id or ref.name} version {version.version if version.version is not None else ref.version}"
    return None


def _custom_ami(ctx: CheckContext, ce: ComputeEnvironment) -> str | None:
    """Where the compute environment names its own AMI (imageId, an imageIdOverride, a launch template's ImageId),
    if it does: whether that AMI's ecs-init turns the awslogs override on is not known."""
    if ce.image_id:
        return f"computeResources.imageId {ce.image_id}"
    override = next((c.image_id_override for c in ce.ec2_configuration if c.image_id_override), None)
    if override:
        return f"ec2Configuration imageIdOverride {override}"
    for ref in templates_of(ce):
        version = ctx.model.launch_template_version(ref)
        if version is not None and version.image_id:
            return f"launch template {ref.id or ref.name} ImageId {version.image_id}"
    return None


def _instance_role_of(ctx: CheckContext, ce: ComputeEnvironment | None) -> tuple[str | None, str]:
    """The role in the compute environment's instance profile (else iam.instance_role / iam.instance_profile)."""
    profile = ce.instance_profile if ce else None
    if profile is None and ctx.scope.instance_role:
        return _ref(ctx.scope.instance_role).name, f"iam.instance_role {ctx.scope.instance_role}"
    profile = profile or (roles.parse_profile(ctx.scope.instance_profile).name if ctx.scope.instance_profile
                          else None)
    if profile is None:
        return None, "no instance profile is known (no compute environment, iam.instance_role or instance_profile)"
    found = ctx.model.instance_profile(profile)
    if found is None or not found.roles:
        return None, f"instance profile {profile} {'does not exist' if found is None else 'holds no role'} (IAM003)"
    return found.roles[0], f"in instance profile {profile}" + (f" of compute environment {ce.name}" if ce else "")


def awslogs_writers(ctx: CheckContext, job: Job) -> list[LogWriter]:
    """The roles the awslogs driver writes the job's logs with, one per distinct answer over the scope's compute
    environments: Fargate: the execution role; EC2: the job definition's execution role (the agent's override is on
    by default), or the instance role when the job definition has none or the launch template's user data turns the
    override off."""
    ces = [ce for ce in ctx.model.compute_environments() if not ce.eks]
    execution = job.execution_role
    out: dict[tuple[str | None, str], LogWriter] = {}

    def add(w: LogWriter) -> None:
        out.setdefault((w.role, w.kind), w)

    if any(ce.fargate for ce in ces) or (not ces and "FARGATE" in job.platforms):
        value = execution or ctx.scope.execution_role
        add(LogWriter(_ref(value).name if value else None, "execution role",
                      "on Fargate the execution role writes the logs"))
    ec2: list[ComputeEnvironment | None] = [c for c in ces if not c.fargate]
    if not ces and "FARGATE" not in job.platforms:
        ec2 = [None]  # no compute environment known: an EC2 job, judged with iam.instance_role / instance_profile
    for ce in ec2:
        off = _override_off(ctx, ce) if ce is not None and execution else None
        where = f"compute environment {ce.name}" if ce else "EC2"
        custom = _custom_ami(ctx, ce) if ce is not None and execution and not off else None
        if execution and not off:
            add(LogWriter(_ref(execution).name, "execution role",
                          f"on {where} the ECS agent lets awslogs use job definition {job.name}'s execution role "
                          "(ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE, true by default on the ECS-optimized AMIs)"))
            if not custom:
                continue
        role, how = _instance_role_of(ctx, ce)
        why = (f"launch template {off} sets ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=false" if off else
               f"it boots its own AMI ({custom}), whose ecs-init may leave ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE "
               "off (not verified), so both roles must be allowed to write" if custom else
               f"job definition {job.name} names no execution role")
        add(LogWriter(role, "instance role", f"on {where} awslogs uses the instance role ({how}): {why}"))
    return list(out.values())


def logs_needed(job: Job | None) -> bool:
    """Does the job log with awslogs (Batch's default when the job definition has no logConfiguration)?"""
    return job is None or job.log is None or job.log.driver == "awslogs"


@check(
    id="IAM004", slug="execution-role", title="The execution role trusts ECS tasks and can pull, log, read secrets",
    severity="high", resource="execution_role",
    permissions=[*READ_ROLE, *BATCH_ON_EKS, "secretsmanager:DescribeSecret", "ssm:DescribeParameters",
                 "iam:GetInstanceProfile", "ec2:DescribeLaunchTemplateVersions"],
    rationale="Fargate jobs (and jobs with secrets) start only if the execution role, assumed by "
              "ecs-tasks.amazonaws.com, can pull the image, write logs and read every secret the job names. On EC2 "
              "the awslogs driver writes with the execution role only when the job definition names it (else with "
              "the instance role, which IAM008 judges).",
    remediation="Let ecs-tasks.amazonaws.com assume the execution role, attach AmazonECSTaskExecutionRolePolicy, "
                "and allow ssm:GetParameters / secretsmanager:GetSecretValue on the job's secrets.",
)
def execution_role(ctx: CheckContext, res: Resource) -> Finding:
    eks = eks_reason(ctx)
    if eks:
        raise NotApplicable(f"{eks}: an execution role is an ECS task concept; pods pull with the node role")
    trusted = trusted_role(ctx, res.id, "ecs-tasks.amazonaws.com")
    if isinstance(trusted, Finding):
        return trusted
    ref, found = trusted
    partition = ctx.model.partition
    repo = ecr_repository_arn(ctx.scope.image_uri, partition)
    requests = [Request("ecr:GetAuthorizationToken")]
    requests += [Request(a, repo or "*") for a in ECR_PULL]
    job = named_job(ctx)
    stream = (f"arn:{partition}:logs:{ctx.region}:{ctx.account or '*'}:log-group:{log_group(job)}:"
              f"log-stream:{policy.SAMPLE}")
    # the execution role writes the logs on Fargate, and on EC2 when the job definition names it (see
    # awslogs_writers); otherwise the instance role does, and IAM008 judges it
    writers = awslogs_writers(ctx, job) if job is not None and logs_needed(job) else []
    others = [w for w in writers if w.kind != "execution role" or w.role != ref.name]
    logs = logs_needed(job) and (job is None or len(others) < len(writers))
    if logs:
        requests += [Request("logs:CreateLogStream", stream), Request("logs:PutLogEvents", stream)]
    note = ""
    if job is not None and not logs:
        note = (f" (logs not asked of it: {others[0].why}; IAM008 judges that role)" if others else
                f" (logs not asked of it: job definition {job.name} uses the "
                f"{job.log.driver if job.log else '?'} log driver)")
    secrets = secret_requests(ctx, job, partition)
    what = f"role {found.arn} for ECR pull" + (", logs" if logs else "") + \
        (f" and {len(secrets)} secret(s)" if secrets else "") + note
    decisions = list(ctx.model.permissions(found.principal, requests + secrets))
    unread = [d for d in decisions[len(requests):] if d.verdict != "allowed"]
    if not unread:
        return policy.finding(decisions, what, f"{ref.name} trusts ecs-tasks.amazonaws.com; ")
    # CHECKS.md has IAM004 judge the secrets too; IAM007 owns their decisions (with the secrets' KMS keys), so a
    # secret the role may not read is named here and pointed at, not explained twice
    own = policy.summarize(decisions[:len(requests)], what)
    denied = [d for d in unread if d.verdict == "denied"]
    pointer = (f"{len(denied)} of the job's {len(secrets)} secret(s) not readable" if denied else
               f"whether {len(unread)} of the job's {len(secrets)} secret(s) may be read is undecided") + \
        f" ({', '.join(d.request.resource for d in unread)}): IAM007 (secrets-readable) has the decision for each"
    text = f"{own.message}; {pointer}" if own.outcome != "passed" else f"{what}: {pointer}"
    if own.outcome == "failed" or denied:
        return failed(text)
    raise NotEvaluable(text)


@execution_role.fix(summary="create the role, attach AmazonECSTaskExecutionRolePolicy",
                    permissions=["iam:CreateRole", "iam:AttachRolePolicy", "iam:TagRole", "iam:ListRoleTags"])
def create_execution_role(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    return _missing_role_plan(ctx, res, "ecs-tasks.amazonaws.com", EXECUTION_POLICY)


# -- IAM005 ------------------------------------------------------------------------------------------------
def declared_requests(ctx: CheckContext) -> list[Request]:
    jr = ctx.scope.job_role
    if jr is None:
        return []
    return [Request(a, r) for st in jr.allow for a in st.actions for r in st.resources]


@check(
    id="IAM005", slug="job-role", title="The job role trusts ECS tasks and allows every declared action",
    severity="high", resource="job_role", permissions=[*READ_ROLE, *BATCH_ON_EKS],
    rationale="The job's code runs with the job role: if ecs-tasks.amazonaws.com cannot assume it, or it lacks "
              "an action the job needs (say s3:GetObject on the training data), the job fails after it started.",
    remediation="Let ecs-tasks.amazonaws.com assume the job role and allow each iam.job_role.allow action on its "
                "resource (`--fix` creates a missing role with exactly those statements).",
)
def job_role(ctx: CheckContext, res: Resource) -> Finding:
    eks = eks_reason(ctx)
    if eks:
        raise NotApplicable(f"{eks}: a job role trusted by ecs-tasks.amazonaws.com is an ECS concept; pods get AWS "
                            "rights from their Kubernetes service account, which this check does not judge")
    trusted = trusted_role(ctx, res.id, "ecs-tasks.amazonaws.com")
    if isinstance(trusted, Finding):
        return trusted
    ref, found = trusted
    requests = declared_requests(ctx)
    if not requests:
        return passed(f"{ref.name} trusts ecs-tasks.amazonaws.com (no iam.job_role.allow declared to check)")
    return judge(ctx, found, requests, f"role {found.arn} for the declared actions",
                 f"{ref.name} trusts ecs-tasks.amazonaws.com; ")


@job_role.fix(summary="create the role with exactly the declared statements (only if the role is missing)",
              permissions=["iam:CreateRole", "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:TagRole",
                           "iam:ListRoleTags"])
def create_job_role(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    jr = ctx.scope.job_role
    inline = None
    if jr is not None and jr.allow:
        inline = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": list(st.actions), "Resource": list(st.resources)} for st in jr.allow]}
    return _missing_role_plan(ctx, res, "ecs-tasks.amazonaws.com", None, inline)


# -- IAM006 ------------------------------------------------------------------------------------------------
def caller_principal(ctx: CheckContext) -> Principal | Finding:
    """The caller as a principal whose policies can be read; a finding for the root user."""
    caller = ctx.model.caller()
    if caller.principal is None:
        return passed(f"the caller is the root user of account {caller.arn.split(':')[4]}: IAM policies do not "
                      "limit it (only an organization SCP could)")
    return caller.principal


def _batch_arn(ctx: CheckContext, kind: str, name: str, partition: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:{partition}:batch:{ctx.region}:{ctx.account}:{kind}/{name}"


def passed_roles(ctx: CheckContext, job: Job | None) -> list[str]:
    """ARNs of the job and execution roles: from the job definition, else the config's roles (if they exist)."""
    arns = [str(v) for v in ((job.job_role, job.execution_role) if job else ()) if v]
    if arns:
        return sorted(set(arns))
    for value in (ctx.scope.job_role.name if ctx.scope.job_role else None, ctx.scope.execution_role):
        if not value:
            continue
        role = ctx.model.role(_ref(value).name)
        if role is not None:
            arns.append(role.arn)
    return sorted(set(arns))


@check(
    id="IAM006", slug="can-submit", title="The caller may submit the job and pass its roles",
    severity="medium", resource="caller",
    permissions=["sts:GetCallerIdentity", "iam:GetUser", "iam:ListAttachedUserPolicies", "iam:ListUserPolicies",
                 "iam:GetUserPolicy", "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies",
                 "iam:ListGroupPolicies", "iam:GetGroupPolicy", *READ_ROLE, "batch:DescribeJobQueues",
                 "batch:DescribeJobDefinitions"],
    rationale="Whoever submits needs batch:SubmitJob on the queue and the job definition, and iam:PassRole on the "
              "roles the job runs with; otherwise the submission itself is refused.",
    remediation="Allow the submitting user or role batch:SubmitJob on the job queue and job definition ARNs and "
                "iam:PassRole on the job and execution role ARNs.",
)
def can_submit(ctx: CheckContext, res: Resource) -> Finding:
    principal = caller_principal(ctx)
    if isinstance(principal, Finding):
        return principal
    partition = ctx.model.partition
    requests: list[Request] = []
    if ctx.scope.job_queue:
        arn = ctx.model.job_queue_arn() or _batch_arn(ctx, "job-queue", ctx.scope.job_queue, partition)
        requests.append(Request("batch:SubmitJob", arn))
    job = named_job(ctx)
    if ctx.scope.job_definition:
        arn = (job.arn if job else None) or _batch_arn(ctx, "job-definition", ctx.scope.job_definition, partition)
        requests.append(Request("batch:SubmitJob", arn))
    # the roles are passed to Batch (SubmitJob, RegisterJobDefinition): iam:PassedToService is known
    passed_to = ((policy.PASSED_TO_SERVICE, (roles.BATCH_SERVICE,)),)
    requests += [Request("iam:PassRole", arn, passed_to) for arn in passed_roles(ctx, job)]
    if not requests:
        raise NotApplicable("nothing to submit to")
    decisions = ctx.model.permissions(principal, requests)
    note = f" ({'; '.join(principal.notes)})" if principal.notes else ""
    return policy.finding(decisions, f"caller {principal.arn}{note}")


# -- IAM007 / IAM008: what the execution role reads and writes for the job -----------------------------------
READ_SECRETS = ["secretsmanager:DescribeSecret", "ssm:DescribeParameters", "kms:DescribeKey", "kms:GetKeyPolicy"]


def job_for(ctx: CheckContext, res: Resource) -> Job:
    """The job definition a job_definition resource stands for: the registered one, else the local file."""
    if res.get("file") and ctx.scope.job_definition:
        raise NotApplicable(f"judged on the registered job definition {ctx.scope.job_definition}")
    job = ctx.model.job()
    if job is None:
        raise NotApplicable(f"job definition {res.id} does not exist (see BAT003)")
    return job


def runtime_role(ctx: CheckContext, job: Job) -> tuple[Role, str] | None:
    """The role that reads the job's secrets and writes its logs: the execution role (Fargate needs one; on EC2
    ECS reads secrets with it too); None when none is named. A named role that is missing: NotApplicable."""
    value = job.execution_role or ctx.scope.execution_role
    if not value:
        return None
    name = _ref(value).name
    role = ctx.model.role(name)
    if role is None:
        raise NotApplicable(f"execution role {name} does not exist (see IAM004)")
    return role, "execution role"


def kms_decisions(ctx: CheckContext, role: Role, key_arn: str, key_policy: Any, identity: policy.Decision,
                  what: str) -> policy.Decision:
    """kms:Decrypt as KMS decides it (AWS KMS Developer Guide, "Key policies"): the key policy must allow the role
    itself, or allow the account (arn:P:iam::ACCOUNT:root) and so delegate to IAM, whose identity policies must
    then allow; an explicit Deny in either wins."""
    req = identity.request
    account = policy.arn_account(key_arn) or ctx.account or ""
    docs = [policy.Document(f"key policy of {key_arn}", key_policy or {})]
    asked = policy.with_known_context(req, region=ctx.region, principal_account=policy.arn_account(role.arn))
    direct = policy.evaluate(docs, asked, principals=[role.arn, role.role_id], method="key policy")
    delegated = policy.evaluate(docs, asked, principals=[f"arn:{ctx.model.partition}:iam::{account}:root", account],
                                method="key policy")
    for d in (direct, identity):
        if d.verdict == "denied" and d.reason == "explicit deny":
            return policy.Decision(req, "denied", d.method, d.statement, "explicit deny")
    if direct.verdict == "allowed" and account == policy.arn_account(role.arn):
        return policy.Decision(req, "allowed", "key policy", direct.statement)
    if delegated.verdict == "allowed" or direct.verdict == "allowed":
        if identity.verdict == "denied":
            return policy.Decision(req, identity.verdict, identity.method, identity.statement,
                                   f"{what}: the key policy leaves it to IAM, and {identity.reason}")
        return identity
    if "unknown" in (direct.verdict, delegated.verdict):
        unknown = direct if direct.verdict == "unknown" else delegated
        return policy.Decision(req, "unknown", "key policy", unknown.statement, unknown.reason)
    return policy.Decision(req, "denied", "key policy", None,
                           f"the key policy of {key_arn} allows neither {role.name} nor the account's IAM policies")


@check(
    id="IAM007", slug="secrets-readable",
    title="Every secret of the job exists, and the execution role may read it and decrypt it",
    severity="high", resource="job_definition", permissions=[*READ_ROLE, *READ_SECRETS, *BATCH_ON_EKS],
    rationale="A job whose secrets[].valueFrom, log secretOptions or repositoryCredentials names a secret or "
              "parameter that does not exist, that the execution role may not read, or whose customer managed KMS "
              "key (key policy and identity policy) does not let it decrypt, fails at start with "
              "ResourceInitializationError: unable to pull secrets or registry auth.",
    remediation="Create the secret or parameter the job names (same region; an ARN with or without the 6-character "
                "suffix), allow the execution role secretsmanager:GetSecretValue / ssm:GetParameters on it, and "
                "kms:Decrypt on its customer managed key in the key policy (or let the key policy delegate to IAM "
                "and allow it in the role's policy).",
)
def secrets_readable(ctx: CheckContext, res: Resource) -> Finding:
    job = job_for(ctx, res)
    values = job.secret_values()
    if not values:
        raise NotApplicable(f"job definition {job.name} names no secret (secrets, secretOptions, "
                            "repositoryCredentials)")
    found = runtime_role(ctx, job)
    if found is None:
        return failed(f"job definition {job.name} names {len(values)} secret(s) but no execution role: ECS reads "
                      "secrets with the execution role; set executionRoleArn")
    role, who = found
    sources = ctx.model.secret_sources(values)
    missing = [s for s in sources if not s.exists]
    if missing:
        return failed("; ".join(
            f"{'secret' if s.store == 'secretsmanager' else 'SSM parameter'} {s.value_from} does not exist"
            + (f" (looked up as {s.arn})" if s.arn != s.value_from else "") for s in missing)
            + ": create it, or correct valueFrom")
    versions = [(s, s.missing_version()) for s in sources if s.missing_version()]
    if versions:
        return failed("; ".join(f"secret {s.arn} has no {what} (valueFrom {s.value_from})" for s, what in versions)
                      + ": name a version stage or id the secret has, or leave them empty for AWSCURRENT")
    requests = [Request("secretsmanager:GetSecretValue" if s.store == "secretsmanager" else "ssm:GetParameters",
                        s.arn) for s in sources]
    decisions = list(ctx.model.permissions(role.principal, requests))
    keys: list[tuple[str, str, str]] = []  # (key, region, via service) of customer managed keys to decrypt with
    for s in sources:
        if not s.encrypted or not s.kms_key or s.kms_key.startswith("alias/aws/"):
            continue  # the service's AWS managed key: its key policy lets the account's principals use it
        region = s.arn.split(":")[3] or ctx.region or ""
        keys.append((s.kms_key, region, f"{s.store}.{region}.amazonaws.com"))
    for key_ref, region, via in dict.fromkeys(keys):
        key = ctx.model.kms_key(key_ref, region)
        if key is None:
            return failed(f"KMS key {key_ref} that encrypts a secret of job definition {job.name} does not exist")
        if key.aws_managed:
            continue
        if not key.enabled:
            return failed(f"KMS key {key.arn} that encrypts a secret of job definition {job.name} is disabled")
        req = Request("kms:Decrypt", key.arn, (("kms:ViaService", (via,)),))
        identity = ctx.model.permissions(role.principal, [req])[0]
        decisions.append(kms_decisions(ctx, role, key.arn, key.policy, identity, f"key {key.arn}"))
    what = f"{who} {role.arn} reading {len(sources)} secret(s) of job definition {job.name}"
    summary = policy.summarize(decisions, what)
    if summary.outcome == "passed":
        return passed(f"{len(sources)} secret(s) exist; {summary.message}")
    # IAM004 names the same unreadable secrets against the configured execution role and points here
    also = " (IAM004 names these secrets too, and points here)" if ctx.scope.execution_role and \
        _ref(ctx.scope.execution_role).name == role.name else ""
    if summary.outcome == "failed":
        return failed(summary.message + also)
    raise NotEvaluable(summary.message + also)


@check(
    id="IAM008", slug="log-group",
    title="The job's awslogs group exists (or may be created), and the role awslogs writes with may write to it",
    severity="high", resource="job_definition",
    permissions=[*READ_ROLE, *BATCH_ON_EKS, "logs:DescribeLogGroups", "iam:GetInstanceProfile",
                 "ec2:DescribeLaunchTemplateVersions"],
    rationale="With the awslogs driver and an awslogs-group that does not exist, a job fails at start "
              "(ResourceInitializationError ... log group does not exist) unless awslogs-create-group is true and "
              "logs:CreateLogGroup is allowed; without logs:CreateLogStream / PutLogEvents nothing is logged.",
    remediation="Create the log group (aws logs create-log-group --log-group-name NAME), or set awslogs-create-group "
                "to \"true\" and allow logs:CreateLogGroup; allow logs:CreateLogStream and logs:PutLogEvents on "
                "the group to the role the message names: the execution role on Fargate, and on EC2 when the job "
                "definition names one; the compute environment's instance role otherwise.",
)
def log_group_ready(ctx: CheckContext, res: Resource) -> Finding:
    job = job_for(ctx, res)
    log = job.log
    if log is None or log.driver != "awslogs":
        what = f"the {log.driver} log driver" if log else "Batch's default awslogs group /aws/batch/job"
        raise NotApplicable(f"job definition {job.name} uses {what}: no log group of its own to check")
    name = log.option("awslogs-group")
    if not name:
        raise NotApplicable(f"job definition {job.name} logs to Batch's default group /aws/batch/job")
    region = log.option("awslogs-region") or ctx.region
    if region != ctx.region:
        raise NotEvaluable(f"awslogs-region {region} differs from the target's region {ctx.region}: the log group "
                           "is not read there")
    create = (log.option("awslogs-create-group") or "").lower() == "true"
    group = ctx.model.log_group(name)
    if group is None and not create:
        return failed(f"log group {name} (awslogs-group of job definition {job.name}) does not exist in {region} "
                      "and awslogs-create-group is not true: create the group, or set awslogs-create-group to "
                      "\"true\" and allow logs:CreateLogGroup")
    base = f"arn:{ctx.model.partition}:logs:{region}:{ctx.account or '*'}:log-group:{name}"
    stream = f"{base}:log-stream:{policy.SAMPLE}"
    requests = [Request("logs:CreateLogStream", stream), Request("logs:PutLogEvents", stream)]
    if group is None:
        requests.insert(0, Request("logs:CreateLogGroup", base))
    state = "exists" if group is not None else "does not exist; awslogs-create-group is true"
    decisions: list[policy.Decision] = []
    writers: list[str] = []
    for writer in awslogs_writers(ctx, job):
        if writer.role is None:
            if writer.kind == "execution role":
                return failed(f"job definition {job.name} logs with awslogs to {name}, but {writer.why} and it "
                              "names none: set executionRoleArn")
            raise NotEvaluable(f"which role writes the logs to {name} cannot be told: {writer.why}")
        role = ctx.model.role(writer.role)
        if role is None:
            raise NotApplicable(f"the {writer.kind} {writer.role} that writes the logs does not exist (see "
                                f"{'IAM004' if writer.kind == 'execution role' else 'IAM002/IAM003'}): {writer.why}")
        decisions += ctx.model.permissions(role.principal, requests)
        writers.append(f"{writer.kind} {role.arn} ({writer.why})")
    return policy.finding(decisions, f"{'; '.join(writers)} logging to {name}", f"log group {name} {state}; ")
