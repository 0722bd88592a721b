"""Progress while the preflight waits on AWS: after a moment, say which read it waits for and for how long."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import pytest

    from pytest_mlbatch.aws.target import Target

T = TypeVar("T")
FIRST_S = 2.0    # "more than a moment": nothing is said about a wait shorter than this
EVERY_S = 10.0   # then a line every this many seconds while the wait goes on
Write = Callable[[str], None]


def writer(config: pytest.Config) -> Write | None:
    """Write a line in pytest's terminal (the controller's; xdist workers have none that anyone sees)."""
    if hasattr(config, "workerinput"):
        return None
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or config.getoption("verbose", 0) < -1:
        return None

    def write(line: str) -> None:
        tr.write_line(line)

    return write


def describe(targets: Iterable[Target], named: int = 2) -> str:
    """'ec2:DescribeSubnets in us-east-1 (12 s), iam:ListRoles in us-east-1 (12 s), and 2 more reads': the reads in
    flight longest first, at most `named` of them by name; '' when no read is in flight."""
    reads = sorted((r for t in targets for r in t.reads_in_flight()), key=lambda r: -r[2])
    if not reads:
        return ""
    shown = ", ".join(f"{op} in {region} ({seconds:.0f} s)" for op, region, seconds in reads[:named])
    rest = len(reads) - named
    return shown + (f", and {rest} more read{'s' if rest > 1 else ''}" if rest > 0 else "")


def wait(future: Future[T], targets: Iterable[Target], write: Write | None, doing: str) -> T:
    """future.result(), saying what it waits for (in pytest's terminal) once it has waited more than a moment."""
    if write is None:
        return future.result()
    targets = list(targets)
    start = time.monotonic()
    due = FIRST_S
    while True:
        try:
            return future.result(timeout=max(0.05, due - (time.monotonic() - start)))
        except TimeoutError:
            waited = time.monotonic() - start
            reads = describe(targets)
            if reads:
                write(f"mlbatch: {doing}: waiting {waited:.0f} s for {reads}")
            due = waited + EVERY_S


def call(fn: Callable[[], T], targets: Iterable[Target], write: Write | None, doing: str) -> T:
    """fn() in a helper thread, waited for as wait() does (run in place when there is no one to tell)."""
    if write is None:
        return fn()
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="mlbatch-progress", daemon=True).start()
    return wait(future, targets, write, doing)


__all__ = ["call", "describe", "wait", "writer"]


