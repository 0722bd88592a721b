"""Declarative check definitions, fix plans, and the registry that loads every module of `checks/`."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import AREAS, Finding, Resource, Severity

if TYPE_CHECKING:
    from .context import CheckContext, FixContext

ID_RE = re.compile(r"^(ENV|IMG|KEY|SG|NET|IAM|BAT)\d{3}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PERMISSION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")

Evaluator = Callable[["CheckContext", Resource], Finding]


@dataclass
class FixPlan:
    """What a fixer would do: shown by --fix-dry-run, carried out by --fix."""

    check_id: str
    resource: str
    action: str
    calls: list[str]
    permissions: list[str]
    apply: Callable[[FixContext], None] = field(repr=False)
    notes: list[str] = field(default_factory=list)
    opt_in: str | None = None  # a `fix.allow` value that must be present for this plan to be applied

    def describe(self) -> str:
        lines = [f"{self.check_id} {self.resource}: {self.action}", f"  calls: {', '.join(self.calls)}"]
        lines.append(f"  permissions: {', '.join(sorted(set(self.permissions)))}")
        if self.opt_in:
            lines.append(f"  needs opt-in: fix.allow: [{self.opt_in}]")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

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
        }


class Registry:
    """All known checks by id; registering an id twice is an error."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, check: Check) -> Check:
        if not ID_RE.match(check.id):
            raise ValueError(f"bad check id {check.id!r}: expected AREA + three digits, area one of {list(AREAS)}")
        if check.id in self._checks:
            raise ValueError(f"duplicate check id {check.id}")
        self._checks[check.id] = check
        return check

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._checks.values(), key=_order))

    def __len__(self) -> int:
        return len(self._checks)

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._checks

    def get(self, check_id: str) -> Check:
        return self._checks[check_id]

    def ids(self) -> list[str]:
        return [c.id for c in self]


def _order(check: Check) -> tuple[int, str]:
    return (list(AREAS).index(check.area), check.id)


REGISTRY = Registry()


def check(
    *,
    id: str,
    slug: str,
    title: str,
    severity: str,
    resource: str,
    permissions: Sequence[str],
    rationale: str,
    remediation: str,
    needs_docker: bool = False,
    registry: Registry | None = None,
) -> Callable[[Evaluator], Check]:
    """Decorator turning an evaluate function into a registered Check."""

    def register(fn: Evaluator) -> Check:
        return (registry if registry is not None else REGISTRY).add(
            Check(
                id=id,
                slug=slug,
                title=title,
                severity=Severity(severity),
                resource_kind=resource,
                permissions=tuple(permissions),
                rationale=rationale,
                remediation=remediation,
                evaluate=fn,
                needs_docker=needs_docker,
            )
        )

    return register


_loaded = False


def load_checks() -> Registry:
    """Import every module of pytest_mlbatch.checks once, which registers their checks."""
    global _loaded
    if not _loaded:
        package = importlib.import_module("pytest_mlbatch.checks")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{info.name}")
        _loaded = True
    return REGISTRY
