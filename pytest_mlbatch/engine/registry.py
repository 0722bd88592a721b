"""The registry of checks: the @check declaration, id rules, and loading every module of `checks/`."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Sequence

from pytest_mlbatch.engine.context import Check, Evaluator
from pytest_mlbatch.findings import AREAS, Severity

ID_RE = re.compile(rf"^({'|'.join(AREAS)})\d{{3}}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PERMISSION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")

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
    run_permissions: Sequence[str] = (),
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
                run_permissions=tuple(run_permissions),
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
