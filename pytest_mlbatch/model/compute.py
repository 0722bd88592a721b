"""Compute as Batch will use it: compute environments, the instance types they may launch, key pairs, as frozen,
typed facts (built by aws/world.py from the APIs; a template-based inventory would build the same)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type's facts a job depends on."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    architectures: tuple[str, ...]


@dataclass(frozen=True)
class LaunchTemplateRef:
    """The launch template a compute environment names, and the version it pins ("$Default" when it names none)."""

    id: str | None
    name: str | None
    version: str


@dataclass(frozen=True)
class ComputeEnvironment:
    """One compute environment: what it is, whether it takes jobs, and what its instances get."""

    name: str
    arn: str
    managed: bool
    state: str | None
    status: str | None
    status_reason: str | None
    orchestration: str  # ECS or EKS
    provisioning: str | None  # EC2, SPOT, FARGATE or FARGATE_SPOT (None when unmanaged)
    service_role: str | None
    instance_profile: str | None
    instance_types: tuple[str, ...]
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    key_pair: str | None
    launch_template: LaunchTemplateRef | None
    max_vcpus: int | None
    ecs_cluster: str | None = None
    image_id: str | None = None  # computeResources.imageId (deprecated)
    ec2_configuration: tuple[Ec2Configuration, ...] = ()
    template_overrides: tuple[TemplateOverride, ...] = ()
    instance_profile_ref: str | None = None  # the instance profile as the compute environment names it (name or ARN)

    @property
    def fargate(self) -> bool:
        return bool(self.provisioning and self.provisioning.startswith("FARGATE"))

    @property
    def spot(self) -> bool:
        return self.provisioning in ("SPOT", "FARGATE_SPOT")

    @property
    def eks(self) -> bool:
        return self.orchestration == "EKS"


@dataclass(frozen=True)
class KeyPair:
    """An EC2 key pair of the region, by its key name."""

    name: str
    id: str | None
    type: str
    fingerprint: str


# -- what an instance boots: launch template versions, AMIs, and Batch's AMI selection order ------------------------
@dataclass(frozen=True)
class Ec2Configuration:
    """One `ec2Configuration` entry: the image type it matches and the AMI that overrides its default."""

    image_type: str | None
    image_id_override: str | None

    @property
    def nvidia(self) -> bool:
        return "NVIDIA" in (self.image_type or "")


@dataclass(frozen=True)
class TemplateOverride:
    """A launch template override: another template (and version) for some instance types or families."""

    template: LaunchTemplateRef
    target_instance_types: tuple[str, ...]

    def targets(self, instance_type: str) -> bool:
        family = instance_type.split(".")[0]
        return instance_type in self.target_instance_types or family in self.target_instance_types


@dataclass(frozen=True)
class BlockDevice:
    """One block device mapping (a launch template's or an AMI's)."""

    device: str
    size_gib: int | None
    ebs: bool


@dataclass(frozen=True)
class LaunchTemplateVersion:
    """The version of a launch template that a compute environment pins, as far as Batch uses it."""

    template: str  # the template's id or name as the compute environment names it
    version: int | None
    image_id: str | None
    block_devices: tuple[BlockDevice, ...]
    user_data: str | None  # decoded text; None when the version has none

    def device(self, name: str | None) -> BlockDevice | None:
        return next((d for d in self.block_devices if name and d.device == name), None)


@dataclass(frozen=True)
class Ami:
    """An AMI as DescribeImages shows it: what it runs on, its root device, and what its name says it is."""

    id: str
    name: str
    description: str
    architecture: str  # x86_64 or arm64 (EC2's names)
    root_device: str | None
    block_devices: tuple[BlockDevice, ...]

    @property
    def root_volume_gib(self) -> int | None:
        root = next((d for d in self.block_devices if d.device == self.root_device), None)
        return root.size_gib if root else None

    @property
    def family(self) -> str | None:
        """AL2023, AL2 or AL1 (the first ECS-optimized AMI, with Docker's data on /dev/xvdcz), from the name."""
        text = self.name.lower()
        if text.startswith("al2023") or "al2023" in text:
            return "AL2023"
        if text.startswith("amzn2") or "amazon linux 2 " in f"{self.description.lower()} ":
            return "AL2"
        if text.startswith("amzn-ami"):
            return "AL1"
        return None

    @property
    def nvidia(self) -> bool | None:
        """True when the name or description says GPU/NVIDIA/CUDA, False for an ECS-optimized non-GPU AMI, else
        None (a custom AMI whose driver cannot be seen from its description)."""
        text = f"{self.name} {self.description}".lower()
        if any(w in text for w in ("nvidia", "gpu", "cuda", "deep learning")):
            return True
        if "ecs" in text and ("amzn" in text or "al2023" in text):
            return False
        return None


@dataclass(frozen=True)
class AmiChoice:
    """The AMI Batch launches an instance type with, and why (AWS Batch user guide, 'AMI selection order')."""

    source: str
    image_id: str | None  # None: Batch's default AMI for image_type
    image_type: str


def image_type_for(ce: ComputeEnvironment, gpu: bool) -> str:
    """The image type Batch matches to an instance type: the ec2Configuration entry of its kind (NVIDIA for GPU
    types), else the first entry, else Batch's default (ECS_AL2023; its NVIDIA variant for GPU families)."""
    configs = ce.ec2_configuration
    chosen = next((c for c in configs if c.nvidia == gpu), configs[0] if configs else None)
    if chosen is not None and chosen.image_type:
        return chosen.image_type
    return "ECS_AL2023_NVIDIA" if gpu else "ECS_AL2023"


def ami_choice(ce: ComputeEnvironment, instance_type: str, gpu: bool,
               versions: dict[LaunchTemplateRef, LaunchTemplateVersion | None]) -> AmiChoice:
    """Batch's AMI selection order for one instance type: (1) the launch template override that targets it, (2)
    computeResources.imageId (deprecated), (3) the matching ec2Configuration's imageIdOverride, (4) the pinned
    launch template version's ImageId, (5) Batch's default AMI for the image type. `versions` holds the launch
    template versions the compute environment pins (None: the version does not exist)."""
    image_type = image_type_for(ce, gpu)
    override = next((o for o in ce.template_overrides if o.targets(instance_type)), None)
    if override is not None:
        found = versions.get(override.template)
        if found is not None and found.image_id:
            return AmiChoice(f"launch template override {found.template} version {found.version}", found.image_id,
                             image_type)
    if ce.image_id:
        return AmiChoice("computeResources.imageId", ce.image_id, image_type)
    config = next((c for c in ce.ec2_configuration if c.image_type == image_type), None)
    if config is not None and config.image_id_override:
        return AmiChoice(f"ec2Configuration imageIdOverride ({image_type})", config.image_id_override, image_type)
    template = versions.get(ce.launch_template) if ce.launch_template else None
    if template is not None and template.image_id:
        return AmiChoice(f"launch template {template.template} version {template.version}", template.image_id,
                         image_type)
    return AmiChoice(f"Batch's default {image_type} AMI", None, image_type)


def templates_of(ce: ComputeEnvironment) -> list[LaunchTemplateRef]:
    """Every launch template (and pinned version) a compute environment uses: its own, then its overrides'."""
    out = [ce.launch_template] if ce.launch_template else []
    out.extend(o.template for o in ce.template_overrides)
    return out


@dataclass(frozen=True)
class TimeLimitAction:
    """One `jobStateTimeLimitActions` entry of a job queue."""

    state: str | None
    action: str | None
    max_seconds: int | None
    reason: str | None


@dataclass(frozen=True)
class JobQueue:
    """The job queue: whether it takes jobs, the compute environments it orders (ARNs or names, in order) and what
    it does with jobs stuck in a state."""

    name: str
    arn: str
    state: str | None
    status: str | None
    status_reason: str | None
    order: tuple[str, ...]
    time_limit_actions: tuple[TimeLimitAction, ...]
