"""The pytest nodes: one collector per target, one item per (check, resource); outcomes mapped to pytest's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlbatch.aws.target import region_problem
from pytest_mlbatch.engine.runner import ItemResult, run
from pytest_mlbatch.findings import Outcome, Resource, printable
from pytest_mlbatch.plugin import progress

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target
    from pytest_mlbatch.engine.context import Check
    from pytest_mlbatch.engine.runtime import Runtime


# Who evaluates an item: the prefetch pool puts its `result` here when there is one; otherwise the item runs itself.
RESULTS = pytest.StashKey[Callable[["MlbatchItem"], ItemResult]]()


class CheckFailed(Exception):
    """The check ran and found a problem (pytest: failed)."""


class CheckNotEvaluated(Exception):
    """The check could not be evaluated (pytest: error, so CI can tell it from a failure)."""


class TargetCollector(pytest.Collector):
    """Groups the items of one (account, region)."""

    def collect(self) -> list[pytest.Item]:  # pragma: no cover - items are added by the plugin, not collected
        return []


class MlbatchItem(pytest.Item):
    def __init__(self, *, check: Check, target: Target, resource: Resource, runtime: Runtime,
                 skip_reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.target = target
        self.resource = resource
        self.runtime = runtime
        self.skip_reason = skip_reason
        self.result: ItemResult | None = None
        self.user_properties.extend(
            [("check_id", check.id), ("severity", runtime.settings.severity.get(check.id, check.severity.value)),
             ("resource", resource.id), ("target", target.label)]
        )
        for word in (check.slug, check.area, "mlbatch"):
            self.extra_keyword_matches.add(word)

    def setup(self) -> None:
        if self.skip_reason is not None:
            self.result = _skipped_result(self, self.skip_reason)
        else:
            provider = self.config.stash.get(RESULTS, None)  # evaluated ahead in the prefetch pool when there is one
            self.result = provider(self) if provider else run(self.runtime, self.check, self.target, self.resource)
        outcome = self.result.outcome
        if outcome == Outcome.SKIPPED:
            pytest.skip(printable(self.result.message))
        if outcome == Outcome.ERROR:
            raise CheckNotEvaluated(printable(self.result.message))

    def runtest(self) -> None:
        assert self.result is not None
        if self.result.outcome == Outcome.FAILED:
            if self.result.below_threshold:
                pytest.xfail(f"{self.result.severity} is below --mlbatch-fail-on {self.runtime.fail_on.value}: "
                             f"{printable(self.result.message)}")
            raise CheckFailed(printable(self.result.message))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed | CheckNotEvaluated) and self.result is not None:
            r = self.result
            head = "could not evaluate" if isinstance(excinfo.value, CheckNotEvaluated) else "FAILED"
            lines = [f"{r.check_id} {r.title} [{r.severity}] on {r.resource} ({r.target}): {head}",
                     f"  finding: {r.message}", f"  fix: {r.remediation}"]
            if r.plan:
                if self.runtime.fix_dry_run:
                    lines.append("  plan (dry run: nothing was changed):")
                else:
                    why = r.message.rpartition("(not fixed: ")[2].rstrip(")") if "(not fixed: " in r.message \
                        else "see the finding"
                    lines.append(f"  fix not applied ({why}); its plan:")
                lines.extend("    " + line for line in r.plan.splitlines())
            return "\n".join(printable(line) for line in lines)
        return str(super().repr_failure(excinfo))

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """pytest renders setup errors with this, not repr_failure: show the reason, not pytest's internals."""
        if isinstance(excinfo.value, CheckNotEvaluated) and self.result is not None:
            return self.repr_failure(excinfo)
        return super()._repr_failure_py(excinfo, style=style)

    def check_location(self) -> tuple[str, int]:
        """Where the check is defined (file, 1-based line of its @check): what a skip reason points at."""
        import inspect

        fn = inspect.unwrap(self.check.evaluate)
        code = getattr(fn, "__code__", None)
        if code is None:
            return str(self.path), 1
        return code.co_filename, code.co_firstlineno

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, printable(f"{self.check.id} {self.check.title} [{self.resource.id}]")


def _skipped_result(item: MlbatchItem, reason: str) -> ItemResult:
    from pytest_mlbatch.engine.runner import effective_severity

    c = item.check
    return ItemResult(c.id, c.slug, c.title, effective_severity(item.runtime, c).value, c.area, item.target.label,
                      item.target.spec.account_id, item.target.region, item.resource.id, Outcome.SKIPPED.value,
                      reason, c.remediation)


def build_items(session: pytest.Session, runtime: Runtime) -> list[pytest.Item]:
    """One item per (target, check, resource); a check with no resources gets one skipped item saying why."""
    from pytest_mlbatch.model.resources import resources_for

    items: list[pytest.Item] = []
    for target in runtime.targets:
        parent = TargetCollector.from_parent(session, name=f"mlbatch[{target.label}]",
                                             nodeid=f"mlbatch/{target.label}")
        no_region = region_problem(target.region)
        scope = None if no_region else progress.call(target.scope, [target], progress.writer(session.config),
                                                       f"discovering {target.label}")
        for check in runtime.checks():
            reason: str | None = None
            found: list[Resource] | str
            if check.resource_kind == "docker" and not runtime.needs_docker():
                found = "no check needs local Docker (set image.local or image.pull: true)"
            elif scope is None and check.resource_kind not in ("target", "docker"):
                found = no_region or "no AWS region resolved (see ENV002)"
            elif scope is None:
                found = [Resource(check.resource_kind, target.label if check.resource_kind == "target"
                                  else "docker-daemon")]
            else:
                found = resources_for(check.resource_kind, scope, target.label)
            if isinstance(found, str):
                reason, found = found, [Resource(check.resource_kind, "not-configured")]
            for res in found:
                item = MlbatchItem.from_parent(parent, name=f"{check.id}[{printable(res.id)}]", check=check,
                                               target=target,
                                               resource=res, runtime=runtime, skip_reason=reason)
                item.add_marker("mlbatch")
                item.add_marker(pytest.mark.xdist_group(target.label))
                items.append(item)
    return items
