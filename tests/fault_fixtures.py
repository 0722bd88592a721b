"""Fixtures for the reliability suites: the fault server, per-check call attribution, and the catalog scenario."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faults import CallLog, result_key
from wsgi_backend import MotoMiddleware

from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.engine import runner as engine


@pytest.fixture(scope="session")
def fault_server() -> Iterator[MotoMiddleware]:
    with MotoMiddleware() as server:
        yield server


@pytest.fixture
def faulty(fault_server: MotoMiddleware, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoMiddleware]:
    """The plugin (and boto3 in this process) talk to the fault server; `aws.client()` still arranges cleanly.
    (No reset: ask for `aws` too when the test needs a clean account.)"""
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.endpoint)
    fault_server.clear()
    yield fault_server
    fault_server.clear()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep botocore's retries (3 attempts, standard mode) but make their sleeps tiny, so loops stay fast."""
    import botocore.retries.standard as standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.001)


@pytest.fixture
def call_log(monkeypatch: pytest.MonkeyPatch) -> CallLog:
    log = CallLog()
    orig_evaluate = engine.evaluate
    orig_call, orig_paginate = Inventory.call, Inventory.paginate

    def evaluate(ctx: Any, resource: Any) -> Any:
        previous = getattr(log.local, "key", None)
        log.local.key = result_key(ctx.check.id, ctx.target.label, resource.id)
        try:
            return orig_evaluate(ctx, resource)
        finally:
            if previous is None:
                del log.local.key
            else:
                log.local.key = previous

    def wrap(orig: Any) -> Any:
        def recorded(self: Inventory, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
            op = self.operation_name(self.client(service, kwargs.get("region")), method)
            try:
                result = orig(self, service, method, *args, **kwargs)
            except AwsError as exc:
                # "not found" and other answers of the service are data the check used; faults are not
                log.note(op, exc.kind == "client")
                raise
            log.note(op, True)
            return result

        return recorded

    orig_memo = Inventory.memo
    memo_ops: dict[tuple[int, str], set[str]] = {}

    def memo(self: Inventory, name: str, fetch: Any) -> Any:
        """Whoever uses a memoized value needs every read made to compute it."""
        key = (id(self), name)

        def collecting() -> Any:
            stack = log.local.__dict__.setdefault("collectors", [])
            stack.append(memo_ops.setdefault(key, set()))
            try:
                return fetch()
            finally:
                stack.pop()

        try:
            return orig_memo(self, name, collecting)
        finally:
            for op in sorted(memo_ops.get(key, set())):
                log.note(op, True)

    monkeypatch.setattr(Inventory, "memo", memo)
    monkeypatch.setattr(engine, "evaluate", evaluate)
    monkeypatch.setattr(Inventory, "call", wrap(orig_call))
    monkeypatch.setattr(Inventory, "paginate", wrap(orig_paginate))
    return log
