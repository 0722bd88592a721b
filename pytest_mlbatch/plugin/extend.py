"""What a project adds: its own checks (hook, entry points) and the fixtures its own tests use.

The fixtures: the run's targets, a target's model, read-only AWS, permission questions, and remediation. Imported
only with --mlbatch: plugin/__init__.py declares the fixtures (so a test that uses them without --mlbatch is skipped
with the reason) and calls these implementations. docs/extending.md shows them in use.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlbatch.analysis.policy import Decision, Request
from pytest_mlbatch.aws import principals, roles
from pytest_mlbatch.aws.inventory import AwsError
from pytest_mlbatch.aws.target import Target, region_problem
from pytest_mlbatch.aws.world import AwsWorld
from pytest_mlbatch.engine.context import Check, CheckContext, FixPlan
from pytest_mlbatch.engine.registry import DEFAULT_PREFIX, CustomChecks, DeclarationError, Registry, load_checks
from pytest_mlbatch.engine.runner import ItemResult, run
from pytest_mlbatch.findings import Finding, Resource, Severity

if TYPE_CHECKING:
    from pytest_mlbatch.engine.runtime import Runtime

ENTRY_POINTS = "pytest_mlbatch.checks"  # a plugin package's callable(registry), or a module with the hook
REGISTRY_KEY = pytest.StashKey[Registry]()
RESULT_KEY = pytest.StashKey[ItemResult]()
INACTIVE = "needs --mlbatch (or --mlbatch-sandbox): it uses the preflight's fixtures"


# -- custom checks ---------------------------------------------------------------------------------------------
def prefix(config: pytest.Config) -> str:
    value = config.getini("mlbatch_check_prefix")
    return str(value).strip() if value else DEFAULT_PREFIX


def run_registry(config: pytest.Config) -> Registry:
    """The catalog and the project's own checks (hook and entry points), once per pytest run; a bad declaration is
    a usage error (exit 4) naming its file and line."""
    found = config.stash.get(REGISTRY_KEY, None)
    if found is not None:
        return found
    builtin = load_checks()
    try:
        custom = CustomChecks(prefix(config), builtin)
        config.hook.pytest_mlbatch_checks(registry=custom, config=config)
        for ep in _entry_points():
            _load_entry_point(ep, custom, config)
        custom.finish()
    except DeclarationError as exc:
        raise pytest.UsageError(str(exc)) from None
    registry = builtin.with_custom(custom) if len(custom) else builtin
    config.stash[REGISTRY_KEY] = registry
    return registry


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda ep: ep.name)


def _load_entry_point(ep: importlib.metadata.EntryPoint, custom: CustomChecks, config: pytest.Config) -> None:
    try:
        target = ep.load()
    except Exception as exc:
        raise DeclarationError(f"entry point {ep.name} = {ep.value} (group {ENTRY_POINTS}): cannot be loaded: "
                               f"{type(exc).__name__}: {exc}") from None
    declare = getattr(target, "pytest_mlbatch_checks", target)
    if not callable(declare):
        raise DeclarationError(f"entry point {ep.name} = {ep.value} (group {ENTRY_POINTS}): not a callable "
                               "(registry) nor a module with pytest_mlbatch_checks(registry)")
    try:
        inspect.signature(declare).bind(registry=custom, config=config)
        takes_config = True
    except (TypeError, ValueError):
        takes_config = False
    if takes_config:
        declare(registry=custom, config=config)
    else:
        declare(custom)


# -- fixtures' implementations -----------------------------------------------------------------------------------
def runtime(config: pytest.Config) -> Runtime:
    plugin = config.pluginmanager.get_plugin("mlbatch-session")
    if plugin is None:  # pragma: no cover - plugin/__init__.py skips before this without --mlbatch
        pytest.skip(INACTIVE)
    found: Runtime = plugin.runtime
    return found


def target_params(config: pytest.Config) -> list[Any]:
    """One parameter per target of the run (its label, as in the preflight's node ids), in the target's xdist group."""
    return [pytest.param(t.label, id=t.label, marks=pytest.mark.xdist_group(t.label))
            for t in runtime(config).targets]


def target(request: pytest.FixtureRequest) -> Target:
    label = getattr(request, "param", None)
    rt = runtime(request.config)
    found = next((t for t in rt.targets if t.label == label), None)
    if found is None:
        pytest.skip("no target of the preflight is parametrized here (request mlbatch_target in the test itself)")
    problem = region_problem(found.region)
    if problem:
        pytest.skip(f"target {found.label}: {problem} (see ENV002)")
    try:
        found.identity()
    except AwsError as exc:
        if exc.kind in ("credentials", "assume-role"):
            pytest.skip(f"target {found.label}: AWS credentials not usable (see ENV001): {exc}")
        raise
    return found


def model(config: pytest.Config, tgt: Target) -> AwsWorld:
    """The World checks decide over (ctx.model): job, compute environments, instance types, key pairs; plus
    `.scope` (what discovery completed: queue, subnets, security groups, roles) and `.inventory`."""
    return AwsWorld(tgt.inventory, tgt.scope(), tgt.region, runtime(config).rootdir)


class AwsReader:
    """Read-only AWS for a test, through the target's inventory: `call` and `paginate` are cached and retried
    (the preflight's own answers are shared); `client(service)` is retried and guarded: any call that is not a
    read raises ForbiddenCall (writes happen only inside a fix, see mlbatch_fix)."""

    def __init__(self, tgt: Target) -> None:
        self.target = tgt
        self.inventory = tgt.inventory

    def __call__(self, service: str, region: str | None = None) -> Any:
        return self.client(service, region)

    def client(self, service: str, region: str | None = None) -> Any:
        return self.inventory.client(service, region)

    def call(self, service: str, method: str, *, region: str | None = None, **params: Any) -> Any:
        return self.inventory.call(service, method, region=region, **params)

    def paginate(self, service: str, method: str, result_key: str, *, region: str | None = None,
                 **params: Any) -> list[Any]:
        return self.inventory.paginate(service, method, result_key, region=region, **params)


class Undecided(Exception):
    """The permission could not be decided (a condition not modelled, a policy that could not be read): never
    taken as allowed."""


class Permissions:
    """'May this role do s3:PutObject on arn:aws:s3:::ml-out/*?', answered as the IAM checks answer it:
    SimulatePrincipalPolicy where the account answers it, else a local evaluation of the role's policies."""

    def __init__(self, tgt: Target) -> None:
        self.target = tgt

    def decide(self, role: str, action: str, resource: str = "*",
               context: Sequence[tuple[str, Sequence[str]]] = ()) -> Decision:
        """The decision (verdict allowed / denied / unknown, the statement or reason) for a role name or ARN."""
        inv = self.target.inventory
        ref = roles.parse_role(role)
        found = roles.get_role(inv, ref.name)
        if found is None:
            raise Undecided(f"role {ref.label} does not exist in {self.target.label}")
        request = Request(action, resource, tuple((k, tuple(v)) for k, v in context))
        (decision,) = principals.decide(inv, principals.role_principal(found), [request])
        return decision

    def allows(self, role: str, action: str, resource: str = "*",
               context: Sequence[tuple[str, Sequence[str]]] = ()) -> bool:
        """True if allowed, False if denied; raises Undecided when it cannot be told (never a false pass)."""
        decision = self.decide(role, action, resource, context)
        if decision.verdict == "unknown":
            raise Undecided(f"{role}: {decision.describe()}")
        return decision.verdict == "allowed"


EvaluateFn = Callable[[CheckContext, Resource], Finding]
PlanFn = Callable[[CheckContext, Resource, Finding], FixPlan]


@dataclass(repr=False)
class Remediation:
    """In a test: decide, and when it fails plan a fix; the plan is applied only under --fix (through the fix
    engine: create-only calls the plan declares, tagged, journaled, under the fix lock, re-checked) and shown
    under --fix-dry-run. The result is reported like a check's (JSON report, compliance JUnit, summary), and the
    config's checks.skip, checks.exempt and checks.severity apply to its id."""

    request: pytest.FixtureRequest
    runtime: Runtime
    target: Target

    def __repr__(self) -> str:  # what a failing test's traceback shows for the fixture
        return f"<mlbatch_fix of target {self.target.label}>"

    def run(self, id: str, resource: str, evaluate: EvaluateFn, plan: PlanFn | None = None, *,
            title: str | None = None, severity: str = "medium", kind: str = "target",
            remediation: str = "apply the plan (pytest --mlbatch --fix) or do it by hand") -> ItemResult:
        ids = CustomChecks(prefix(self.request.config), self.runtime.registry)
        if not ids.id_re.match(id) or id in self.runtime.registry:
            pytest.fail(f"mlbatch_fix: {id!r} is not a free id of the project's namespace (e.g. "
                        f"{ids.prefix}DATA001, not a registered check's)", pytrace=False)
        if RESULT_KEY in self.request.node.stash:
            pytest.fail("mlbatch_fix: one remediation per test (parametrize the test over resources)", pytrace=False)
        check = Check(id=id, slug=id.lower(), title=title or str(getattr(self.request.node, "name", id)),
                      severity=Severity(severity), resource_kind=kind, permissions=(), rationale="",
                      remediation=remediation, evaluate=evaluate, fixer=plan,
                      fix_summary="the test's plan" if plan else "")
        result = run(self.runtime, check, self.target, Resource(kind, resource))
        self.request.node.stash[RESULT_KEY] = result
        return result

    def ensure(self, id: str, resource: str, evaluate: EvaluateFn, plan: PlanFn | None = None,
               **kwargs: Any) -> ItemResult:
        """run(), then fail the test unless the outcome is passed or fixed (skipped: the test is skipped)."""
        result = self.run(id, resource, evaluate, plan, **kwargs)
        if result.outcome == "skipped":
            pytest.skip(result.message)
        if result.outcome not in ("passed", "fixed"):
            lines = [f"{id} on {resource}: {result.outcome}: {result.message}", f"  fix: {result.remediation}"]
            if result.plan:
                lines += ["  plan:" if not self.runtime.fix_dry_run else "  plan (dry run: nothing was changed):",
                          *("    " + line for line in result.plan.splitlines())]
            pytest.fail("\n".join(lines), pytrace=False)
        return result


class ResultsPlugin:
    """Registered with --mlbatch: a remediation's result rides on its test's report, so the session gathers it
    into the JSON report, the compliance JUnit and the summary (on xdist, through the worker's report)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and report.when == "call" and _agrees(report, result.outcome):
            report.mlbatch = result.as_json()  # shown once, in the preflight's summary (session.OncePerFinding)
        return report


def _agrees(report: pytest.TestReport, outcome: str) -> bool:
    """The test's outcome is the remediation's: a test that fails for another reason (an assertion after a passing
    ensure()) keeps pytest's own failure report, which carrying the result would hide."""
    if report.failed:
        return outcome in ("failed", "error")
    if report.skipped:
        return outcome == "skipped" or bool(getattr(report, "wasxfail", ""))
    return outcome in ("passed", "fixed", "failed", "error", "skipped")  # run() without ensure(): reported as is
