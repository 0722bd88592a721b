"""The resolved model of one target that checks decide over: what each part answers, however it was gathered.

aws/world.py builds it from the AWS APIs; a part that cannot be read raises NotEvaluable with the reason (the check's
outcome is then `error`, never `passed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_mlbatch.analysis.imageref import ImageRef
from pytest_mlbatch.analysis.jobreasons import JobFacts
from pytest_mlbatch.analysis.names import did_you_mean
from pytest_mlbatch.analysis.policy import Decision, Request
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.compute import (
    Ami,
    AmiChoice,
    ComputeEnvironment,
    InstanceType,
    JobQueue,
    KeyPair,
    LaunchTemplateRef,
    LaunchTemplateVersion,
    ami_choice,
    templates_of,
)
from pytest_mlbatch.model.images import EcrImage, EcrRepository, RegistryLogin, ScanFindings
from pytest_mlbatch.model.job import Job
from pytest_mlbatch.model.network import LaunchSettings, Network, Subnet
from pytest_mlbatch.model.principals import (
    Caller,
    Identity,
    InstanceProfile,
    KmsKey,
    LogGroup,
    ManagedPolicy,
    Principal,
    Role,
    SecretSource,
)
from pytest_mlbatch.model.submitted import Evidence
from pytest_mlbatch.oci import Manifest, Platform


class World(Protocol):
    """One target's facts. Each method answers from one gathering of the part it names, shared by every check."""

    @property
    def region(self) -> str | None: ...

    def job(self) -> Job | None:
        """The job definition the job runs (the named one, else the local file); None when there is neither or the
        named one does not exist (BAT003 says which)."""
        ...

    def job_queue(self) -> JobQueue | None:
        """The scope's job queue; None when there is none or it does not exist (BAT002 says which)."""
        ...

    def compute_environments(self) -> Sequence[ComputeEnvironment]:
        """The scope's compute environments that exist, in the queue's order (missing ones are absent)."""
        ...

    def instance_types(self, names: Sequence[str]) -> Sequence[InstanceType]:
        """The instance types a compute environment's instanceTypes entries allow (families expanded)."""
        ...

    def key_pairs(self) -> Mapping[str, KeyPair]:
        """The configured key pairs that exist in the region, by key name."""
        ...


    def names(self, kind: str) -> Sequence[str]:
        """Every name of a kind of resource ("key_pair", "role", "instance_profile", "compute_environment",
        "job_queue", "job_definition") in the account or region: read only to suggest a near name when a configured
        one does not exist. NotEvaluable when the listing cannot be read (never a shortened list)."""
        ...

    def network(self, *, vpcs: bool = False, groups: bool = False, paths: bool = False, acls: bool = False,
                dns: bool = False, dhcp: bool = False) -> Network:
        """The target's network with the parts asked for: subnets always; VPCs; security groups; what decides
        egress paths (route tables, gateways, NAT gateways, endpoints with their zones and policies; implies VPCs
        and groups); network ACLs; the VPCs' DNS attributes; their DHCP option sets. Parts not asked for are
        empty, so a check needs only the permissions of what it decides over."""
        ...

    def launch_settings(self, ce: ComputeEnvironment) -> LaunchSettings:
        """What the compute environment's launch template and placement say about its instances' network."""
        ...

    def job_assign_public_ip(self) -> str | None:
        """The named job definition's Fargate assignPublicIp (DISABLED when unset); None without one."""
        ...

    def vpc_subnets(self, vpc_id: str) -> Sequence[Subnet]:
        """Every subnet of a VPC (NET003's fix looks for a public subnet to put a NAT gateway in)."""
        ...

    def launch_template_version(self, ref: LaunchTemplateRef) -> LaunchTemplateVersion | None:
        """The version of a launch template a compute environment pins ($Default, $Latest or a number); None when the
        template or that version does not exist."""
        ...

    def images(self, ids: Sequence[str]) -> Mapping[str, Ami]:
        """The AMIs of these ids that DescribeImages shows this account (missing or not shared: absent)."""
        ...

    def registered_memory(self, ce: ComputeEnvironment) -> Mapping[str, int]:
        """MiB of memory that the compute environment's registered ECS container instances report (their
        registeredResources MEMORY), by instance type, the smallest where several of a type differ; empty when
        none is registered (a compute environment scaled to zero)."""
        ...

    def subnet_zones(self, subnets: Sequence[str]) -> Mapping[str, str]:
        """The Availability Zone of each of these subnets that exists."""
        ...

    def offered_types(self, zones: Sequence[str]) -> Mapping[str, frozenset[str]]:
        """The instance types EC2 offers in each of these Availability Zones."""
        ...

    def service_quota(self, service: str, code: str) -> float:
        """A Service Quotas value: the one applied to the account, else AWS's default. NotEvaluable when the quota
        is unknown to Service Quotas."""
        ...

    # -- principals and what decides their rights (model/principals.py) ------------------------------------------
    @property
    def partition(self) -> str:
        """The caller's partition (aws, aws-cn, aws-us-gov); 'aws' when the identity cannot be read."""
        ...

    def identity(self) -> Identity:
        """Whose credentials the target uses (account and ARN), or why there are no usable credentials."""
        ...

    def known_region(self, region: str) -> bool:
        """Whether AWS has this region (EC2 or Batch runs there); known without a call."""
        ...

    def caller(self) -> Caller:
        """Who runs the preflight; NotEvaluable when it is neither the root user, an IAM user nor an assumed role."""
        ...

    def role(self, name: str) -> Role | None:
        """The role of this name; None when it does not exist."""
        ...

    def service_linked_role(self, service: str) -> Role | None:
        """The service's service-linked role (found by its path /aws-service-role/SERVICE/), whatever its name."""
        ...

    def instance_profile(self, name: str) -> InstanceProfile | None:
        ...

    def role_policy_names(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(ARNs of the managed policies attached to the role, names of its inline policies)."""
        ...

    def managed_policy(self, name: str) -> ManagedPolicy:
        """An AWS managed policy by its name under arn:PARTITION:iam::aws:policy/ (e.g. service-role/X)."""
        ...

    def permissions(self, principal: Principal, requests: Sequence[Request]) -> Sequence[Decision]:
        """May the principal do each request, by its identity policies and permissions boundary (resource policies
        are the caller's to add: they are facts of their own below)."""
        ...

    def job_queue_arn(self) -> str | None:
        """The scope's job queue's ARN; None when it does not exist."""
        ...

    def repository_policy(self, account: str, region: str, repository: str) -> Mapping[str, object] | None:
        """An ECR repository's policy; None when it has none (or, in this account, when the repository is missing).
        NotEvaluable when another account's repository cannot be seen."""
        ...

    def secret_sources(self, values: Sequence[str]) -> Sequence[SecretSource]:
        """What each secrets[].valueFrom (or repositoryCredentials) names, resolved, in the given order."""
        ...

    def kms_key(self, key: str, region: str | None = None) -> KmsKey | None:
        """A KMS key by id, ARN or alias (in `region`, default the target's); None when it does not exist."""
        ...

    def log_group(self, name: str) -> LogGroup | None:
        """The CloudWatch Logs group of this name; None when it does not exist."""
        ...

    def bucket_region(self, bucket: str) -> str | None:
        """The region of the S3 bucket of this name (GetBucketLocation); None when it does not exist. NotEvaluable
        when it cannot be read."""
        ...

    # -- Batch resources as the BAT checks judge them ----------------------------------------------------------
    def job_definition(self, ref: str) -> tuple[Job | None, str]:
        """(the job definition named by name, name:revision or ARN, or None; why it is missing). Unlike job(), a
        definition with malformed parts is returned, with the reason on the Job (Job.problem())."""
        ...

    def job_definition_file(self, value: str) -> Job:
        """A local job-definition JSON file (RegisterJobDefinition input), malformed parts noted as in
        job_definition(); NotEvaluable when it cannot be read or is no JSON object."""
        ...

    def current_job_definition(self) -> tuple[Job | None, str]:
        """The job definition the job runs (the named one, else the local file), as job_definition() gives it;
        (None, why) when there is neither or the named one is missing."""
        ...

    def target_compute_environments(self) -> Mapping[str, ComputeEnvironment]:
        """The target's compute environments that exist (the scope's and those the queue orders), by name and by
        ARN."""
        ...

    def eks_reason(self) -> str | None:
        """Why the scope runs Batch on Amazon EKS (every compute environment is EKS, or the job definition has
        eksProperties), else None."""
        ...

    # -- a submitted job (--mlbatch-job; model/submitted.py) -------------------------------------------------------
    def submitted_job(self) -> tuple[JobFacts | None, str]:
        """(the job the target is scoped to, as Batch describes it, or None; why it is missing). NotEvaluable when it
        could not be read."""
        ...

    def runnable_evidence(self, job: JobFacts) -> Evidence:
        """Why a RUNNABLE job waits, as the queue's compute environments show it: each one's state, its Auto Scaling
        groups' failed scaling activities, the ECS container instances registered in its cluster and whether any can
        hold the job. Reads that fail are named in Evidence.unread (never left out silently)."""
        ...

    # -- the job's image and its registry (model/images.py) -------------------------------------------------------
    def ecr_repositories(self, ref: ImageRef) -> Mapping[str, EcrRepository]:
        """Every repository of the image's registry (account and region from the reference), by name."""
        ...

    def ecr_images(self, ref: ImageRef) -> Sequence[EcrImage] | None:
        """Every image of the reference's repository; None when the repository does not exist."""
        ...

    def scan_findings(self, ref: ImageRef) -> ScanFindings | None:
        """The image's latest scan; None when it has never been scanned."""
        ...

    def registry_login(self, ref: ImageRef, endpoint: str | None) -> RegistryLogin:
        """How the image's registry is reached (at `endpoint`, image.registry_endpoint, if set) and with which
        credentials: ECR's token, else the secret the job definition's repositoryCredentials names. Raises
        RegistrySecretMissing when that secret does not exist."""
        ...

    def registry_endpoint(self, ref: ImageRef, endpoint: str | None) -> str:
        """The registry v2 base URL for the image (`endpoint` if set); NotEvaluable when it cannot be known."""
        ...

    def registry_manifest(self, ref: ImageRef, endpoint: str | None, reference: str | None = None, *,
                          fresh: bool = False) -> Manifest | None:
        """The manifest the registry serves for the image (or `reference` in its repository); None when it has none.
        `fresh` asks again instead of answering from this run's cache (a fix plan about to push)."""
        ...

    def image_platforms(self, ref: ImageRef, endpoint: str | None, manifest: Manifest) -> Sequence[Platform]:
        """The platforms (os/architecture) a manifest or index provides."""
        ...


def near_name(world: World, kind: str, name: str) -> str:
    """' (did you mean ...?)' from the names of that kind; '' when none is near or the names cannot be read (the
    suggestion is a courtesy: the finding stands without it, and never rests on a partial listing)."""
    try:
        return did_you_mean(name, world.names(kind))
    except NotEvaluable:
        return ""


@dataclass(frozen=True)
class Boot:
    """What an instance type of a compute environment boots: the AMI Batch selects (and why), that AMI's facts
    (None for Batch's default AMI), and the launch template version whose block devices and user data apply."""

    instance_type: str
    choice: AmiChoice
    ami: Ami | None
    template: LaunchTemplateVersion | None


def boot(world: World, ce: ComputeEnvironment, instance_type: str, gpu: bool) -> Boot:
    """Batch's AMI selection order for one instance type, resolved. Raises NotEvaluable when a launch template
    version the compute environment pins does not exist, or the AMI chosen cannot be described (the AMI, its
    architecture, driver and disk are then unknown: never passed)."""
    versions: dict[LaunchTemplateRef, LaunchTemplateVersion | None] = {}
    for ref in templates_of(ce):
        found = world.launch_template_version(ref)
        if found is None:
            raise NotEvaluable(f"compute environment {ce.name}: launch template {ref.id or ref.name} version "
                               f"{ref.version} does not exist, so the AMI and volumes its instances get are unknown")
        versions[ref] = found
    choice = ami_choice(ce, instance_type, gpu, versions)
    ami = None
    if choice.image_id:
        ami = world.images([choice.image_id]).get(choice.image_id)
        if ami is None:
            raise NotEvaluable(f"compute environment {ce.name}: AMI {choice.image_id} ({choice.source}) cannot be "
                               "described (DescribeImages does not show it to this account), so its architecture, "
                               "drivers and root volume cannot be verified")
    override = next((o for o in ce.template_overrides if o.targets(instance_type)), None)
    template = versions.get(override.template) if override else \
        versions.get(ce.launch_template) if ce.launch_template else None
    return Boot(instance_type, choice, ami, template)
