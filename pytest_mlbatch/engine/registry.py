"""The registry of checks: the @check declaration, id rules, and loading every module of `checks/`.

A project adds its own checks (docs/extending.md) with the same declaration, through `CustomChecks` (what the
`pytest_mlbatch_checks(registry)` hook of a conftest.py or a plugin package receives): ids in a user namespace
(`X-` + letters + three digits, or a configured prefix) that cannot collide with the catalog, each declaration
checked where it is made, a bad one a `DeclarationError` naming its file and line.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypedDict, Unpack

from pytest_mlbatch.engine.context import Check, Evaluator
from pytest_mlbatch.findings import AREAS, Severity

ID_RE = re.compile(rf"^({'|'.join(AREAS)})\d{{3}}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PERMISSION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")

DEFAULT_PREFIX = "X-"
PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9]*-$")


class Registry:
    """All known checks by id; registering an id twice is an error."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self.origins: dict[str, str] = {}  # custom check id -> "file:line" of its declaration

    def add(self, check: Check) -> Check:
        if not ID_RE.match(check.id):
            raise ValueError(f"bad check id {check.id!r}: expected AREA + three digits, area one of {list(AREAS)}")
        if check.id in self._checks:
            raise ValueError(f"duplicate check id {check.id}")
        self._checks[check.id] = check
        return check

    def with_custom(self, custom: CustomChecks) -> Registry:
        """A registry of this one's checks and a project's own (already validated by CustomChecks)."""
        merged = Registry()
        merged._checks = {**self._checks, **{c.id: c for c in custom.checks()}}
        merged.origins = {**self.origins, **custom.origins}
        return merged

    def is_custom(self, check_id: str) -> bool:
        return check_id in self.origins

    def __iter__(self) -> Iterator[Check]:
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
    """Catalog order: the built-in areas, then custom checks by id."""
    areas = list(AREAS)
    return (areas.index(check.area) if check.area in areas else len(areas), check.id)


REGISTRY = Registry()


class _Required(TypedDict):
    id: str
    slug: str
    title: str
    severity: str
    resource: str
    permissions: Sequence[str]
    rationale: str
    remediation: str


class Declaration(_Required, total=False):
    """What an @check declares, for the catalog's checks and a project's own alike."""

    needs_docker: bool


def wrong_keywords(declared: Declaration) -> str | None:
    """What is missing from or foreign to a declaration given as keywords (None: nothing); the keywords are typed for
    mypy, and checked here for a declaration made without it."""
    given = set(declared)
    missing = sorted(Declaration.__required_keys__ - given)
    unknown = sorted(given - Declaration.__required_keys__ - Declaration.__optional_keys__)
    if not missing and not unknown:
        return None
    return "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                     + ([f"unknown keyword {', '.join(unknown)}"] if unknown else []))


def build(fn: Evaluator, declared: Declaration, run_permissions: Sequence[str] = ()) -> Check:
    """The Check an @check declaration makes of its evaluate function (the one place a Check is built)."""
    return Check(
        id=declared["id"],
        slug=declared["slug"],
        title=declared["title"],
        severity=Severity(declared["severity"]),
        resource_kind=declared["resource"],
        permissions=tuple(declared["permissions"]),
        rationale=declared["rationale"],
        remediation=declared["remediation"],
        evaluate=fn,
        needs_docker=declared.get("needs_docker", False),
        run_permissions=tuple(run_permissions),
    )


def check(
    *,
    run_permissions: Sequence[str] = (),
    registry: Registry | None = None,
    **declared: Unpack[Declaration],
) -> Callable[[Evaluator], Check]:
    """Decorator turning an evaluate function into a registered Check."""
    wrong = wrong_keywords(declared)
    if wrong:
        raise TypeError(f"@check(id={declared.get('id')!r}): {wrong}")

    def register(fn: Evaluator) -> Check:
        return (registry if registry is not None else REGISTRY).add(build(fn, declared, run_permissions))

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


class DeclarationError(ValueError):
    """A project's check declaration that cannot be registered; the message starts with its file and line."""


def _caller(depth: int) -> str:
    """'file:line' of the code `depth` frames above the caller (the line of an @check(...) declaration)."""
    frame = sys._getframe(depth + 1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _defined_at(fn: object) -> str:
    code = getattr(inspect.unwrap(fn), "__code__", None) if callable(fn) else None
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "<unknown>"


def _takes_two(fn: object) -> bool:
    try:
        inspect.signature(fn).bind(None, None)  # type: ignore[arg-type]
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): let it be called
        return True
    return True


class CustomChecks:
    """A project's own checks, declared with the catalog's @check (this is the `registry` the
    `pytest_mlbatch_checks` hook receives). Ids are the prefix (default `X-`), capital letters and three digits,
    e.g. `X-DATA001`; the letters are the check's area in every report. Each declaration is checked where it is
    made: a bad one raises DeclarationError naming its file and line."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, builtin: Registry | None = None) -> None:
        if not PREFIX_RE.match(prefix):
            raise DeclarationError(f"mlbatch_check_prefix: {prefix!r} is not a check id prefix such as X- or ACME- "
                                   "(a capital letter, capital letters or digits, then '-')")
        self.prefix = prefix
        self.builtin = builtin if builtin is not None else load_checks()
        self.id_re = re.compile(rf"^{re.escape(prefix)}[A-Z]+\d{{3}}$")
        self._checks: dict[str, Check] = {}
        self.origins: dict[str, str] = {}

    def checks(self) -> list[Check]:
        return list(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def check(self, **declared: Unpack[Declaration]) -> Callable[[Evaluator], Check]:
        """The catalog's @check, for a project's own check (see the class)."""
        where = _caller(1)
        wrong = wrong_keywords(declared)
        if wrong:
            raise DeclarationError(f"{where}: @check(id={declared.get('id')!r}): {wrong}")
        id = declared["id"]
        self._validate(where, id, declared["slug"], declared["title"], declared["severity"], declared["resource"],
                       declared["permissions"], declared["rationale"], declared["remediation"])

        def register(fn: Evaluator) -> Check:
            if not callable(fn) or not _takes_two(fn):
                raise DeclarationError(f"{where}: @check({id!r}) must decorate a function (ctx, resource) -> Finding")
            made = build(fn, declared)
            self._checks[id] = made
            self.origins[id] = where
            return made

        return register

    def _validate(self, where: str, id: str, slug: str, title: str, severity: str, resource: str,
                  permissions: Sequence[str], rationale: str, remediation: str) -> None:
        from pytest_mlbatch.model.resources import PROVIDERS

        def bad(text: str) -> DeclarationError:
            return DeclarationError(f"{where}: custom check {id!r}: {text}")

        if not isinstance(id, str) or ID_RE.match(id) or id in self.builtin:
            what = f"the built-in check {id} ({self.builtin.get(id).title})" if id in self.builtin else \
                "in the catalog's namespace"
            raise bad(f"the id collides with the catalog: {id} is {what}; a project's checks use ids such as "
                      f"{self.prefix}{id if isinstance(id, str) and id.isalnum() else 'TEAM001'}")
        if not self.id_re.match(id):
            raise bad(f"a custom check id is {self.prefix!r}, capital letters, then three digits (e.g. "
                      f"{self.prefix}DATA001)")
        if id in self._checks:
            raise bad(f"duplicate check id (first declared at {self.origins[id]})")
        if not isinstance(slug, str) or not SLUG_RE.match(slug):
            raise bad(f"slug {slug!r} is not lower-case words joined by '-' (e.g. output-bucket-writable)")
        for name, text, say in (("title", title, "what it checks"), ("rationale", rationale, "why it matters"),
                                ("remediation", remediation, "what to do when it fails")):
            if not isinstance(text, str) or not text.strip():
                raise bad(f"{name} is empty: say {say}")
        if severity not in {s.value for s in Severity}:
            raise bad(f"severity {severity!r} is not one of {', '.join(s.value for s in Severity)}")
        if resource not in PROVIDERS:
            raise bad(f"unknown resource kind {resource!r}; one of {', '.join(sorted(PROVIDERS))}")
        if isinstance(permissions, str) or not permissions:
            raise bad("permissions are missing: list the AWS actions it reads (e.g. ['s3:GetBucketPolicy']); "
                      "they go into the preflight's read-only policy")
        wrong = [p for p in permissions if not isinstance(p, str) or not PERMISSION_RE.match(p)]
        if wrong:
            raise bad(f"permissions {wrong!r} are not service:Action (e.g. ec2:DescribeSubnets)")

    def finish(self) -> None:
        """After every declaration: each fixer declares the permissions of its calls."""
        for c in self._checks.values():
            if c.fixer is None:
                continue
            where = _defined_at(c.fixer)
            if not c.fix_permissions:
                raise DeclarationError(f"{where}: the fixer of custom check {c.id!r} declares no permissions: "
                                       "@check.fix(summary=..., permissions=['s3:CreateBucket', ...])")
            wrong = [p for p in c.fix_permissions if not isinstance(p, str) or not PERMISSION_RE.match(p)]
            if wrong:
                raise DeclarationError(f"{where}: the fixer of custom check {c.id!r}: permissions {wrong!r} are "
                                       "not service:Action")
            if not c.fix_summary:
                raise DeclarationError(f"{where}: the fixer of custom check {c.id!r} has no summary (what it "
                                       "creates)")
