"""Run one check on one resource: config skips and exemptions, the credentials gate, evaluate, fix, re-check."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_mlbatch.aws.guard import ForbiddenCall
from pytest_mlbatch.aws.inventory import AwsError
from pytest_mlbatch.aws.target import region_problem
from pytest_mlbatch.engine.context import PLAN_TAG, CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.findings import (
    Finding,
    NotApplicable,
    NotEvaluable,
    Outcome,
    Resource,
    Severity,
    error,
    redact,
    skipped,
)

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target
    from pytest_mlbatch.engine.context import Check
    from pytest_mlbatch.engine.runtime import Runtime

UNGATED = {"ENV001", "ENV002", "ENV003"}
# The remediation of an `error` (could not evaluate) without a more precise one: not the check's remedy for a failure.
NOT_EVALUATED = ("could not be evaluated: resolve what the message names (a permission, an endpoint, credentials, "
                 "a file), then run again")


@dataclass
class ItemResult:
    check_id: str
    slug: str
    title: str
    severity: str
    area: str
    target: str
    account: str | None
    region: str | None
    resource: str
    outcome: str
    message: str
    remediation: str
    duration_s: float = 0.0
    below_threshold: bool = False
    fix: dict[str, Any] | None = None
    plan: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def effective_severity(runtime: Runtime, check: Check) -> Severity:
    return Severity(runtime.settings.severity.get(check.id, check.severity.value))


def evaluate(ctx: CheckContext, resource: Resource) -> Finding:
    """Call the check; every way it can fail to decide becomes `error` with the reason, never `passed`."""
    try:
        finding = ctx.check.evaluate(ctx, resource)
    except AwsError as exc:
        return Finding(Outcome.ERROR, str(exc), remediation=exc.remedy)
    except NotEvaluable as exc:
        return error(str(exc))
    except NotApplicable as exc:
        return skipped(str(exc))
    except ForbiddenCall as exc:
        return Finding(Outcome.ERROR, f"refused: {exc}", remediation="a bug in pytest-mlbatch (a read sent a "
                       "change): report it with this message")
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Finding(Outcome.ERROR, f"internal error in {ctx.check.id}: {type(exc).__name__}: {exc} "
                       f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})",
                       remediation="a bug in pytest-mlbatch: report it with this message")
    if not isinstance(finding, Finding):
        return error(f"internal error in {ctx.check.id}: evaluate returned {type(finding).__name__}")
    return finding


def gate(runtime: Runtime, check: Check, target: Target) -> Finding | None:
    """Checks other than ENV00x need a region and usable credentials; without them they are skipped."""
    if check.id in UNGATED:
        return None
    problem = region_problem(target.region)
    if problem:
        return skipped(problem)
    try:
        target.identity()
    except AwsError as exc:
        if exc.kind == "assume-role":
            return error(f"target {target.label}: {exc.detail}")
        if exc.kind == "credentials":
            return skipped(f"AWS credentials not usable (see ENV001): {exc.code}")
    return None


def run(runtime: Runtime, check: Check, target: Target, resource: Resource) -> ItemResult:
    from pytest_mlbatch.aws.inventory import Deadline

    start = time.perf_counter()
    severity = effective_severity(runtime, check)
    notes: list[str] = []
    finding: Finding | None = None
    fix: dict[str, Any] | None = None
    plan_text: str | None = None
    if check.id in runtime.settings.skip:
        finding = skipped("skipped by config (checks.skip)")
    else:
        for ex in runtime.settings.exempt:
            if ex.check == check.id and ex.resource == resource.id:
                if ex.until >= runtime.today:
                    finding = skipped(f"exempted until {ex.until.isoformat()}: {ex.reason}")
                else:
                    notes.append(f"exemption expired on {ex.until.isoformat()} ({ex.reason})")
                break
    if finding is None and Deadline.passed():
        finding = error(f"not evaluated: {Deadline.message()}")
    if finding is None:
        finding = gate(runtime, check, target)
    ctx = CheckContext(runtime, target, check)
    if finding is None and runtime.fix_dry_run and check.planner is not None:
        finding, fix, plan_text = _dry_run(ctx, resource)
    if finding is None:
        finding = evaluate(ctx, resource)
        if finding.outcome is Outcome.FAILED and check.fixer is not None and (runtime.fix or runtime.fix_dry_run):
            finding, fix, plan_text = _fix(runtime, ctx, resource, finding)
    if finding.severity is not None and check.id not in runtime.settings.severity \
            and finding.severity.rank > severity.rank:
        severity = finding.severity  # e.g. a named resource that does not exist: the job cannot be submitted
    remediation = finding.remediation or (NOT_EVALUATED if finding.outcome is Outcome.ERROR else check.remediation)
    message = redact(finding.message)  # e.g. a registry that echoed the Authorization header in its error
    if notes:
        message = f"{message} [{'; '.join(notes)}]"
    return ItemResult(
        check_id=check.id,
        slug=check.slug,
        title=check.title,
        severity=severity.value,
        area=check.area,
        target=target.label,
        account=_account(target),
        region=target.region,
        resource=resource.id,
        outcome=finding.outcome.value,
        message=message,
        remediation=remediation,
        duration_s=round(time.perf_counter() - start, 6),
        below_threshold=finding.outcome is Outcome.FAILED and severity.rank < runtime.fail_on.rank,
        fix=fix,
        plan=plan_text,
        notes=notes,
    )


def _account(target: Target) -> str | None:
    try:
        return target.account
    except Exception:
        return None


FixOutcome = tuple[Finding, dict[str, Any] | None, str | None]


def _dry_run(ctx: CheckContext, resource: Resource) -> FixOutcome:
    """A check that changes something itself (the canary) is not run by --fix-dry-run: its plan is shown."""
    assert ctx.check.planner is not None
    try:
        plan = ctx.check.planner(ctx, resource).of(ctx.check)
    except NotApplicable as exc:
        return skipped(str(exc)), None, None
    except (NotEvaluable, AwsError) as exc:
        return error(str(exc)), None, None
    return skipped(f"dry run (--fix-dry-run): would {plan.action}"), plan.as_json(False), plan.describe()


def _plan(runtime: Runtime, ctx: CheckContext, resource: Resource, finding: Finding) -> FixPlan | FixOutcome:
    """The fixer's plan, or the outcome when there is nothing to apply (not fixable, dry run, not opted in)."""
    check = ctx.check
    assert check.fixer is not None
    try:
        plan: FixPlan = check.fixer(ctx, resource, finding).of(check)
    except NotFixable as exc:
        return Finding(finding.outcome, f"{finding.message} (not fixed: {exc})"), None, None
    except AwsError as exc:
        return Finding(finding.outcome, f"{finding.message} (could not plan a fix: {exc})"), None, None
    text = plan.describe()
    if runtime.fix_dry_run:
        return Finding(finding.outcome, f"{finding.message} (dry run: would {plan.action})"), plan.as_json(False), text
    if plan.opt_in and plan.opt_in not in runtime.settings.fix_allow:
        return (Finding(finding.outcome, f"{finding.message} (not fixed: this fix needs fix.allow: [{plan.opt_in}])"),
                plan.as_json(False), text)
    return plan


def _fix(runtime: Runtime, ctx: CheckContext, resource: Resource, finding: Finding) -> FixOutcome:
    """Plan; then, holding this account and region's fix lock, read AWS again and apply only if still needed."""
    planned = _plan(runtime, ctx, resource, finding)
    if not isinstance(planned, FixPlan):
        return planned
    from pytest_mlbatch.engine.fixlock import FixLockError, fix_lock

    try:
        with fix_lock(_account(ctx.target), ctx.target.region, timeout=runtime.lock_timeout, notify=runtime.notify):
            return _fix_locked(runtime, ctx, resource)
    except FixLockError as exc:
        return Finding(Outcome.ERROR, f"{finding.message} (not fixed: {exc})"), planned.as_json(False), \
            planned.describe()


def _fix_locked(runtime: Runtime, ctx: CheckContext, resource: Resource) -> FixOutcome:
    """Under the lock: read AWS again and apply the plan only if the check still fails."""
    ctx.inventory.invalidate()  # another --fix may have changed this since the check read it
    fresh = evaluate(ctx, resource)
    if fresh.outcome is Outcome.PASSED:
        return (Finding(fresh.outcome, f"{fresh.message} (read again before fixing: nothing to do; another "
                                       "--fix may have fixed it meanwhile)"), None, None)
    if fresh.outcome is not Outcome.FAILED:  # could not tell any more (error) or no longer applies (skipped)
        return Finding(fresh.outcome, f"{fresh.message} (read again before fixing)"), None, None
    again = _plan(runtime, ctx, resource, fresh)
    if not isinstance(again, FixPlan):
        return again
    return _apply(runtime, ctx, resource, fresh, again)


def _apply(runtime: Runtime, ctx: CheckContext, resource: Resource, finding: Finding, plan: FixPlan) -> FixOutcome:
    check = ctx.check
    text = plan.describe()
    plan_id = plan.plan_id(_account(ctx.target), ctx.target.region)
    fctx = FixContext(runtime, ctx.target, check, runtime.journal, resource, plan_id)
    sanctioned = frozenset({"ecr:PutImage"}) if plan.opt_in == "move_tag" else frozenset()
    reconciled = ""
    interrupted = runtime.journal.unfinished(plan_id)
    if interrupted:  # what that run made carries the plan's tag: the fixer adopts it instead of making another
        reconciled = (f" (an earlier run of this plan was interrupted after sending {', '.join(interrupted)}; "
                      f"resources tagged {PLAN_TAG}={plan_id} were adopted, see {runtime.journal.path})")
        runtime.journal.record_outcome(check.id, resource.id, plan.action, "reconcile",
                                       f"plan {plan_id} interrupted after {', '.join(interrupted)}; adopting what "
                                       f"carries tag {PLAN_TAG}={plan_id}")
    mark = len(runtime.journal.entries)
    try:
        with ctx.inventory.mutations(runtime.journal, check.id, resource.id, plan.calls, plan_id, sanctioned):
            plan.apply(fctx)
    except (AwsError, NotFixable, ForbiddenCall, OSError, Exception) as exc:
        runtime.journal.record_outcome(check.id, resource.id, plan.action, "failed", f"{type(exc).__name__}: {exc}")
        ctx.inventory.invalidate()
        return (Finding(Outcome.ERROR, f"{finding.message}; fix '{plan.action}' failed: {exc} "
                        f"(see {runtime.journal.path} for what was created)"), plan.as_json(False), text)
    runtime.journal.record_outcome(check.id, resource.id, plan.action, "applied")
    ctx.inventory.invalidate()
    again = evaluate(ctx, resource)
    created = [f"{key} {value}" for entry in runtime.journal.entries[mark:]
               if entry.get("check_id") == check.id and entry.get("resource") == resource.id
               for key, value in (entry.get("created") or {}).items()]
    record = {**plan.as_json(True), "created": created}
    if again.outcome is Outcome.PASSED:
        what = f": created {', '.join(created)}" if created else ""
        return Finding(Outcome.FIXED, f"fixed: {plan.action}{what} ({finding.message}){reconciled}"), record, text
    return Finding(again.outcome, f"{again.message} (after applying '{plan.action}')"), record, text
