"""Overlap AWS latency: evaluate a target's selected checks side by side ahead of pytest's item loop, with at most
`--mlbatch-concurrency` AWS calls of a target in flight; items read the results.

Design: the checks already ask the inventory, which fetches each query once and lets concurrent askers wait on
the same future. So the simplest way to issue a target's independent describe calls concurrently is to run the
evaluations of its selected items in a thread pool ahead of pytest's item loop; each item then takes its own
result (or, if its evaluation has not started yet, runs it inline). Evaluations mostly wait for reads, so the pool
has 4 threads per call slot, and the bound that matters, AWS calls in flight, is a semaphore per target's
inventory (AWS throttles per account and region). Loaders name the independent reads they are about to make
(`Inventory.read_ahead`), which go out together in a second pool of `--mlbatch-concurrency` threads.
Results are the same as a serial run's: evaluations only read, and they read the same cached answers.

- serial run: every target's items are queued at the end of collection, each check's first resource first
  (targets overlap too);
- xdist worker: a target's items are queued when its first item runs, with those of every target xdist has
  already queued on this worker (loadgroup sends a whole target to one worker, so a worker never fetches the
  inventory of a target it does not run);
- `--fix`: no prefetch and no read-ahead (fixes change what later checks read, so they run in order);
  `--mlbatch-concurrency 1` turns both off too.
- hints: a run records, in pytest's cache (`.pytest_cache`, `mlbatch/prefetch`), the queries each target made;
  the next run with the same config, target and checks issues them all at once when the session starts (before
  discovery, whose chain queue -> compute environments -> instance profile would otherwise come first). They are
  the same read-only queries with the same cache keys, so the results are the same; a stale hint costs one
  unneeded read. `-p no:cacheprovider` turns hints off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlbatch.aws.gather import first_wave
from pytest_mlbatch.engine.runner import ItemResult, run
from pytest_mlbatch.plugin import progress
from pytest_mlbatch.plugin.items import RESULTS
from pytest_mlbatch.plugin.options import concurrency

if TYPE_CHECKING:
    from pytest_mlbatch.aws.target import Target
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.plugin.items import MlbatchItem

EVALUATIONS_PER_CALL = 4  # evaluations mostly wait for reads: 4 per call slot, so every chain of reads starts early


class Prefetcher:
    """Queues evaluations per target; hands each item its result exactly once."""

    def __init__(self, runtime: Runtime, workers: int, *, eager: bool) -> None:
        self.runtime = runtime
        self.workers = workers
        self.eager = eager
        self.write: progress.Write | None = None  # where to say what a slow evaluation waits for (the terminal)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlbatch-prefetch")
        self._pending: dict[str, list[MlbatchItem]] = {}
        self._futures: dict[int, Future[ItemResult]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- planning --------------------------------------------------------------------------------------
    def warm_scopes(self, targets: Iterable[Target]) -> None:
        """Start every target's discovery and identity now, concurrently (collection waits for each in turn; every
        AWS check's credentials gate waits for the identity)."""
        for target in targets:
            if target.region:
                self.pool.submit(_quiet_scope, target)
                self.pool.submit(_quiet_identity, target)

    def plan(self, items: Iterable[pytest.Item]) -> None:
        """Remember the selected items that evaluate something, by target; in eager mode queue them all."""
        from pytest_mlbatch.plugin.items import MlbatchItem

        for item in items:
            if isinstance(item, MlbatchItem) and item.skip_reason is None:
                self._pending.setdefault(item.target.label, []).append(item)
        if self.eager:
            for label in list(self._pending):
                self._start(label)

    def _start(self, label: str) -> None:
        with self._lock:
            items = self._pending.pop(label, [])
            if self._closed:
                return
            if items:  # the first wave: every part these checks read, its chains of reads side by side
                for read in first_wave(items[0].target, {item.check.area for item in items}):
                    self.pool.submit(read)
            for item in _spread(items):
                self._futures[id(item)] = self.pool.submit(run, self.runtime, item.check, item.target,
                                                           item.resource)

    # -- serving ---------------------------------------------------------------------------------------
    def result(self, item: MlbatchItem) -> ItemResult:
        if item.target.label in self._pending:
            self._start(item.target.label)
            if not self.eager:  # an xdist worker: also the targets already queued on this worker
                from pytest_mlbatch.plugin.xdist import queued_targets

                for label in queued_targets(item.session) & set(self._pending):
                    self._start(label)
        with self._lock:
            future = self._futures.pop(id(item), None)
        if future is None or future.cancel():  # not queued, or not started yet: run it here, now
            return run(self.runtime, item.check, item.target, item.resource)
        return progress.wait(future, [item.target], self.write, f"{item.check.id} {item.resource.id}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._futures.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _spread(items: list[MlbatchItem]) -> list[MlbatchItem]:
    """Each check's first resource first, then each check's second, ...: the first evaluations in flight belong to
    different checks, so they ask for different reads (a check's resources mostly share theirs)."""
    rank: dict[str, int] = {}
    keyed = []
    for index, item in enumerate(items):
        n = rank.get(item.check.id, 0)
        rank[item.check.id] = n + 1
        keyed.append((n, index, item))
    return [item for _, _, item in sorted(keyed, key=lambda k: k[:2])]


HINTS_KEY = "mlbatch/prefetch"


def fingerprint(runtime: Runtime, target: Target, check_ids: list[str]) -> str:
    """What a recorded list of queries depends on: settings, the target, the selected checks."""
    text = repr((runtime.settings, target.spec, sorted(check_ids)))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def recorded_queries(target: Target) -> list[str]:
    """The successful call/paginate cache keys of a target's inventory, in the order they were first asked."""
    snap = target.snapshot()["answers"]
    return [key for key, (status, _) in snap.items() if status == "ok" and key.startswith(('["call"', '["pages"'))]


def replay(target: Target, key: str) -> None:
    """Issue one recorded query through the target's inventory (so it lands in the cache under the same key)."""
    from pytest_mlbatch.aws.inventory import AwsError

    try:
        parts = json.loads(key)
    except ValueError:
        return
    with contextlib.suppress(AwsError):
        if parts[0] == "call" and len(parts) == 5:
            _, service, region, method, params = parts
            target.inventory.call(service, method, region=region, **params)
        elif parts[0] == "pages" and len(parts) == 6:
            _, service, region, method, result_key, params = parts
            target.inventory.paginate(service, method, result_key, region=region, **params)


def _quiet_scope(target: Target) -> None:
    target.scope()  # never raises: discovery failures are recorded as scope problems


def _quiet_identity(target: Target) -> None:
    from pytest_mlbatch.aws.inventory import AwsError

    with contextlib.suppress(AwsError):  # reported by ENV001 and the gate, which ask again (cached)
        target.identity()




class PrefetchPlugin:
    """Registered with the preflight: starts the pool after collection, stops it at the end of the session."""

    def __init__(self, config: pytest.Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        workers = concurrency(config)
        self.prefetcher: Prefetcher | None = None
        self.reads: ThreadPoolExecutor | None = None
        if workers > 1 and not runtime.fix:
            eager = not hasattr(config, "workerinput")
            self.prefetcher = Prefetcher(runtime, workers * EVALUATIONS_PER_CALL, eager=eager)
            # the loaders' read-ahead (Inventory.read_ahead): its own pool, so reads never queue behind evaluations
            self.reads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlbatch-read")
            for target in runtime.targets:
                target.use_concurrency(self.reads, workers)
        if self.prefetcher is not None:
            config.stash[RESULTS] = self.prefetcher.result

    def _check_ids(self) -> list[str]:
        """The catalog plus what selects from it (-k, -m, paths), so a hint recorded for a full run is not replayed
        for a `-k KEY001` run."""
        opt = self.config.option
        selection = [f"-k {getattr(opt, 'keyword', '')}", f"-m {getattr(opt, 'markexpr', '')}", *self.config.args]
        return [c.id for c in self.runtime.checks()] + selection

    def _hints(self) -> dict[str, Any]:
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return {}
        found = cache.get(HINTS_KEY, {})
        return found if isinstance(found, dict) else {}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.prefetcher is None or hasattr(self.config, "workerinput"):
            return
        self.prefetcher.warm_scopes(self.runtime.targets)
        hints = self._hints()
        for target in self.runtime.targets:
            hint = hints.get(target.label)
            if (target.region and isinstance(hint, dict)
                    and hint.get("fingerprint") == fingerprint(self.runtime, target, self._check_ids())):
                for key in hint.get("queries", []):
                    self.prefetcher.pool.submit(replay, target, str(key))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.prefetcher is not None and not session.config.option.collectonly:
            self.prefetcher.write = progress.writer(session.config)
            self.prefetcher.plan(session.items)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.reads is not None:
            for target in self.runtime.targets:
                target.use_concurrency(None, None)
            self.reads.shutdown(wait=True, cancel_futures=True)
        if self.prefetcher is not None:
            self.prefetcher.close()
            cache = getattr(self.config, "cache", None)
            eager = self.prefetcher.eager
            controller = self.config.pluginmanager.has_plugin("dsession")  # xdist controller: no items here
            if cache is not None and eager and not controller and not self.runtime.fix and session.testscollected:
                hints = {t.label: {"fingerprint": fingerprint(self.runtime, t, self._check_ids()),
                                   "queries": recorded_queries(t)} for t in self.runtime.targets if t.region}
                with contextlib.suppress(Exception):  # a read-only or odd cache dir is no reason to fail a run
                    cache.set(HINTS_KEY, hints)
