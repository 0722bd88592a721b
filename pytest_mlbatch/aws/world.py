"""The model of one target built from the AWS APIs (model/world.py's World): API answers become typed facts here,
and nowhere else; reads go through the inventory (cached, so every check and the first wave share them)."""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_mlbatch.analysis.imageref import ImageRef
from pytest_mlbatch.analysis.jobreasons import JobFacts, job_facts
from pytest_mlbatch.analysis.policy import Decision, Request
from pytest_mlbatch.aws import batchinfo, images, jobs, network, principals, reads, roles, secrets
from pytest_mlbatch.aws.discovery import describe_subnets
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.target import known_regions
from pytest_mlbatch.config import JobSize
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.compute import (
    Ami,
    BlockDevice,
    ComputeEnvironment,
    Ec2Configuration,
    InstanceType,
    JobQueue,
    KeyPair,
    LaunchTemplateRef,
    LaunchTemplateVersion,
    TemplateOverride,
    TimeLimitAction,
)
from pytest_mlbatch.model.images import EcrImage, EcrRepository, RegistryLogin, RegistrySecretMissing, ScanFindings
from pytest_mlbatch.model.job import ContainerSpec, Job, LogConfiguration, RetryRule, Secret
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
from pytest_mlbatch.model.scope import Scope
from pytest_mlbatch.model.submitted import SUBMITTED_JOB, SUBMITTED_JOB_ID, Evidence
from pytest_mlbatch.oci import Manifest, Platform, RegistryClient


def compute_environment(doc: Mapping[str, Any]) -> ComputeEnvironment:
    """A DescribeComputeEnvironments entry as a model compute environment."""
    cr: Mapping[str, Any] = doc.get("computeResources") or {}
    lt = cr.get("launchTemplate") or {}
    template = _template_ref(lt)
    overrides = tuple(TemplateOverride(ref, tuple(str(t) for t in o.get("targetInstanceTypes") or []))
                      for o in lt.get("overrides") or [] if isinstance(o, Mapping) and (ref := _template_ref(o)))
    configs = tuple(Ec2Configuration(c.get("imageType"), c.get("imageIdOverride"))
                    for c in cr.get("ec2Configuration") or [] if isinstance(c, Mapping))
    profile = cr.get("instanceRole")
    max_vcpus = cr.get("maxvCpus")
    return ComputeEnvironment(
        name=str(doc.get("computeEnvironmentName", "")),
        arn=str(doc.get("computeEnvironmentArn", "")),
        managed=doc.get("type", "MANAGED") == "MANAGED",
        state=doc.get("state"),
        status=doc.get("status"),
        status_reason=doc.get("statusReason"),
        orchestration="EKS" if batchinfo.is_eks(dict(doc)) else str(doc.get("containerOrchestrationType") or "ECS"),
        provisioning=cr.get("type"),
        service_role=doc.get("serviceRole"),
        instance_profile=batchinfo.arn_name(str(profile)) if profile else None,
        instance_types=tuple(str(t) for t in cr.get("instanceTypes") or []),
        subnets=tuple(str(s) for s in cr.get("subnets") or []),
        security_groups=tuple(str(g) for g in cr.get("securityGroupIds") or []),
        key_pair=cr.get("ec2KeyPair"),
        launch_template=template,
        max_vcpus=int(max_vcpus) if max_vcpus is not None else None,
        ecs_cluster=doc.get("ecsClusterArn"),
        image_id=cr.get("imageId"),
        ec2_configuration=configs,
        template_overrides=overrides,
        instance_profile_ref=str(profile) if profile else None,
    )


def job_queue(doc: Mapping[str, Any]) -> JobQueue:
    """A DescribeJobQueues entry as a model job queue."""
    actions = tuple(TimeLimitAction(a.get("state"), a.get("action"),
                                    int(a["maxTimeSeconds"]) if a.get("maxTimeSeconds") is not None else None,
                                    a.get("reason"))
                    for a in doc.get("jobStateTimeLimitActions") or [] if isinstance(a, Mapping))
    return JobQueue(name=str(doc.get("jobQueueName", "")), arn=str(doc.get("jobQueueArn", "")),
                    state=doc.get("state"), status=doc.get("status"), status_reason=doc.get("statusReason"),
                    order=tuple(batchinfo.queue_order(dict(doc))), time_limit_actions=actions)


def _template_ref(lt: Mapping[str, Any]) -> LaunchTemplateRef | None:
    if lt.get("launchTemplateId") or lt.get("launchTemplateName"):
        return LaunchTemplateRef(lt.get("launchTemplateId"), lt.get("launchTemplateName"),
                                 str(lt.get("version") or "$Default"))
    return None


def _block_devices(mappings: Sequence[Mapping[str, Any]]) -> tuple[BlockDevice, ...]:
    out = []
    for m in mappings or []:
        ebs = m.get("Ebs")
        size = ebs.get("VolumeSize") if isinstance(ebs, Mapping) else None
        out.append(BlockDevice(str(m.get("DeviceName", "")), int(size) if size is not None else None,
                               isinstance(ebs, Mapping)))
    return tuple(out)


def user_data_text(raw: str | None) -> str | None:
    """A launch template's UserData (base64, possibly gzip'd) as text; NotEvaluable when it cannot be decoded."""
    if not raw:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (binascii.Error, ValueError, OSError, UnicodeDecodeError) as exc:
        raise NotEvaluable(f"the launch template's user data cannot be decoded ({exc})") from None


def launch_template_version(doc: Mapping[str, Any], ref: LaunchTemplateRef) -> LaunchTemplateVersion:
    """A DescribeLaunchTemplateVersions entry as a model launch template version."""
    data: Mapping[str, Any] = doc.get("LaunchTemplateData") or {}
    number = doc.get("VersionNumber")
    return LaunchTemplateVersion(
        template=str(ref.id or ref.name),
        version=int(number) if number is not None else None,
        image_id=data.get("ImageId"),
        block_devices=_block_devices(data.get("BlockDeviceMappings") or []),
        user_data=user_data_text(data.get("UserData")),
    )


def ami(doc: Mapping[str, Any]) -> Ami:
    """A DescribeImages entry as a model AMI."""
    return Ami(id=str(doc["ImageId"]), name=str(doc.get("Name") or ""), description=str(doc.get("Description") or ""),
               architecture=str(doc.get("Architecture") or ""), root_device=doc.get("RootDeviceName"),
               block_devices=_block_devices(doc.get("BlockDeviceMappings") or []))


def instance_type(doc: Mapping[str, Any]) -> InstanceType:
    """A DescribeInstanceTypes entry as a model instance type."""
    return InstanceType(
        name=str(doc["InstanceType"]),
        vcpus=int(doc.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_mib=int(doc.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        gpus=sum(int(g.get("Count", 0)) for g in doc.get("GpuInfo", {}).get("Gpus", []) or []),
        architectures=tuple(batchinfo.architectures(dict(doc))),
    )


def _container_specs(doc: Mapping[str, Any]) -> tuple[ContainerSpec, ...]:
    """containerProperties and each node range's container: the size keys each sets."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(doc.get("containerProperties"), Mapping):
        found.append(("containerProperties", doc["containerProperties"]))
    nodes = doc.get("nodeProperties")
    ranges = nodes.get("nodeRangeProperties") if isinstance(nodes, Mapping) else None
    for i, rng in enumerate(ranges if isinstance(ranges, list) else []):
        if isinstance(rng, Mapping) and isinstance(rng.get("container"), Mapping):
            found.append((f"nodeProperties.nodeRangeProperties[{i}].container", rng["container"]))
    out = []
    for where, cont in found:
        try:
            types: tuple[str, ...] | None = tuple(batchinfo.requirements(dict(cont)))
        except NotEvaluable:
            types = None
        out.append(ContainerSpec(where, tuple(k for k in ("vcpus", "memory") if cont.get(k) is not None), types))
    return tuple(out)


def _pod_image(doc: Mapping[str, Any]) -> str | None:
    """Batch on EKS: the image of the pod's first container."""
    eks = doc.get("eksProperties")
    pod = eks.get("podProperties") if isinstance(eks, Mapping) else None
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    first = containers[0] if isinstance(containers, list) and containers else None
    image = first.get("image") if isinstance(first, Mapping) else None
    return str(image) if image else None


def _num_nodes(doc: Mapping[str, Any]) -> int | None:
    nodes = doc.get("nodeProperties")
    if nodes is None:
        return 1
    if not isinstance(nodes, Mapping):
        return None
    try:
        return int(nodes.get("numNodes", 1) or 1)
    except (TypeError, ValueError):
        return None


def job(doc: Mapping[str, Any], source: str = "batch") -> Job:
    """A job definition (DescribeJobDefinitions entry, or RegisterJobDefinition input from a file) as a model job.
    A malformed part the model needs is noted on the job (fields_error, platforms_error, size_error: BAT003 reports
    the document itself); World.job() refuses such a job."""
    cont = batchinfo.container(dict(doc))
    log = cont.get("logConfiguration")
    retry = doc.get("retryStrategy") or {}
    secrets: tuple[Secret, ...] = ()
    log_config = None
    attempts = None
    rules: tuple[RetryRule, ...] = ()
    revision = None
    fields_error = None
    try:
        secrets = tuple(Secret(str(s["name"]), str(s["valueFrom"])) for s in cont.get("secrets") or [])
        log_config = (LogConfiguration(str(log["logDriver"]),
                                       tuple(sorted((str(k), str(v)) for k, v in (log.get("options") or {}).items())),
                                       tuple(Secret(str(s["name"]), str(s["valueFrom"]))
                                             for s in log.get("secretOptions") or []))
                      if isinstance(log, Mapping) and log.get("logDriver") else None)
        attempts = int(retry["attempts"]) if retry.get("attempts") is not None else None
        rules = tuple(RetryRule(str(r["action"]).upper(), r.get("onStatusReason"), r.get("onReason"),
                                r.get("onExitCode")) for r in retry.get("evaluateOnExit") or [])
        revision = int(doc["revision"]) if doc.get("revision") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        fields_error = (f"job definition {doc.get('jobDefinitionName', '?')}: a field is malformed ({exc}) "
                        "(see BAT003)")
    try:
        platforms, platforms_error = tuple(batchinfo.platform_capabilities(dict(doc))), None
    except NotEvaluable as exc:
        platforms, platforms_error = (), str(exc)
    try:
        size, size_error = batchinfo.job_size(dict(doc)), None
    except NotEvaluable as exc:
        size, size_error = JobSize(), str(exc)
    credentials = cont.get("repositoryCredentials") or {}
    props = doc.get("containerProperties")
    props = props if isinstance(props, Mapping) else {}
    platform = props.get("runtimePlatform")
    platform = platform if isinstance(platform, Mapping) else {}
    storage = props.get("ephemeralStorage")
    size_gib = storage.get("sizeInGiB") if isinstance(storage, Mapping) else None
    try:
        ephemeral = int(size_gib) if size_gib else None
    except (TypeError, ValueError):
        ephemeral = -1  # malformed (BAT003 reports the document): IMG007 cannot size the volume
    command = cont.get("command") or []
    linux = cont.get("linuxParameters") or {}
    shm = linux.get("sharedMemorySize") if isinstance(linux, Mapping) else None
    shm_ok = shm is None or isinstance(shm, int)
    return Job(
        name=str(doc.get("jobDefinitionName", "")),
        revision=revision,
        source=source,
        platforms=platforms,
        image=str(cont["image"]) if cont.get("image") else None,
        execution_role=cont.get("executionRoleArn"),
        job_role=cont.get("jobRoleArn"),
        secrets=secrets,
        repository_credentials=credentials.get("credentialsParameter") if isinstance(credentials, Mapping) else None,
        log=log_config,
        size=size,
        multi_node=doc.get("type") == "multinode" or isinstance(doc.get("nodeProperties"), Mapping),
        retry_attempts=attempts,
        retry_rules=rules,
        arn=str(doc["jobDefinitionArn"]) if doc.get("jobDefinitionArn") else None,
        eks=bool(doc.get("eksProperties")),
        ecs_properties=bool(doc.get("ecsProperties")),
        cpu_architecture=str(platform["cpuArchitecture"]) if platform.get("cpuArchitecture") else None,
        ephemeral_storage_gib=ephemeral,
        status=str(doc.get("status", "ACTIVE")),
        containers=_container_specs(doc),
        pod_image=_pod_image(doc),
        command=tuple(map(str, command if isinstance(command, list) else [command])),
        shared_memory_mib=shm if shm_ok else None,
        shared_memory_malformed=None if shm_ok else repr(shm),
        num_nodes=_num_nodes(doc),
        fields_error=fields_error,
        platforms_error=platforms_error,
        size_error=size_error,
        document=doc,
    )


class AwsWorld:
    """World for one target, read through its inventory with the scope discovery completed."""

    def __init__(self, inventory: Inventory | Callable[[], Inventory], scope: Scope | Callable[[], Scope],
                 region: str | None, rootdir: Path) -> None:
        # Either the values or how to get them: a check's context passes its target's, so a check that needs
        # neither (ENV001 without credentials, ENV002) gets its answer without a session or discovery.
        self._inventory = inventory
        self._scope = scope
        self._region = region
        self.rootdir = rootdir

    @property
    def inventory(self) -> Inventory:
        source = self._inventory
        return source if isinstance(source, Inventory) else source()

    @property
    def scope(self) -> Scope:
        source = self._scope
        return source if isinstance(source, Scope) else source()

    @property
    def region(self) -> str | None:
        return self._region

    def path(self, value: str) -> Path:  # batchinfo.Where
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.rootdir / p

    def job(self) -> Job | None:
        found, _ = self.current_job_definition()
        if found is not None and found.problem():
            raise NotEvaluable(str(found.problem()))
        return found

    def job_queue(self) -> JobQueue | None:
        found = batchinfo.job_queue(self)
        return job_queue(found) if found is not None else None

    def compute_environments(self) -> Sequence[ComputeEnvironment]:
        return [compute_environment(ce) for _, ce in batchinfo.scope_compute_environments(self) if ce is not None]

    def instance_types(self, names: Sequence[str]) -> Sequence[InstanceType]:
        return [instance_type(t) for t in batchinfo.instance_types(self, list(names))]

    def key_pairs(self) -> Mapping[str, KeyPair]:
        names = [self.scope.key_name] if self.scope.key_name else []
        return {name: KeyPair(name, kp.get("KeyPairId"), str(kp.get("KeyType", "rsa")),
                              str(kp.get("KeyFingerprint", "")))
                for name, kp in reads.key_pairs(self.inventory, names).items()}


    def names(self, kind: str) -> Sequence[str]:
        if kind in ("compute_environment", "job_queue", "job_definition"):
            return self._batch_names(kind)
        listing = {"key_pair": reads.all_key_pair_names, "role": reads.all_role_names,
                   "instance_profile": reads.all_instance_profile_names}[kind]
        try:
            return listing(self.inventory)
        except AwsError as exc:
            raise NotEvaluable(str(exc)) from None

    def network(self, *, vpcs: bool = False, groups: bool = False, paths: bool = False, acls: bool = False,
                dns: bool = False, dhcp: bool = False) -> Network:
        return network.load(self.inventory, self.scope, self._region, vpcs=vpcs, groups=groups, paths=paths,
                            acls=acls, dns=dns, dhcp=dhcp)

    def launch_settings(self, ce: ComputeEnvironment) -> LaunchSettings:
        doc = batchinfo.compute_environment(self, ce.name) or batchinfo.compute_environment(self, ce.arn) or {}
        return network.launch_settings(self.inventory, ce, doc)

    def job_assign_public_ip(self) -> str | None:
        return network.job_assign_public_ip(self)

    def vpc_subnets(self, vpc_id: str) -> Sequence[Subnet]:
        return [network.subnet(s) for s in reads.vpc_subnets(self.inventory, vpc_id)]

    def launch_template_version(self, ref: LaunchTemplateRef) -> LaunchTemplateVersion | None:
        lt = {"launchTemplateId": ref.id, "launchTemplateName": ref.name, "version": ref.version}
        try:
            found = reads.launch_template_versions(self.inventory, {k: v for k, v in lt.items() if v})
        except AwsError as exc:
            if "NotFound" in exc.code or exc.code in ("InvalidLaunchTemplateId.VersionNotFound",
                                                       "InvalidLaunchTemplateName.MalformedException"):
                return None
            raise
        return launch_template_version(found[0], ref) if found else None

    def images(self, ids: Sequence[str]) -> Mapping[str, Ami]:
        return {doc["ImageId"]: ami(doc) for doc in batchinfo.describe_images(self.inventory, list(ids))}

    def registered_memory(self, ce: ComputeEnvironment) -> Mapping[str, int]:
        if not ce.ecs_cluster:
            return {}
        out: dict[str, int] = {}
        for inst in batchinfo.container_instances(self.inventory, ce.ecs_cluster):
            kind = next((str(a.get("value")) for a in inst.get("attributes") or []
                         if a.get("name") == "ecs.instance-type" and a.get("value")), None)
            memory = next((int(r.get("integerValue") or 0) for r in inst.get("registeredResources") or []
                           if r.get("name") == "MEMORY"), None)
            if kind and memory:
                out[kind] = min(memory, out.get(kind, memory))
        return out

    def subnet_zones(self, subnets: Sequence[str]) -> Mapping[str, str]:
        return {str(s["SubnetId"]): str(s["AvailabilityZone"]) for s in describe_subnets(self.inventory, list(subnets))
                if s.get("AvailabilityZone")}

    def offered_types(self, zones: Sequence[str]) -> Mapping[str, frozenset[str]]:
        out: dict[str, set[str]] = {z: set() for z in zones}
        for o in batchinfo.instance_type_offerings(self.inventory, list(zones)):
            out.setdefault(str(o.get("Location")), set()).add(str(o.get("InstanceType")))
        return {z: frozenset(t) for z, t in out.items()}

    def service_quota(self, service: str, code: str) -> float:
        try:
            found = self.inventory.call("service-quotas", "get_service_quota", ServiceCode=service, QuotaCode=code)
        except AwsError as exc:
            if exc.code != "NoSuchResourceException":
                raise
            try:
                found = self.inventory.call("service-quotas", "get_aws_default_service_quota", ServiceCode=service,
                                            QuotaCode=code)
            except AwsError as again:
                if again.kind in ("denied", "throttled", "credentials"):
                    raise
                raise NotEvaluable(f"Service Quotas has no {service} quota {code}: GetServiceQuota answered "
                                   f"NoSuchResourceException and GetAWSDefaultServiceQuota failed ({again.code})") \
                    from None
        return float(found["Quota"]["Value"])

    # -- principals and what decides their rights (model/principals.py; reads in aws/principals.py, secrets.py) --
    @property
    def partition(self) -> str:
        try:
            return str(self.inventory.call("sts", "get_caller_identity")["Arn"]).split(":")[1] or "aws"
        except (AwsError, KeyError, IndexError):
            return "aws"

    def _account(self) -> str | None:
        try:
            return str(self.inventory.call("sts", "get_caller_identity")["Account"])
        except (AwsError, KeyError):
            return None

    def identity(self) -> Identity:
        try:
            found = self.inventory.call("sts", "get_caller_identity")
        except AwsError as exc:
            if exc.kind in ("credentials", "assume-role"):
                return Identity(None, None, exc.detail)
            raise
        account, arn = found.get("Account"), found.get("Arn")
        return Identity(str(account) if account is not None else None, str(arn) if arn is not None else None)

    def known_region(self, region: str) -> bool:
        return region in known_regions()

    def caller(self) -> Caller:
        return principals.caller(self.inventory, lambda name: roles.get_role(self.inventory, name))

    def role(self, name: str) -> Role | None:
        found = roles.get_role(self.inventory, name)
        return principals.role_fact(found) if found is not None else None

    def service_linked_role(self, service: str) -> Role | None:
        found = roles.service_linked_role(self.inventory, service)
        return principals.role_fact(found) if found is not None else None

    def instance_profile(self, name: str) -> InstanceProfile | None:
        found = roles.get_instance_profile(self.inventory, name)
        return principals.profile_fact(found) if found is not None else None

    def role_policy_names(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return principals.role_policy_names(self.inventory, name)

    def managed_policy(self, name: str) -> ManagedPolicy:
        return principals.managed_policy_fact(self.inventory, f"arn:{self.partition}:iam::aws:policy/{name}")

    def permissions(self, principal: Principal, requests: Sequence[Request]) -> Sequence[Decision]:
        return principals.decide(self.inventory, principal, requests)

    def job_queue_arn(self) -> str | None:
        queue = batchinfo.job_queue(self)
        return str(queue["jobQueueArn"]) if queue else None

    def repository_policy(self, account: str, region: str, repository: str) -> Mapping[str, object] | None:
        return principals.repository_policy(self.inventory, account, region, repository, self._account())

    def secret_sources(self, values: Sequence[str]) -> Sequence[SecretSource]:
        return secrets.secret_sources(self.inventory, values, self.partition, self.region, self._account())

    def kms_key(self, key: str, region: str | None = None) -> KmsKey | None:
        return secrets.kms_key(self.inventory, key, region or self.region)

    def log_group(self, name: str) -> LogGroup | None:
        return secrets.log_group(self.inventory, name)

    def bucket_region(self, bucket: str) -> str | None:
        return reads.bucket_region(self.inventory, bucket)

    # -- a submitted job (model/submitted.py; read in aws/jobs.py when the target is scoped to it) ----------------
    def submitted_job(self) -> tuple[JobFacts | None, str]:
        scope = self.scope
        doc = scope.discovered.get(SUBMITTED_JOB)
        if isinstance(doc, dict):
            return job_facts(doc), ""
        problems = [p for p in scope.problems if p[0] == SUBMITTED_JOB]
        if any(p[2] == "error" for p in problems) or not problems:
            raise NotEvaluable("; ".join(p[1] for p in problems)
                               or f"job {scope.discovered.get(SUBMITTED_JOB_ID)} was not read")
        return None, "; ".join(p[1] for p in problems)

    def runnable_evidence(self, job: JobFacts) -> Evidence:
        found = self.scope.discovered.get("compute_environments")  # the queue's, in its order (discovery)
        return jobs.runnable_evidence(self.inventory, list(found) if isinstance(found, list) else [], job)

    # -- the job's image and its registry (model/images.py; reads in aws/reads.py and aws/images.py) ------------
    def ecr_repositories(self, ref: ImageRef) -> Mapping[str, EcrRepository]:
        return {name: EcrRepository(name, str(r["imageTagMutability"]) if "imageTagMutability" in r else None,
                                    tuple(str(f.get("filter", ""))
                                          for f in r.get("imageTagMutabilityExclusionFilters") or []))
                for name, r in reads.ecr_repositories(self.inventory, ref).items()}

    def ecr_images(self, ref: ImageRef) -> Sequence[EcrImage] | None:
        details = reads.ecr_images(self.inventory, ref)
        if details is None:
            return None
        return [EcrImage(str(d["imageDigest"]) if d.get("imageDigest") else None,
                         tuple(str(t) for t in d.get("imageTags") or []),
                         int(d["imageSizeInBytes"]) if d.get("imageSizeInBytes") else None) for d in details]

    def scan_findings(self, ref: ImageRef) -> ScanFindings | None:
        try:
            scan = self.inventory.call("ecr", "describe_image_scan_findings", region=ref.region,
                                       registryId=ref.account, repositoryName=ref.repository, imageId=ref.image_id())
        except AwsError as exc:
            if exc.code == "ScanNotFoundException":
                return None
            raise
        status = scan.get("imageScanStatus") or {}
        counts = (scan.get("imageScanFindings") or {}).get("findingSeverityCounts") or {}
        return ScanFindings(str(status.get("status", "")), str(status.get("description", "")),
                            tuple((str(k), int(v)) for k, v in counts.items()))

    def registry_login(self, ref: ImageRef, endpoint: str | None) -> RegistryLogin:
        try:
            client = images.registry(self, endpoint, ref)
        except AwsError as exc:
            if exc.operation == "secretsmanager:GetSecretValue" and exc.code == "ResourceNotFoundException":
                raise RegistrySecretMissing(images.repository_credentials_secret(self)) from None
            raise
        return RegistryLogin(client.base_url, client.registry, client.credentials)

    def registry_endpoint(self, ref: ImageRef, endpoint: str | None) -> str:
        return images.endpoint(endpoint, ref)

    def registry_manifest(self, ref: ImageRef, endpoint: str | None, reference: str | None = None, *,
                          fresh: bool = False) -> Manifest | None:
        if fresh:
            base = images.endpoint(endpoint, ref)
            creds = images.ecr_credentials(self.inventory, ref) if ref.is_ecr else \
                self.registry_login(ref, endpoint).credentials
            return RegistryClient(base, creds).manifest(ref.repository, reference or ref.reference)
        return images.manifest(self, endpoint, ref, reference)

    def image_platforms(self, ref: ImageRef, endpoint: str | None, manifest: Manifest) -> Sequence[Platform]:
        return images.platforms(self, endpoint, ref, manifest)

    # -- Batch resources as the BAT checks judge them (reads in aws/batchinfo.py) --------------------------------
    def job_definition(self, ref: str) -> tuple[Job | None, str]:
        doc, why = batchinfo.describe_job_definition(self.inventory, ref)
        return (job(doc) if doc is not None else None), why

    def job_definition_file(self, value: str) -> Job:
        return job(batchinfo.load_job_definition_file(self, value), str(self.path(value)))

    def current_job_definition(self) -> tuple[Job | None, str]:
        scope = self.scope
        if scope.job_definition:
            return self.job_definition(scope.job_definition)
        if scope.job_definition_file:
            return self.job_definition_file(scope.job_definition_file), ""
        return None, "no job definition"

    def target_compute_environments(self) -> Mapping[str, ComputeEnvironment]:
        built: dict[str, ComputeEnvironment] = {}
        out: dict[str, ComputeEnvironment] = {}
        for key, doc in batchinfo.compute_environments(self).items():
            arn = str(doc.get("computeEnvironmentArn", ""))
            out[key] = built.setdefault(arn, compute_environment(doc))
        return out

    def eks_reason(self) -> str | None:
        return batchinfo.eks_reason(self)

    def _batch_names(self, kind: str) -> Sequence[str]:
        method, key, field, params = {
            "compute_environment": ("describe_compute_environments", "computeEnvironments",
                                    "computeEnvironmentName", {}),
            "job_queue": ("describe_job_queues", "jobQueues", "jobQueueName", {}),
            "job_definition": ("describe_job_definitions", "jobDefinitions", "jobDefinitionName",
                               {"status": "ACTIVE"}),
        }[kind]
        try:
            items = self.inventory.paginate("batch", method, key, **params)
        except AwsError as exc:
            raise NotEvaluable(str(exc)) from None
        return [str(i.get(field, "")) for i in items if isinstance(i, dict)]
