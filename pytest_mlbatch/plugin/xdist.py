"""pytest-xdist integration: loadgroup per target, and the controller's sandbox and discovery shared with workers.

Registered only when xdist is loaded and the preflight is on.

- Scheduling: every item carries `xdist_group(<target label>)`; with `-n` the preflight switches xdist's default
  `load` (and loadscope/loadfile/worksteal, which would split a target) to `loadgroup`, so one worker runs all of a
  target's items and fetches its inventory once.
- Collection must be the same on every worker, and it depends on discovery (the scope). So the controller
  resolves every target once (scope, identity; in parallel) and hands the result to each worker through
  `workerinput["mlbatch_snapshot"]`; a worker starts from it instead of asking AWS again. Each (account, region)
  is therefore read once per run, not once per worker. (A worker running a role-assumed target does assume the
  role itself: credentials are not shipped.)
- The sandbox: the controller starts and seeds it; workers get `workerinput["mlbatch_sandbox"]`
  (endpoint and config) and use the same server.
- Reports: the controller writes the JSON and JUnit reports (session.py skips them on workers).
- Overlap on a worker: when a target's first item runs, the worker also starts the evaluations of every other
  target xdist has already queued on it (`queued_targets`), as a serial run overlaps all of its targets.
"""

from __future__ import annotations

import contextlib
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target
    from pytest_mlbatch.plugin.session import MlbatchPlugin

SPLITTING_MODES = ("load", "loadscope", "loadfile", "worksteal")


def _warm(target: Target) -> None:
    """Everything collection and the first checks need from one target: discovery and the caller's identity."""
    from pytest_mlbatch.aws.inventory import AwsError

    if target.region:
        target.scope()
    with contextlib.suppress(AwsError):  # an unusable target is reported by its own items (ENV001, the gate)
        target.identity()


def queued_targets(session: pytest.Session) -> set[str]:
    """On a worker: the targets of the items xdist has already sent it but not yet run, so their evaluations can
    start now, side by side (loadgroup sends a whole target to one worker, so this worker, and only this one, will
    run them). Reads the worker's queue (xdist's WorkerInteractor.torun, not a public API): anything unexpected
    gives the empty set, and targets then start one after the other, as their first items run."""
    try:
        from xdist.remote import WorkerInteractor
    except ImportError:
        return set()
    try:
        interactor = next(p for p in session.config.pluginmanager.get_plugins() if isinstance(p, WorkerInteractor))
        with interactor.torun.lock() as queued:
            indices = [i for i in queued if isinstance(i, int)]
        labels: set[str] = set()
        for index in indices:
            target = getattr(session.items[index], "target", None)
            if target is not None:
                labels.add(str(target.label))
        return labels
    except Exception:
        return set()


class XdistPlugin:
    def __init__(self, config: pytest.Config, session: MlbatchPlugin) -> None:
        self.config = config
        self.session = session
        self._snapshot: bytes | None = None
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        if workerinput is None:
            dist = config.getoption("dist", "no")
            if dist in SPLITTING_MODES and config.getoption("tx", None):
                config.option.dist = "loadgroup"
        else:
            config.option.loadgroup = True  # the worker side of loadgroup: group names go into the node ids
            data = workerinput.get("mlbatch_snapshot")
            if data:
                snapshot: dict[str, Any] = pickle.loads(data)
                for target in session.runtime.targets:
                    if target.label in snapshot:
                        target.preload(snapshot[target.label])

    def snapshot(self) -> bytes:
        """Resolve every target once (in parallel) and pickle what workers need; computed on the first node."""
        if self._snapshot is None:
            targets = self.session.runtime.targets
            from pytest_mlbatch.plugin.options import concurrency

            with ThreadPoolExecutor(max_workers=min(concurrency(self.config), max(1, len(targets)))) as pool:
                list(pool.map(_warm, targets))
            data: dict[str, Any] = {}
            for target in targets:
                snap = target.snapshot()
                answers = {}
                for key, value in snap["answers"].items():
                    try:
                        pickle.dumps(value)
                    except Exception:
                        continue  # a worker fetches what cannot travel
                    answers[key] = value
                data[target.label] = {**snap, "answers": answers}
            self._snapshot = pickle.dumps(data)
        return self._snapshot

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        sandbox = self.session.sandbox
        if sandbox is not None:
            node.workerinput["mlbatch_sandbox"] = {"endpoint": sandbox.endpoint, "config": sandbox.raw,
                                                   "credentials": sandbox.credentials}
        node.workerinput["mlbatch_snapshot"] = self.snapshot()

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadgroup":
            return "mlbatch: xdist --dist loadgroup (one worker per target)"
        return None
