"""What a submitted job's state and reasons mean: AWS Batch's documented statusReason codes and the container
reasons of ECS, mapped to their causes, the checks that show them, and what to do (pure: no AWS calls)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The kinds of cause, for CI: "infrastructure" and "capacity" are the environment's fault, "application" the job's
# own (its code, its exit code, its memory use), "unknown" when nothing matched.
INFRASTRUCTURE, CAPACITY, APPLICATION, UNKNOWN = "infrastructure", "capacity", "application", "unknown"


@dataclass(frozen=True)
class Cause:
    """One explanation of a job's state: what it means, which checks show it, what to do."""

    code: str
    kind: str
    meaning: str
    checks: tuple[str, ...]
    action: str
    matched: str = field(default="", compare=False)

    def line(self) -> str:
        shown = f" (checks: {', '.join(self.checks)})" if self.checks else " (no check models this)"
        return f"{self.meaning}{shown} → {self.action}"


def _c(code: str, kind: str, meaning: str, checks: tuple[str, ...], action: str) -> Cause:
    return Cause(code, kind, meaning, checks, action)


_NET = ("NET003", "SG004", "NET005", "NET001", "NET006")
_BLOCKED: dict[str, Cause] = {
    # docs.aws.amazon.com/batch/latest/userguide/job_stuck_in_runnable*.html and API_JobDetail statusReason
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": _c(
        "insufficient-capacity", CAPACITY,
        "EC2 cannot supply the requested instance types in the subnets' Availability Zones right now",
        ("NET004", "BAT009", "BAT008"),
        "allow more instance types and subnets in more AZs (or On-Demand instead of Spot), and give the queue "
        "jobStateTimeLimitActions so a job waiting for capacity is cancelled instead of blocking the queue"),
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": _c(
        "max-vcpus-too-small", INFRASTRUCTURE,
        "every compute environment's maxvCpus is smaller than the job's vCPUs (times its nodes)",
        ("BAT004",), "raise maxvCpus of a compute environment of the queue, or ask for fewer vCPUs"),
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": _c(
        "no-instance-fits", INFRASTRUCTURE,
        "no allowed instance type can hold the job's vCPUs, memory or GPUs (ECS registers less memory than "
        "the type's advertised size)",
        ("BAT004", "BAT005"),
        "ask for less memory than the type registers (leave headroom), or allow larger or GPU instance types"),
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS": _c(
        "service-role-permissions", INFRASTRUCTURE,
        "the compute environment's service role lacks actions Batch needs to scale",
        ("IAM001",), "use the Batch service-linked role, or grant the actions of AWSBatchServiceRole"),
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED": _c(
        "instance-configuration-unsupported", INFRASTRUCTURE,
        "the instance types are not offered in the subnets' Availability Zones, or the launch template does not "
        "fit them", ("BAT010", "BAT004", "NET002", "BAT006"),
        "choose instance types offered in the subnets' AZs (DescribeInstanceTypeOfferings), or fix the launch "
        "template"),
    "ACTION_REQUIRED": _c(
        "invalid-compute-environments", INFRASTRUCTURE,
        "the compute environments of the queue are INVALID (or disabled), so nothing can be placed",
        ("BAT001", "BAT002", "IAM001", "IAM003"),
        "read each compute environment's statusReason (BAT001) and fix its role, profile or network; a job "
        "queue time limit cannot resolve this one"),
}

# (pattern on the container reason or statusReason, cause); the first match of each text wins.
_RULES: list[tuple[re.Pattern[str], Cause]] = [
    # "... is not authorized to perform: secretsmanager:GetSecretValue on resource: ... because no VPC endpoint
    # policy allows the secretsmanager:GetSecretValue action" (or "with an explicit deny in a VPC endpoint policy")
    (re.compile(r"VPC endpoint policy", re.I),
     _c("endpoint-policy-denied", INFRASTRUCTURE, "a VPC endpoint's policy on the job's path (S3 gateway, ECR, "
        "Secrets Manager, SSM or logs) does not allow the request", ("NET007",),
        "allow the request in the policy of the endpoint the message names (NET007 evaluates each one)")),
    # the CE's statusReason when it is invalidated: "CLIENT_ERROR - Your compute environment has been INVALIDATED
    # and scaled down because none of the instances joined the underlying ECS Cluster ..."
    (re.compile(r"none of the instances joined the underlying ECS Cluster", re.I),
     _c("instances-never-joined", INFRASTRUCTURE, "the instances started but never registered with the compute "
        "environment's ECS cluster (instance role, network path or DNS to ECS, or the AMI / launch template user "
        "data)", ("IAM002", "IAM003", "NET003", "NET006", "SG004", "BAT012"),
        "give the instance role AmazonEC2ContainerServiceforEC2Role, a path to ECS, DNS through the VPC "
        "resolver, and user data in MIME multi-part form that leaves ECS_CLUSTER to Batch")),
    (re.compile(r"CannotPullContainerError.*(not found|manifest unknown|does not exist|404|name unknown)", re.I | re.S),
     _c("image-not-found", INFRASTRUCTURE, "the image (repository, tag or digest) does not exist where the job "
        "pulls it", ("IMG001", "IMG002"),
        "push the tag (IMG002 --fix can) or correct the image URI, its account and region")),
    (re.compile(r"CannotPullContainerError.*(access ?denied|403|denied|unauthori[sz]ed|no basic auth|"
                r"not authorized|pull access)", re.I | re.S),
     _c("image-pull-denied", INFRASTRUCTURE, "the principal that pulls (EC2: instance role; Fargate: execution "
        "role) may not read the repository, or an S3 gateway endpoint's policy does not allow ECR's layer bucket "
        "(403 from S3)", ("IMG006", "IMG004", "IAM002", "IAM004", "NET007"),
        "grant ecr:GetAuthorizationToken, BatchGetImage, GetDownloadUrlForLayer to that role, let a "
        "cross-account repository policy name it, and let the S3 endpoint's policy allow "
        "prod-<region>-starport-layer-bucket")),
    (re.compile(r"CannotPullContainerError.*no space left on device", re.I | re.S),
     _c("image-too-large", INFRASTRUCTURE, "the image does not fit the instance's Docker volume", ("IMG007",),
        "give the compute environment a launch template with a larger root volume, or a smaller image")),
    (re.compile(r"CannotPullContainerError.*(timeout|timed out|context canceled|deadline exceeded|"
                r"request canceled|connection|dial tcp|no such host)", re.I | re.S),
     _c("image-unreachable", INFRASTRUCTURE, "the instance or task has no network path to ECR and S3 (route, "
        "NAT, endpoints, security group or network ACL)", _NET,
        "give the subnets a path out (public IP + internet gateway, a NAT gateway, or the ECR/S3/ECS endpoints) "
        "and allow HTTPS egress")),
    (re.compile(r"CannotPullContainerError", re.I),
     _c("image-pull-failed", INFRASTRUCTURE, "the image could not be pulled", ("IMG002", "IMG004", "NET003"),
        "check that the tag exists, the registry answers with credentials, and the subnets reach it")),
    (re.compile(r"ResourceInitializationError.*(retrieve secret|secrets ?manager|\bssm\b|\basm\b|\bkms\b|"
                r"GetSecretValue|GetParameters)", re.I | re.S),
     _c("secrets-unavailable", INFRASTRUCTURE, "the execution role could not read the job's secrets, or the "
        "subnet cannot reach Secrets Manager / SSM", ("IAM007", "IAM004", "NET003", "NET001", "NET006", "NET007"),
        "let the execution role read each secret (and its KMS key), and give the subnet a path to the service")),
    (re.compile(r"ResourceInitializationError.*(log group|logs|awslogs)", re.I | re.S),
     _c("log-group-unavailable", INFRASTRUCTURE, "the log configuration cannot be set up (log group missing, "
        "or the role awslogs writes with may not write to it)", ("IAM008", "IAM004"),
        "create the log group (or set awslogs-create-group) and let the role IAM008 names write logs")),
    (re.compile(r"ResourceInitializationError", re.I),
     _c("task-initialization-failed", INFRASTRUCTURE, "the task could not be initialised: registry "
        "authentication or secrets could not be fetched (execution role, DNS, or no route to the endpoints)",
        ("IAM004", "IAM007", "NET003", "NET001", "NET006", "IMG006"),
        "check the execution role's pull and logs permissions, VPC DNS and the path to ECR, S3 and the "
        "secret stores")),
    (re.compile(r"exec format error", re.I),
     _c("wrong-architecture", INFRASTRUCTURE, "the image was built for another CPU architecture than the "
        "instance's (e.g. arm64 on x86_64)", ("IMG005",),
        "build the image for the compute environment's architecture (docker buildx --platform) or use "
        "matching instance types")),
    (re.compile(r"OutOfMemory|killed due to memory|memory usage", re.I),
     _c("out-of-memory", APPLICATION, "the container used more memory than the job reserved and was killed",
        ("BAT004",), "raise the job's MEMORY requirement (staying under what the instance type registers), "
        "or make the job use less")),
    (re.compile(r"Host EC2 \(instance [^)]*\) terminated|spot.*(interrupt|reclaim)|instance.*terminated", re.I),
     _c("host-terminated", INFRASTRUCTURE, "the instance running the job went away (a Spot reclaim, a scale-in "
        "or a host failure)", ("BAT011", "BAT001"),
        "give the job definition a retryStrategy (attempts >= 2, evaluateOnExit onStatusReason 'Host EC2*' "
        "RETRY), or use On-Demand capacity for jobs that cannot restart")),
    (re.compile(r"attempt duration exceeded|timeout", re.I),
     _c("job-timeout", APPLICATION, "the job ran longer than its timeout (attemptDurationSeconds)", (),
        "raise the job definition's timeout, or make the job faster")),
    (re.compile(r"executable file not found|no such file or directory|CannotStartContainerError", re.I),
     _c("cannot-start", APPLICATION, "the container could not start its command (not in the image, or the "
        "entrypoint is wrong)", (), "check the job's command and the image's entrypoint (docker run it locally)")),
    (re.compile(r"DockerTimeoutError|CannotCreateContainerError|CannotInspectContainerError|Task failed to start",
                re.I),
     _c("container-runtime", INFRASTRUCTURE, "the instance's container runtime failed to create or start the "
        "container (often a full disk or a slow pull of a large image)", ("IMG007", "IMG004"),
        "retry on a fresh instance (retryStrategy), and check the image size against the volume")),
    (re.compile(r"Dependent Job failed", re.I),
     _c("dependency-failed", APPLICATION, "a job this one depends on failed, so it never started", (),
        "diagnose the failed dependency (pass its id to --mlbatch-job)")),
]

_TERMINATED_BY_LIMIT = re.compile(r"(?:Canceled|Cancelled|Terminated) by JobStateTimeLimit action due to reason: "
                                  r"([A-Z_]+(?::[A-Z0-9_]+)?)")


def match_reason(text: str) -> Cause | None:
    """The cause one reason text names, or None."""
    if not text:
        return None
    limit = _TERMINATED_BY_LIMIT.search(text)
    if limit:
        inner = match_reason(limit.group(1))
        if inner is not None:
            return Cause(inner.code, inner.kind, f"cancelled by the queue's time limit after waiting: "
                         f"{inner.meaning}", inner.checks, inner.action, text)
    for code, cause in _BLOCKED.items():
        if text.startswith(code) or (code == "ACTION_REQUIRED" and "ACTION_REQUIRED" in text):
            return Cause(cause.code, cause.kind, cause.meaning, cause.checks, cause.action, text)
    if text.startswith("MISCONFIGURATION:") or text.startswith("CAPACITY:"):
        return Cause("blocked-other", INFRASTRUCTURE, "the queue is blocked for a reason this tool does not know "
                     f"({text.split(' ', 1)[0]})", ("BAT001", "BAT002", "BAT004"),
                     "read AWS Batch's 'jobs stuck in RUNNABLE' page for this code", text)
    for pattern, cause in _RULES:
        if pattern.search(text):
            return Cause(cause.code, cause.kind, cause.meaning, cause.checks, cause.action, text)
    return None


@dataclass
class JobFacts:
    """What DescribeJobs says about one job, flattened: state, reasons, exit code, log stream, size, where."""

    job_id: str
    name: str = ""
    status: str = "UNKNOWN"
    status_reason: str = ""
    container_reasons: list[str] = field(default_factory=list)
    exit_code: int | None = None
    log_stream: str | None = None
    attempts: int = 0
    queue: str | None = None
    job_definition: str | None = None
    created_at: float | None = None  # seconds since the epoch
    started_at: float | None = None
    stopped_at: float | None = None
    children: dict[str, int] = field(default_factory=dict)  # array parent: statusSummary
    nodes: int | None = None  # multi-node parallel: numNodes
    vcpus: float | None = None
    memory: int | None = None
    gpus: int | None = None


def _ms(value: Any) -> float | None:
    try:
        return float(value) / 1000.0 if value else None
    except (TypeError, ValueError):
        return None


def _size(container: dict[str, Any], facts: JobFacts) -> None:
    reqs = {str(r.get("type")): str(r.get("value")) for r in container.get("resourceRequirements") or []
            if isinstance(r, dict)}
    try:
        if "VCPU" in reqs:
            facts.vcpus = float(reqs["VCPU"])
        elif container.get("vcpus") is not None:
            facts.vcpus = float(container["vcpus"])
        if "MEMORY" in reqs:
            facts.memory = int(float(reqs["MEMORY"]))
        elif container.get("memory") is not None:
            facts.memory = int(container["memory"])
        if "GPU" in reqs:
            facts.gpus = int(float(reqs["GPU"]))
    except (TypeError, ValueError):
        pass


def job_facts(job: dict[str, Any]) -> JobFacts:
    """Flatten one DescribeJobs entry (a job, an array child `id:N`, or a multi-node node `id#N`)."""
    facts = JobFacts(str(job.get("jobId", "?")), name=str(job.get("jobName", "")),
                     status=str(job.get("status", "UNKNOWN")), status_reason=str(job.get("statusReason") or ""),
                     queue=job.get("jobQueue"), job_definition=job.get("jobDefinition"),
                     created_at=_ms(job.get("createdAt")), started_at=_ms(job.get("startedAt")),
                     stopped_at=_ms(job.get("stoppedAt")))
    container = job.get("container") if isinstance(job.get("container"), dict) else {}
    assert isinstance(container, dict)
    if container.get("reason"):
        facts.container_reasons.append(str(container["reason"]))
    if container.get("exitCode") is not None:
        facts.exit_code = int(container["exitCode"])
    facts.log_stream = container.get("logStreamName") or None
    attempts = [a for a in job.get("attempts") or [] if isinstance(a, dict)]
    facts.attempts = len(attempts)
    for attempt in attempts:
        for text in (attempt.get("statusReason"), (attempt.get("container") or {}).get("reason")):
            if text and str(text) not in facts.container_reasons:
                facts.container_reasons.append(str(text))
        if facts.exit_code is None and (attempt.get("container") or {}).get("exitCode") is not None:
            facts.exit_code = int(attempt["container"]["exitCode"])
        facts.log_stream = facts.log_stream or (attempt.get("container") or {}).get("logStreamName") or None
    summary = (job.get("arrayProperties") or {}).get("statusSummary")
    if isinstance(summary, dict):
        facts.children = {str(k): int(v) for k, v in summary.items() if v}
    nodes = job.get("nodeProperties")
    if isinstance(nodes, dict) and nodes.get("numNodes"):
        facts.nodes = int(nodes["numNodes"])
    _size(container, facts)
    return facts


def causes(facts: JobFacts) -> list[Cause]:
    """Every cause the job's reasons name, in the order met (statusReason first), each once."""
    found: list[Cause] = []
    for text in [facts.status_reason, *facts.container_reasons]:
        cause = match_reason(text)
        if cause is not None and cause.code not in {c.code for c in found}:
            found.append(cause)
    if not found and facts.status == "FAILED" and facts.exit_code not in (None, 0):
        if facts.exit_code == 137:
            found.append(Cause("killed", APPLICATION, "the container was killed (exit code 137: SIGKILL, most "
                               "often the kernel's out-of-memory killer)", ("BAT004",),
                               "raise the job's MEMORY requirement or make the job use less"))
        else:
            found.append(Cause("exit-code", APPLICATION, f"the job's own command exited with code "
                               f"{facts.exit_code}", (), "read the job's log stream"
                               + (f" ({facts.log_stream})" if facts.log_stream else "")))
    return found


def verdict(found: list[Cause]) -> str:
    """infrastructure, capacity, application or unknown: the first cause's kind (the environment's first)."""
    kinds = [c.kind for c in found]
    for kind in (INFRASTRUCTURE, CAPACITY, APPLICATION):
        if kind in kinds:
            return kind
    return UNKNOWN


# Scaling activity messages (Auto Scaling DescribeScalingActivities, StatusMessage of failed activities).
_ACTIVITY: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    (re.compile(r"vCPU capacity than your current vCPU limit|VcpuLimitExceeded|InstanceLimitExceeded", re.I),
     "the EC2 vCPU quota is too low for the instances Batch asks for", ("BAT009",)),
    (re.compile(r"InsufficientInstanceCapacity|insufficient capacity", re.I),
     "EC2 had no capacity for the requested type in that Availability Zone", ("NET004",)),
    (re.compile(r"IamInstanceProfile|instance profile", re.I),
     "the instance profile is invalid (a role given where a profile belongs, or missing)", ("IAM003",)),
    (re.compile(r"InvalidKeyPair", re.I), "the key pair does not exist in this region", ("KEY001",)),
    (re.compile(r"security group|InvalidGroup", re.I), "a security group is invalid", ("SG001",)),
    (re.compile(r"subnet|InvalidSubnet", re.I), "a subnet is invalid or full", ("NET002",)),
    (re.compile(r"Unsupported|not supported", re.I),
     "the instance type or configuration is not supported there", ("BAT010", "BAT004")),
]


def activity_cause(message: str) -> tuple[str, tuple[str, ...]]:
    """(what a failed scaling activity means, the checks that show it)."""
    for pattern, meaning, checks in _ACTIVITY:
        if pattern.search(message):
            return meaning, checks
    return "the Auto Scaling group could not launch instances", ()
