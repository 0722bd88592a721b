"""Fixtures for the reliability suites: the fault server, per-check call attribution, and the catalog scenario."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from backends import Aws
from faults import FaultInjector, FaultServer

from pytest_mlbatch import engine
from pytest_mlbatch.inventory import AwsError, Inventory


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def faulty(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultInjector]:
    """The plugin (and boto3 in this process) talk to the fault server; `aws.client()` still arranges cleanly.
    (No reset: ask for `aws` too when the test needs a clean account.)"""
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.endpoint)
    fault_server.injector.clear()
    yield fault_server.injector
    fault_server.injector.clear()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep botocore's retries (3 attempts, standard mode) but make their sleeps tiny, so loops stay fast."""
    import botocore.retries.standard as standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.001)


OUTSIDE = "(outside a check)"


@dataclass
class CallLog:
    """Which AWS operations each (check, resource) read through the inventory, cache hits included."""

    needs: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, set[str]] = field(default_factory=dict)
    local: threading.local = field(default_factory=threading.local)

    def current(self) -> str:
        return str(getattr(self.local, "key", OUTSIDE))

    def note(self, op: str, ok: bool) -> None:
        (self.needs if ok else self.failed).setdefault(self.current(), set()).add(op)

    def reset(self) -> None:
        self.needs.clear()
        self.failed.clear()

    def ops(self) -> set[str]:
        return set().union(*self.needs.values()) if self.needs else set()


def result_key(check_id: str, target: str | None, resource: str) -> str:
    return f"{check_id}[{target}/{resource}]"


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
            except AwsError:
                log.note(op, False)
                raise
            log.note(op, True)
            return result

        return recorded

    monkeypatch.setattr(engine, "evaluate", evaluate)
    monkeypatch.setattr(Inventory, "call", wrap(orig_call))
    monkeypatch.setattr(Inventory, "paginate", wrap(orig_paginate))
    return log


def seed_catalog_scenario(aws: Aws, state_dir: Path) -> dict[str, Any]:
    """The sandbox's sample ML batch environment (with its real problems) on the test's moto server: a scenario
    in which as many checks of the catalog as possible have data to read."""
    from pytest_mlbatch import sandbox

    raw = sandbox.seed(aws.endpoint, state_dir)
    return raw
