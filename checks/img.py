"""IMG checks: the job's image exists in ECR, is the local build, can be pulled, fits the CPU and disk, is scanned
and pinned (IMG006, pull permissions, lives in img_pull.py)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pytest_mlbatch import dockerops
from pytest_mlbatch.analysis.imageref import ImageRef, ImageRefError, parse
from pytest_mlbatch.analysis.names import did_you_mean
from pytest_mlbatch.engine.context import CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, NotEvaluable, Resource, failed, passed
from pytest_mlbatch.model.compute import ComputeEnvironment, InstanceType
from pytest_mlbatch.model.images import EcrImage, RegistryLogin, RegistrySecretMissing
from pytest_mlbatch.model.world import Boot, boot
from pytest_mlbatch.oci import Manifest, Platform

MIB = 1024 * 1024
GIB = 1024 * MIB
# Pulling needs room for the compressed layers while they are extracted: about this many times the compressed size.
PULL_FOOTPRINT = 2.5
# The ECS-optimized Amazon Linux 2 and 2023 AMIs have one 30 GiB root volume (/dev/xvda) that holds Docker's data;
# Fargate gives 20 GiB.
DEFAULT_EC2_VOLUME_GIB = 30
DEFAULT_FARGATE_GIB = 20
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
EC2_ARCH = {"x86_64": "amd64", "x86_64_mac": "amd64", "arm64": "arm64", "arm64_mac": "arm64", "i386": "386"}
FARGATE_ARCH = {"X86_64": "amd64", "ARM64": "arm64"}
PUSH_PERMISSIONS = ["ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:DescribeImages",
                    "ecr:BatchGetImage"]


# -- the image reference ---------------------------------------------------------------------------------
def image_ref(res: Resource) -> ImageRef:
    """The parsed reference; a malformed one makes the check not applicable (IMG001 and IMG004 report it)."""
    try:
        return parse(res.id)
    except ImageRefError as exc:
        raise NotApplicable(f"malformed image reference (IMG001/IMG004 report it): {exc}") from None


def ecr_only(ref: ImageRef) -> None:
    if not ref.is_ecr:
        raise NotApplicable(f"{ref} is not an ECR image (registry {ref.registry})")


# -- ECR metadata (model/images.py) -------------------------------------------------------------------------
def find_image(details: Sequence[EcrImage], ref: ImageRef) -> EcrImage | None:
    for d in details:
        if ref.digest and d.digest == ref.digest:
            return d
        if not ref.digest and ref.tag in d.tags:
            return d
    return None


def ecr_image(ctx: CheckContext, ref: ImageRef) -> EcrImage:
    """The image's ECR details; NotApplicable if the repository or tag is missing (IMG001/IMG002 report that)."""
    details = ctx.model.ecr_images(ref)
    if details is None:
        raise NotApplicable(f"repository {ref.repository} does not exist in {ref.account}/{ref.region} (see IMG001)")
    found = find_image(details, ref)
    if found is None:
        raise NotApplicable(f"{ref.reference} is not in repository {ref.repository} (see IMG002)")
    return found


def require_present(ctx: CheckContext, ref: ImageRef) -> None:
    """ECR images must exist before their registry is asked; other registries answer for themselves."""
    if ref.is_ecr:
        ecr_image(ctx, ref)


# -- registry access (the model's registry facts, at image.registry_endpoint if set) ------------------------
def registry(ctx: CheckContext, ref: ImageRef) -> RegistryLogin:
    return ctx.model.registry_login(ref, ctx.settings.image_registry_endpoint)


def manifest(ctx: CheckContext, ref: ImageRef, reference: str | None = None) -> Manifest | None:
    return ctx.model.registry_manifest(ref, ctx.settings.image_registry_endpoint, reference)


def platforms(ctx: CheckContext, ref: ImageRef, m: Manifest) -> list[Platform]:
    return list(ctx.model.image_platforms(ref, ctx.settings.image_registry_endpoint, m))


def docker_name(ctx: CheckContext, ref: ImageRef) -> str:
    """The repository name Docker uses for this image (at image.registry_endpoint, if one is set)."""
    override = ctx.settings.image_registry_endpoint
    if override:
        return f"{urlsplit(override).netloc}/{ref.repository}"
    return ref.name


# -- IMG001 ---------------------------------------------------------------------------------------------
@check(
    id="IMG001", slug="ecr-repository-exists", title="The ECR repository of the image exists", severity="critical",
    resource="image", permissions=["ecr:DescribeRepositories"],
    rationale="A job whose image names a repository that does not exist (wrong name, account or region) stops "
              "with CannotPullContainerError: repository not found.",
    remediation="Create the repository in the account and region of the image URI (`--fix` does, with scan on "
                "push), or correct image.uri / the job definition's image.",
)
def ecr_repository_exists(ctx: CheckContext, res: Resource) -> Finding:
    try:
        ref = parse(res.id)
    except ImageRefError as exc:
        return failed(f"malformed image reference: {exc}")
    ecr_only(ref)
    repos = ctx.model.ecr_repositories(ref)
    repo = repos.get(ref.repository)
    if repo is None:
        return failed(f"ECR repository {ref.repository!r} does not exist in account {ref.account}, region "
                      f"{ref.region}{did_you_mean(ref.repository, repos)}")
    return passed(f"repository {ref.repository} exists in account {ref.account}, region {ref.region} "
                  f"({repo.tag_mutability or 'MUTABLE'} tags)")


@ecr_repository_exists.fix(summary="create the repository (scan on push, tagged)",
                           permissions=["ecr:CreateRepository", "ecr:TagResource"])
def create_repository(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    try:
        ref = parse(res.id)
    except ImageRefError as exc:
        raise NotFixable(str(exc)) from None
    if ctx.account and ref.account != ctx.account:
        raise NotFixable(f"the repository belongs to account {ref.account}; these credentials are for "
                         f"{ctx.account}")

    def apply(fx: FixContext) -> None:
        fx.client("ecr", ref.region).create_repository(
            repositoryName=ref.repository, imageScanningConfiguration={"scanOnPush": True}, tags=fx.tag_list())

    return FixPlan(res.id, f"create ECR repository {ref.repository} in {ref.region} (scan on push)",
                   calls=["ecr:CreateRepository"], permissions=["ecr:CreateRepository", "ecr:TagResource"],
                   apply=apply)


# -- IMG002 ---------------------------------------------------------------------------------------------
@check(
    id="IMG002", slug="image-tag-exists", title="The image tag or digest exists in the repository",
    severity="critical", resource="image", permissions=["ecr:DescribeRepositories", "ecr:DescribeImages"],
    rationale="A tag that was never pushed (or a digest that was deleted) fails the job at pull time with "
              "CannotPullContainerError ... not found (FM 19).",
    remediation="Push the image under this tag (`--fix` pushes image.local), or point the job at a tag that exists.",
)
def image_tag_exists(ctx: CheckContext, res: Resource) -> Finding:
    ref = image_ref(res)
    if not ref.is_ecr:
        m = manifest(ctx, ref)
        if m is None:
            return failed(f"registry {ref.api_host} has no {ref.repository}:{ref.reference}")
        return passed(f"registry {ref.api_host} serves {ref.repository}:{ref.reference} ({m.digest})")
    details = ctx.model.ecr_images(ref)
    if details is None:
        return failed(f"repository {ref.repository} does not exist in {ref.account}/{ref.region}, so "
                      f"{ref.reference} does not either (see IMG001)")
    found = find_image(details, ref)
    if found is None:
        tags = sorted({t for d in details for t in d.tags})
        there = f"; tags there: {', '.join(tags[:8])}{' …' if len(tags) > 8 else ''}" if tags else \
            "; the repository is empty"
        near = did_you_mean(ref.reference, tags) if not ref.digest else ""
        return failed(f"{ref.reference} is not in repository {ref.repository} ({ref.account}/{ref.region})"
                      f"{near}{there}")
    return passed(f"{ref.repository}:{ref.reference} exists ({found.digest})")


@dataclass
class PushPlan:
    ref: ImageRef
    local: str
    tag: str


def push_plan(ctx: CheckContext, res: Resource) -> PushPlan:
    try:
        ref = parse(res.id)
    except ImageRefError as exc:
        raise NotFixable(str(exc)) from None
    local = res.get("local")
    if not local:
        raise NotFixable("image.local is not set: there is no local image to push")
    if not ref.is_ecr:
        raise NotFixable("pushing is automated for ECR images only")
    if ref.digest or not ref.tag:
        raise NotFixable("the job names a digest; a push cannot produce a given digest: push a tag and pin its "
                         "digest in the job definition")
    if ctx.account and ref.account != ctx.account:
        raise NotFixable(f"the repository belongs to account {ref.account}; these credentials are for "
                         f"{ctx.account}")
    if not ctx.runtime.fix_dry_run:  # a dry run shows the plan even where Docker is not running
        try:
            client = ctx.docker()
        except NotEvaluable as exc:
            raise NotFixable(str(exc)) from None
        try:
            found = dockerops.local_image(client, str(local))
        except dockerops.DockerOpError as exc:
            raise NotFixable(str(exc)) from None
        if found is None:
            raise NotFixable(f"local image {local} does not exist in Docker")
    return PushPlan(ref, str(local), ref.tag)


def push_calls(ctx: CheckContext) -> list[str]:
    calls = ["ecr:GetAuthorizationToken", "docker:tag", "docker:push", "ecr:DescribeImages"]
    if ctx.settings.image_registry_endpoint:
        calls.append("ecr:PutImage (only if the ECR API does not list the pushed tag)")
    return calls


def held_elsewhere(ctx: CheckContext, p: PushPlan, local: Any) -> str | None:
    """The digest the registry receiving the push serves for the tag, when that is another image than the local
    one (None: absent, or the same image). Raises NotFixable unless the config opts in to moving tags."""
    base = ctx.model.registry_endpoint(p.ref, ctx.settings.image_registry_endpoint)
    held = ctx.model.registry_manifest(p.ref, ctx.settings.image_registry_endpoint, p.tag, fresh=True)
    if held is None or held.digest in local.digests() or held.config_digest == local.id:
        return None
    if "move_tag" not in ctx.settings.fix_allow:
        raise NotFixable(f"{p.ref.repository}:{p.tag} already exists in the registry at {base} ({held.digest}), "
                         "though the ECR API does not list it; --fix never moves a tag without fix.allow: [move_tag]")
    return held.digest


def do_push(fx: FixContext, p: PushPlan) -> str:
    """Tag and push the configured local image; confirm the registry serves exactly that image. Returns the digest."""
    ref = p.ref
    try:
        client = fx.docker()
    except NotEvaluable as exc:
        raise NotFixable(str(exc)) from None
    local = dockerops.local_image(client, p.local)
    if local is None:
        raise NotFixable(f"local image {p.local} does not exist in Docker")
    if ref.repository not in fx.model.ecr_repositories(ref):
        raise NotFixable(f"repository {ref.repository} does not exist (IMG001 --fix creates it)")
    creds = fx.model.registry_login(ref, fx.settings.image_registry_endpoint).credentials
    target = docker_name(fx, ref)
    # Ask the registry that will receive the push, not only the ECR API (image.registry_endpoint may be another
    # registry): a tag it holds for another image is moved only with the opt-in, and the journal keeps its digest.
    held = held_elsewhere(fx, p, local)
    if held is not None:
        fx.journal.record_local(fx.check.id, fx.resource.id, "tag moves from", f"{ref.repository}@{held}")
    fx.journal.record_local(fx.check.id, fx.resource.id, "docker tag", f"{target}:{p.tag} <- {p.local} ({local.id})")
    digest = dockerops.tag_and_push(client, local.id, target, p.tag, creds)
    fx.journal.record_local(fx.check.id, fx.resource.id, "docker push", f"{target}:{p.tag}@{digest}")
    served = fx.model.registry_manifest(ref, fx.settings.image_registry_endpoint, p.tag, fresh=True)
    if served is None or served.digest != digest:
        raise NotFixable(f"pushed {digest} but the registry serves {served.digest if served else 'nothing'} for "
                         f"{ref.repository}:{p.tag}")
    if not served.is_index and served.config_digest != local.id:
        raise NotFixable(f"the registry's {ref.repository}:{p.tag} is not the local image {p.local}")
    ecr = fx.client("ecr", ref.region)
    try:
        listed = ecr.describe_images(repositoryName=ref.repository, registryId=ref.account,
                                     imageIds=[{"imageTag": p.tag}])["imageDetails"]
    except ecr.exceptions.ImageNotFoundException:
        listed = []
    if not any(d.get("imageDigest") == digest for d in listed):
        if not fx.settings.image_registry_endpoint:
            raise NotFixable(f"pushed {digest}, but ECR does not list {ref.repository}:{p.tag} with that digest")
        # The registry endpoint is separate from the ECR API (image.registry_endpoint): record the pushed manifest
        # with the API too, as ECR itself does at the end of a push.
        ecr.put_image(repositoryName=ref.repository, registryId=ref.account, imageManifest=served.raw.decode(),
                      imageManifestMediaType=served.media_type, imageTag=p.tag, imageDigest=digest)
    return digest


@image_tag_exists.fix(summary="tag and push the configured local image", permissions=PUSH_PERMISSIONS,
                      needs_docker=True)
def push_missing_tag(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    p = push_plan(ctx, res)
    if ctx.settings.image_registry_endpoint and not ctx.runtime.fix_dry_run:  # ask the receiving registry now
        try:
            local = dockerops.local_image(ctx.docker(), p.local)
        except (NotEvaluable, dockerops.DockerOpError) as exc:
            raise NotFixable(str(exc)) from None
        if local is not None:
            held_elsewhere(ctx, p, local)

    def apply(fx: FixContext) -> None:
        do_push(fx, p)

    return FixPlan(res.id, f"tag local image {p.local} as {docker_name(ctx, p.ref)}:{p.tag} and push it",
                   calls=push_calls(ctx), permissions=PUSH_PERMISSIONS, apply=apply,
                   notes=["logs in with the ECR authorization token (kept in memory, never written)",
                          "confirms the registry then serves the local image's digest"])


# -- IMG003 ---------------------------------------------------------------------------------------------
@check(
    id="IMG003", slug="local-matches-remote", title="The local image is the one in the registry",
    severity="medium", resource="image", needs_docker=True,
    permissions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:DescribeImages"],
    rationale="Testing one build locally and running another in Batch (a push that was forgotten or failed) "
              "makes the job run stale code.",
    remediation="Push the local image (`--fix` does), or set image.local to the image you built for this tag.",
)
def local_matches_remote(ctx: CheckContext, res: Resource) -> Finding:
    local_name = res.get("local")
    if not local_name:
        raise NotApplicable("image.local is not set")
    ref = image_ref(res)
    try:
        local = dockerops.local_image(ctx.docker(), str(local_name))
    except dockerops.DockerOpError as exc:
        raise NotEvaluable(str(exc)) from None
    if local is None:
        return failed(f"local image {local_name} does not exist in Docker")
    require_present(ctx, ref)
    remote = manifest(ctx, ref)
    if remote is None:
        raise NotApplicable(f"{ref} is not in the registry (see IMG002)")
    if remote.digest in local.digests():
        return passed(f"{local_name} is {ref} ({remote.digest})")
    config = remote.config_digest
    if remote.is_index:
        want = (local.os, local.architecture)
        child = next((d for d, p in remote.entries if p and (p.os, p.architecture) == want), None)
        if child is None:
            return failed(f"{ref} ({remote.digest}) has no {local.os}/{local.architecture} image, which is what "
                          f"local {local_name} is")
        cm = manifest(ctx, ref, child)
        config = cm.config_digest if cm else None
    if config == local.id:
        return passed(f"{local_name} is {ref} (same image config {local.id})")
    return failed(f"local image {local_name} ({local.id}) is not what {ref} serves (manifest {remote.digest}, "
                  f"config {config}): push the local build or update image.local")


@local_matches_remote.fix(summary="push the local image", permissions=PUSH_PERMISSIONS, needs_docker=True)
def push_local(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    p = push_plan(ctx, res)
    repo = ctx.model.ecr_repositories(p.ref).get(p.ref.repository)
    if repo is not None and (repo.tag_mutability or "MUTABLE").startswith("IMMUTABLE"):
        raise NotFixable(f"tags of {p.ref.repository} are immutable: push the local build under a new tag")
    old = find_image(ctx.model.ecr_images(p.ref) or [], p.ref)
    before = old.digest if old else None

    def apply(fx: FixContext) -> None:
        do_push(fx, p)  # journals the digest the tag had before (as the registry receiving the push serves it)

    notes = ["logs in with the ECR authorization token (kept in memory, never written)"]
    if before:
        # Moving a tag replaces what it names: --fix never overwrites unless the config opts in (fix.allow).
        notes.append(f"moves tag {p.tag} from {before}; that image stays in the repository by its digest")
    return FixPlan(res.id, f"push local image {p.local} as {docker_name(ctx, p.ref)}:{p.tag}",
                   calls=push_calls(ctx), permissions=PUSH_PERMISSIONS, apply=apply, notes=notes,
                   opt_in="move_tag" if before else None)


# -- IMG004 ---------------------------------------------------------------------------------------------
@check(
    id="IMG004", slug="image-pullable", title="The registry serves the image with the job's credentials",
    severity="critical", resource="image", needs_docker=True,
    permissions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:DescribeImages",
                 "secretsmanager:GetSecretValue"],
    rationale="Credentials that are refused, a registry that cannot be reached, or a manifest the registry will "
              "not serve all end in CannotPullContainerError before the job starts.",
    remediation="Check the registry address and credentials (ECR: the token; other registries: the secret named "
                "by repositoryCredentials, JSON with username and password); try `docker pull` of the image.",
)
def image_pullable(ctx: CheckContext, res: Resource) -> Finding:
    try:
        ref = parse(res.id)
    except ImageRefError as exc:
        return failed(f"malformed image reference, nothing can pull it: {exc}")
    require_present(ctx, ref)
    try:
        client = registry(ctx, ref)
    except RegistrySecretMissing as exc:
        return failed(f"the secret {exc.secret} that the job definition's "
                      "repositoryCredentials names does not exist: the job cannot log in to pull")
    m = manifest(ctx, ref)
    who = f"with {client.credentials}" if client.credentials else "anonymously"
    if m is None:
        return failed(f"registry {client.registry} has no manifest for {ref.repository}:{ref.reference}")
    if not ctx.settings.image_pull:
        return passed(f"registry {client.registry} serves {ref.repository}:{ref.reference} ({m.digest}) {who}")
    try:
        pulled = dockerops.pull(ctx.docker(), docker_name(ctx, ref), ref.reference, client.credentials)
    except dockerops.DockerOpError as exc:
        return failed(f"the registry serves the manifest, but {exc}")
    if m.digest not in pulled.digests():
        return failed(f"docker pulled {pulled.id}, not the manifest {m.digest} the registry serves")
    return passed(f"docker pulled {docker_name(ctx, ref)}@{m.digest} {who}")


# -- IMG005 ---------------------------------------------------------------------------------------------
def _compute_environment(ctx: CheckContext, name: str) -> ComputeEnvironment:
    found = next((ce for ce in ctx.model.compute_environments() if name in (ce.name, ce.arn)
                  or name.rsplit("/", 1)[-1] == ce.name), None)
    if found is None:
        raise NotApplicable(f"compute environment {name} was not found (see BAT001)")
    return found


def _boots(ctx: CheckContext, ce: ComputeEnvironment) -> list[tuple[InstanceType, Boot]]:
    """Each allowed instance type of an EC2 compute environment with what it boots (Batch's AMI selection order)."""
    if not ce.instance_types:
        raise NotEvaluable(f"compute environment {ce.name} lists no instance types")
    types = ctx.model.instance_types(ce.instance_types)
    if not types:
        raise NotEvaluable(f"DescribeInstanceTypes knows none of {', '.join(ce.instance_types)} (compute environment "
                           f"{ce.name})")
    return [(t, boot(ctx.model, ce, t.name, t.gpus > 0)) for t in types]


def _fargate_arch(ctx: CheckContext) -> str:
    if not ctx.scope.job_definition:
        return "X86_64"
    job = ctx.model.job()
    return (job.cpu_architecture if job else None) or "X86_64"


def ce_architectures(ctx: CheckContext) -> tuple[dict[str, list[tuple[str, set[str]]]], list[str]]:
    """Per compute environment: (instance type or 'Fargate', the OCI architectures it runs), and the instance types
    that cannot boot the AMI Batch selects for them (an AMI of another architecture)."""
    names = ctx.scope.compute_environments
    if not names:
        raise NotApplicable("no compute environment: set batch.compute_environment (or batch.job_queue)")
    out: dict[str, list[tuple[str, set[str]]]] = {}
    conflicts: list[str] = []
    for name in names:
        ce = _compute_environment(ctx, name)
        if ce.fargate:
            arch = _fargate_arch(ctx)
            out[name] = [(f"Fargate {arch}", {FARGATE_ARCH.get(arch, arch.lower())})]
            continue
        rows: list[tuple[str, set[str]]] = []
        for t, b in _boots(ctx, ce):
            archs = {EC2_ARCH.get(a, a) for a in t.architectures}
            if b.ami is None:
                rows.append((t.name, archs))
                continue
            ami_arch = EC2_ARCH.get(b.ami.architecture, b.ami.architecture)
            if ami_arch not in archs:
                conflicts.append(f"{name}: {t.name} ({'/'.join(sorted(archs))}) cannot boot AMI {b.ami.id} "
                                 f"({b.ami.architecture}) from {b.choice.source}")
                continue
            rows.append((f"{t.name} with AMI {b.ami.id}", {ami_arch}))
        out[name] = rows
    return out, conflicts


@check(
    id="IMG005", slug="image-platform", title="The image runs on the compute environment's CPU architecture",
    severity="critical", resource="image",
    permissions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                 "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions", "ec2:DescribeInstanceTypes",
                 "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages"],
    rationale="An image built for another CPU (an arm64 build from Apple Silicon on x86 instances, or the reverse) "
              "starts and dies at once with 'exec format error' (FM 21).",
    remediation="Build for the compute environment's architecture (`docker buildx build --platform linux/amd64`, "
                "or a multi-arch image), or use instance types / a Fargate runtimePlatform that match the image.",
)
def image_platform(ctx: CheckContext, res: Resource) -> Finding:
    ref = image_ref(res)
    needed, conflicts = ce_architectures(ctx)
    if conflicts:
        return failed("instances cannot start: " + "; ".join(conflicts) + ": use an AMI of the instance types' "
                      "architecture (or instance types of the AMI's)")
    require_present(ctx, ref)
    m = manifest(ctx, ref)
    if m is None:
        raise NotApplicable(f"{ref} is not in the registry (see IMG002)")
    plats = [p for p in platforms(ctx, ref, m) if p.os in ("linux", "")]
    have = {p.architecture for p in plats}
    shown = ", ".join(sorted(str(p) for p in plats)) or "no linux platform"
    bad: list[str] = []
    for ce, rows in needed.items():
        for what, archs in rows:
            if not archs & have:
                bad.append(f"{ce}: {what} ({'/'.join(sorted(archs)) or '?'})")
    if bad:
        return failed(f"image {ref} is built for {shown}, which cannot run on {'; '.join(bad)}: the job would "
                      "fail with 'exec format error'")
    covered = "; ".join(f"{ce} ({', '.join(w for w, _ in rows)})" for ce, rows in needed.items())
    return passed(f"image {ref} ({shown}) runs on {covered}")


# -- IMG007 ---------------------------------------------------------------------------------------------
def image_size(ctx: CheckContext, ref: ImageRef) -> int:
    """Compressed size in bytes: ECR's imageSizeInBytes, or the manifest's config and layers (largest platform)."""
    if ref.is_ecr:
        size = ecr_image(ctx, ref).size
        if size:
            return size
    m = manifest(ctx, ref)
    if m is None:
        raise NotApplicable(f"{ref} is not in the registry (see IMG002)")
    if not m.is_index:
        return m.size
    sizes = [c.size for d, _ in m.entries if (c := manifest(ctx, ref, d)) is not None]
    if not sizes:
        raise NotEvaluable(f"none of the images of index {m.digest} could be read")
    return max(sizes)


def volumes(ctx: CheckContext) -> list[tuple[str, int, str]]:
    """(compute environment, Docker volume bytes, where that number came from) for each compute environment: on EC2
    the smallest volume that holds Docker's storage among what its instance types boot."""
    configured = ctx.settings.image_max_size_mib
    names = ctx.scope.compute_environments
    if not names:
        if not configured:
            raise NotApplicable("no compute environment and no image.max_size_mib to compare the image with")
        return [("image.max_size_mib", configured * MIB, "image.max_size_mib")]
    out: list[tuple[str, int, str]] = []
    for name in names:
        ce = _compute_environment(ctx, name)
        if ce.fargate:
            gib = DEFAULT_FARGATE_GIB
            if ctx.scope.job_definition:
                job = ctx.model.job()
                if job and job.ephemeral_storage_gib == -1:
                    raise NotEvaluable(f"job definition {job.name}: ephemeralStorage.sizeInGiB is not a number "
                                       "(see BAT003)")
                gib = (job.ephemeral_storage_gib if job else None) or DEFAULT_FARGATE_GIB
            out.append((name, gib * GIB, f"Fargate ephemeral storage {gib} GiB"))
            continue
        found = {docker_volume(b, configured) for _, b in _boots(ctx, ce)}
        size, source = min(found)
        out.append((name, size, source))
    return out


def docker_volume(b: Boot, configured_mib: int | None) -> tuple[int, str]:
    """(bytes, where from) of the volume that holds Docker's storage on what an instance type boots: the root volume
    on the ECS-optimized Amazon Linux 2 and 2023 AMIs (the launch template's mapping for the root device, else the
    AMI's root volume); /dev/xvdcz only on the first (Amazon Linux 1) ECS-optimized AMI."""
    if b.ami is not None:
        family = b.ami.family
    else:
        family = "AL2023" if "AL2023" in b.choice.image_type else "AL1" if "AL1" in b.choice.image_type else "AL2"
    device = "/dev/xvdcz" if family == "AL1" else (b.ami.root_device if b.ami and b.ami.root_device else "/dev/xvda")
    what = f"Docker's storage on {device}" + ("" if family else " (assumed: the root volume, as on the ECS AMIs)")
    ami = f"AMI {b.ami.id}" if b.ami else b.choice.source
    others = ""
    if b.template is not None:
        rest = [f"{d.device} {d.size_gib} GiB" for d in b.template.block_devices if d.device != device and d.size_gib]
        if rest:
            others = f"; not counted: {', '.join(rest)} (not where Docker keeps images on {family or 'this AMI'})"
        mapped = b.template.device(device)
        if mapped is not None and mapped.size_gib:
            return mapped.size_gib * GIB, (f"{what}, {mapped.size_gib} GiB from launch template {b.template.template} "
                                           f"version {b.template.version} ({ami}){others}")
    if b.ami is not None:
        root = next((d for d in b.ami.block_devices if d.device == device), None)
        if root is None or not root.size_gib:
            raise NotEvaluable(f"{ami} ({b.choice.source}): the size of {device}, which holds Docker's storage, is "
                               "not in its block device mappings")
        return root.size_gib * GIB, f"{what}, {root.size_gib} GiB in {ami} ({b.choice.source}){others}"
    if configured_mib:
        return configured_mib * MIB, f"image.max_size_mib ({b.choice.source}){others}"
    return (DEFAULT_EC2_VOLUME_GIB * GIB,
            f"{what}, {DEFAULT_EC2_VOLUME_GIB} GiB root volume of {b.choice.source}{others}")


@check(
    id="IMG007", slug="image-size", title="The image fits the Docker volume", severity="medium", resource="image",
    permissions=["ecr:DescribeImages", "batch:DescribeComputeEnvironments", "ec2:DescribeLaunchTemplateVersions",
                 "ec2:DescribeInstanceTypes", "ec2:DescribeImages"],
    rationale="A large ML image (CUDA, frameworks, weights) that does not fit the instance's Docker volume fails "
              "to pull with 'no space left on device' (FM 23).",
    remediation="Give the compute environment a launch template with a larger root volume (the device that holds "
                "Docker's storage: /dev/xvda on the ECS-optimized AL2/AL2023 AMIs; not /dev/xvdcz), or Fargate "
                "ephemeralStorage, "
                "or make the image smaller (multi-stage build, weights from S3 at run time).",
)
def image_fits(ctx: CheckContext, res: Resource) -> Finding:
    ref = image_ref(res)
    size = image_size(ctx, ref)
    need = int(size * PULL_FOOTPRINT)
    rows = volumes(ctx)
    too_small = [(n, v, src) for n, v, src in rows if need > v]
    head = f"image {ref} is {size / MIB:.0f} MiB compressed, about {need / MIB:.0f} MiB on disk while pulling " \
           f"(x{PULL_FOOTPRINT})"
    if too_small:
        return failed(head + "; too large for " + "; ".join(f"{n} ({v / MIB:.0f} MiB, {src})"
                                                            for n, v, src in too_small))
    return passed(head + "; fits " + "; ".join(f"{n} ({v / MIB:.0f} MiB, {src})" for n, v, src in rows))


# -- IMG008 ---------------------------------------------------------------------------------------------
@check(
    id="IMG008", slug="scan-findings", title="The image's latest scan has no serious findings", severity="low",
    resource="image", permissions=["ecr:DescribeImages", "ecr:DescribeImageScanFindings"],
    rationale="Known vulnerabilities in a training image run with the job role's access to your data.",
    remediation="Rebuild on a patched base image and push again; enable scan on push so every push is scanned.",
)
def scan_findings(ctx: CheckContext, res: Resource) -> Finding:
    ref = image_ref(res)
    ecr_only(ref)
    ecr_image(ctx, ref)
    threshold = ctx.settings.image_scan_fail_at.upper()
    scan = ctx.model.scan_findings(ref)
    if scan is None:
        return failed(f"{ref} has never been scanned: enable scan on push or start a scan")
    status = scan.status
    if status in ("IN_PROGRESS", "PENDING", "SCAN_ELIGIBILITY_EXPIRED_PENDING"):
        raise NotEvaluable(f"the scan of {ref} is {status}")
    if status not in ("COMPLETE", "ACTIVE"):
        return failed(f"the scan of {ref} is {status or 'unknown'}: {scan.description}")
    counts = dict(scan.severity_counts)
    at_or_above = SEVERITIES[SEVERITIES.index(threshold):]
    serious = {s: int(counts[s]) for s in at_or_above if counts.get(s)}
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no findings"
    if serious:
        return failed(f"{ref} has findings at or above {threshold}: " +
                      ", ".join(f"{v} {k}" for k, v in serious.items()) + f" (all: {summary})")
    return passed(f"{ref}: nothing at or above {threshold} ({summary})")


# -- IMG009 ---------------------------------------------------------------------------------------------
@check(
    id="IMG009", slug="image-pinned", title="The job runs a digest or an immutable tag", severity="low",
    resource="image", permissions=["ecr:DescribeRepositories", "ecr:DescribeImages"],
    rationale="A mutable tag such as latest can point at another build tomorrow: the job is not reproducible and "
              "a bad push changes every future run.",
    remediation="Use image@sha256:<digest> in the job definition, or make the repository's tags IMMUTABLE and "
                "push a new tag per build.",
)
def image_pinned(ctx: CheckContext, res: Resource) -> Finding:
    ref = image_ref(res)
    if ref.digest:
        return passed(f"{ref} is pinned by digest")
    pin = ""
    moving = not ref.explicit_tag or ref.tag == "latest"  # the name itself says it moves
    if not ref.is_ecr and not moving:
        # only ECR reports whether a tag can be moved: not a fact this check can state
        raise NotEvaluable(f"{ref}: whether tag {ref.tag} is immutable cannot be seen in a registry other than ECR; "
                           "pin the image by digest (image@sha256:...) to make it verifiable")
    if ref.is_ecr:
        repo = ctx.model.ecr_repositories(ref).get(ref.repository)
        if repo is None:
            raise NotApplicable(f"repository {ref.repository} does not exist (see IMG001)")
        if repo.tag_mutability is None and not moving:
            raise NotEvaluable(f"{ref}: DescribeRepositories did not report the tag mutability of {ref.repository}")
        mutability = repo.tag_mutability or "MUTABLE"
        exclusions = repo.mutability_exclusions
        if mutability == "IMMUTABLE" or (mutability == "IMMUTABLE_WITH_EXCLUSION" and not any(
                fnmatch.fnmatchcase(ref.tag or "", f) for f in exclusions)):
            if ref.tag == "latest":
                return failed(f"{ref} uses the tag latest; even in an immutable repository, name builds by version")
            return passed(f"{ref}: tag {ref.tag} is immutable in {ref.repository}")
        found = find_image(ctx.model.ecr_images(ref) or [], ref)
        if found:
            pin = f"; pin it as {ref.name}@{found.digest}"
    which = "no tag (so latest)" if not ref.explicit_tag else f"the mutable tag {ref.tag}"
    return failed(f"{ref} uses {which}, which can be moved to another build{pin}")
