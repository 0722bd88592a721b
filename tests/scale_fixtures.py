"""Fixtures for the scale, xdist and targets tests: a counting (optionally slow, faulty) moto endpoint; report diffs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backends import Aws
from wsgi_backend import MotoMiddleware


@pytest.fixture(scope="session")
def counting_server() -> Iterator[MotoMiddleware]:
    """One middleware server for the session; it serves the same in-process moto state as the `aws` fixture."""
    with MotoMiddleware() as server:
        yield server


@pytest.fixture
def counted(aws: Aws, counting_server: MotoMiddleware, monkeypatch: pytest.MonkeyPatch) -> MotoMiddleware:
    """A clean moto (via `aws`), and the plugin's environment pointed at the counting middleware."""
    counting_server.clear()
    counting_server.latency = 0.0
    monkeypatch.setenv("AWS_ENDPOINT_URL", counting_server.endpoint)
    return counting_server


@pytest.fixture
def comparable() -> Callable[[dict[str, Any]], list[tuple[Any, ...]]]:
    """The function below, for tests (so they need not import this module, which pytest_plugins loads)."""
    return _comparable


def _comparable(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A report's results without timings, in a stable order: what must be equal across run modes."""
    keys = ("target", "account", "region", "check_id", "resource", "outcome", "severity", "message")
    return sorted(tuple(json.dumps(r.get(k)) for k in keys) for r in report["results"])
