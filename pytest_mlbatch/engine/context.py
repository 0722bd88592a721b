"""What a check is (Check, FixPlan), what it sees (CheckContext) and what a fixer may use (FixContext).
Neither context makes boto3 clients."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_mlbatch.aws import canary
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.engine.journal import Journal
from pytest_mlbatch.findings import Finding, Resource, Severity, printable
from pytest_mlbatch.model.resources import resources_for
from pytest_mlbatch.model.scope import Scope
from pytest_mlbatch.model.submitted import CanaryRefused, CanaryRequest, CanaryRun
from pytest_mlbatch.model.world import World

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target
    from pytest_mlbatch.config import Settings

MANAGED_TAG = ("pytest-mlbatch:managed", "true")
# Every resource a fix creates carries its plan's id: the next run finds what an interrupted or raced plan made.
PLAN_TAG = "pytest-mlbatch:plan"


class Run(Protocol):
    """What a check may know of the run (engine.runtime.Runtime): settings, rootdir, dry run, the Docker client."""

    settings: Settings
    rootdir: Path
    fix_dry_run: bool

    def docker(self) -> Any: ...


Evaluator = Callable[["CheckContext", Resource], Finding]


@dataclass
class FixPlan:
    """What a fixer would do: shown by --fix-dry-run, carried out by --fix."""

    resource: str
    action: str
    _: KW_ONLY
    calls: list[str]
    apply: Callable[[FixContext], None] = field(repr=False)
    permissions: list[str] = field(default_factory=list)  # empty: the fixer's declared permissions (engine fills)
    notes: list[str] = field(default_factory=list)
    opt_in: str | None = None  # a `fix.allow` value that must be present for this plan to be applied
    check_id: str = ""  # the check whose fixer made the plan (the engine fills it)

    def of(self, check: Check) -> FixPlan:
        """This plan as made by `check`'s fixer: its id, and the fixer's permissions when the plan names none."""
        return replace(self, check_id=check.id, permissions=list(self.permissions or check.fix_permissions))

    def describe(self) -> str:
        lines = [f"{self.check_id} {self.resource}: {self.action}", f"  calls: {', '.join(self.calls)}"]
        lines.append(f"  permissions: {', '.join(sorted(set(self.permissions)))}")
        if self.opt_in:
            lines.append(f"  needs opt-in: fix.allow: [{self.opt_in}]")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(printable(line) for line in lines)  # a name with a newline cannot add a line

    def plan_id(self, account: str | None, region: str | None) -> str:
        """The same plan (check, resource, action, account, region) has the same id in every run and on every
        machine: what its tag, its client tokens and the journal's reconciliation are keyed by."""
        raw = "|".join([account or "", region or "", self.check_id, self.resource, self.action])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def as_json(self, applied: bool) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "resource": self.resource,
            "action": self.action,
            "calls": list(self.calls),
            "permissions": sorted(set(self.permissions)),
            "notes": list(self.notes),
            "applied": applied,
        }


class NotFixable(Exception):
    """A fixer declines: the reason is shown with the failure (e.g. a file exists, a key is not declared)."""


Fixer = Callable[["CheckContext", Resource, Finding], FixPlan]
# What a check that itself changes something (the opt-in canary) would do: --fix-dry-run shows this plan instead.
Planner = Callable[["CheckContext", Resource], FixPlan]


@dataclass
class Check:
    """One check of the catalog. `evaluate` decides; `fix` (optional) returns a plan to repair."""

    id: str
    slug: str
    title: str
    severity: Severity
    resource_kind: str
    permissions: tuple[str, ...]
    rationale: str
    remediation: str
    evaluate: Evaluator
    needs_docker: bool = False
    fixer: Fixer | None = None
    fix_permissions: tuple[str, ...] = ()
    fix_summary: str = ""
    fix_needs_docker: bool = False  # the fixer (not the check) uses the local Docker daemon, e.g. to push
    run_permissions: tuple[str, ...] = ()  # writes the check itself sends, only when the user opts in (canary)
    planner: Planner | None = None  # with run_permissions: the plan --fix-dry-run shows instead of running it

    @property
    def area(self) -> str:
        return re.sub(r"\d+$", "", self.id)

    def fix(self, *, summary: str, permissions: Sequence[str], needs_docker: bool = False) -> Callable[[Fixer], Fixer]:
        """Decorator attaching a fixer; it must declare the permissions its calls need (and whether it uses Docker)."""

        def attach(fn: Fixer) -> Fixer:
            if self.fixer is not None:
                raise ValueError(f"{self.id} already has a fixer")
            self.fixer = fn
            self.fix_permissions = tuple(permissions)
            self.fix_summary = summary
            self.fix_needs_docker = needs_docker
            return fn

        return attach

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "severity": self.severity.value,
            "area": self.area,
            "resource": self.resource_kind,
            "permissions": list(self.permissions),
            "rationale": self.rationale,
            "remediation": self.remediation,
            "fixer": self.fix_summary or None,
            "fix_permissions": list(self.fix_permissions),
            "run_permissions": list(self.run_permissions),
        }


@dataclass
class CheckContext:
    runtime: Run
    target: Target
    check: Check

    @property
    def inventory(self) -> Inventory:
        return self.target.inventory

    @property
    def scope(self) -> Scope:
        return self.target.scope()

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def region(self) -> str | None:
        return self.target.region

    @property
    def account(self) -> str | None:
        return self.target.account

    @property
    def rootdir(self) -> Path:
        return self.runtime.rootdir

    @property
    def model(self) -> World:
        """The target's facts, typed (model/): what a check decides over, read once for every check."""
        return AwsWorld(lambda: self.target.inventory, self.target.scope, self.region, self.rootdir)

    def docker(self) -> Any:
        """The Docker SDK client (DOCKER_HOST respected); raises NotEvaluable if the daemon does not answer."""
        return self.runtime.docker()

    def run_canary(self, request: CanaryRequest, resource: Resource) -> CanaryRun:
        """Submit the canary job and wait for it (aws/canary.py: bounded, terminated unless it finished, and no longer
        waited for once the run ends); its submission and termination are journaled under this check and resource.
        Raises CanaryRefused when Batch refuses the submission itself."""
        journal = getattr(self.runtime, "journal", None)

        def record(call: str, job_id: str, ok: bool, detail: Any) -> None:
            if journal is not None:
                journal.record_call(self.check.id, resource.id, call, ok, {"jobId": job_id,
                                                                           "detail": str(detail)[:300]})

        try:
            return canary.run_canary(self.inventory, request, journal=record, stop=getattr(self.runtime, "stop", None))
        except AwsError as exc:
            if exc.kind == "client":  # e.g. a bad override: a finding, not an error
                raise CanaryRefused(str(exc)) from None
            raise

    def resources(self, kind: str) -> list[Resource]:
        """Every resource of a kind in this target: what a check batches its inventory queries over."""
        found = resources_for(kind, self.scope, self.target.label)
        return [] if isinstance(found, str) else found

    def path(self, value: str) -> Path:
        """A user-given path: ~ expanded, relative paths against the rootdir."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.rootdir / p


@dataclass
class FixContext(CheckContext):
    journal: Journal
    resource: Resource
    plan_id: str = ""

    def client(self, service: str, region: str | None = None) -> Any:
        """A guarded client: only create/authorize/attach/import/put/tag calls pass, each one journaled."""
        return self.inventory.client(service, region)

    @property
    def tags(self) -> dict[str, str]:
        plan = {PLAN_TAG: self.plan_id} if self.plan_id else {}
        return {**self.settings.fix_tags, MANAGED_TAG[0]: MANAGED_TAG[1], **plan}

    def client_token(self, call: str) -> str:
        """An idempotency token derived from the plan: a resend of this call (a retry, or the next run after an
        interrupted one, on any machine) is answered with what the first one created instead of a second one."""
        return f"mlbatch-{self.plan_id}-{call}"[:64]

    def tag_list(self, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
        return [{key: k, value: v} for k, v in sorted(self.tags.items())]

    def tag_specifications(self, resource_type: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list()}]

    def record_file(self, action: str, path: Path) -> None:
        self.journal.record_local(self.check.id, self.resource.id, action, str(path))
