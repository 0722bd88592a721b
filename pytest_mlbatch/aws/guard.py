"""The one place that decides which AWS operations may be sent: reads always, create-only writes in a fix."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "BatchCheck", "Simulate", "Search", "Lookup", "Validate")
READ_EXACT = {"AssumeRole", "GetCallerIdentity"}
# The only kinds of change --fix may make: create, authorize, attach, import, put, tag (+ allocate an address,
# add a role to a profile, which are creations too).
WRITE_PREFIXES = ("Create", "Authorize", "Attach", "Import", "Put", "Tag", "Allocate", "Add")
NEVER = re.compile(r"^(Delete|Revoke|Detach|Remove|Replace|Modify|Update|Disassociate|Deregister|Release|Untag|"
                   r"Terminate|Stop|Cancel|Reset|Disable|Set|Reject|Restore)")


class ForbiddenCall(Exception):
    """An operation that pytest-mlbatch must never send (or not outside a fix)."""


def is_read(op: str) -> bool:
    return op in READ_EXACT or op.startswith(READ_PREFIXES)


def is_allowed_write(op: str) -> bool:
    return op.startswith(WRITE_PREFIXES) and not NEVER.match(op)


class Guard:
    """Installed on every client the inventory makes; refuses anything but reads unless a fix is applying."""

    def __init__(self) -> None:
        self._local = threading.local()

    def install(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._remember)
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)
        signing_name = str(client.meta.service_model.signing_name)

        def after_error(event_name: str = "", exception: BaseException | None = None, **_: Any) -> None:
            self._unanswered(f"{signing_name}:{event_name.rsplit('.', 1)[-1]}", exception)

        client.meta.events.register("after-call-error", after_error)

    def _state(self) -> tuple[Any, str, str] | None:
        state: tuple[Any, str, str] | None = getattr(self._local, "state", None)
        return state

    @contextlib.contextmanager
    def allow(self, journal: Any, check_id: str, resource: str) -> Iterator[None]:
        previous = self._state()
        self._local.state = (journal, check_id, resource)
        try:
            yield
        finally:
            self._local.state = previous

    @contextlib.contextmanager
    def permit(self, call: str, allowed: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[None]:
        """While this block runs, let exactly one named write through (the opt-in canary's "batch:SubmitJob", or
        "batch:TerminateJob" of its own job), when `allowed` accepts its API parameters. Every other write stays
        refused as before."""
        previous = getattr(self._local, "permit", None)
        self._local.permit = (call, allowed)
        try:
            yield
        finally:
            self._local.permit = previous

    def _permitted(self, call: str) -> bool:
        permit = getattr(self._local, "permit", None)
        if permit is None or permit[0] != call:
            return False
        return permit[1] is None or bool(permit[1](dict(getattr(self._local, "api_params", None) or {})))

    def _remember(self, params: Any = None, **_: Any) -> None:
        """The API parameters of the call about to be sent (before-call only sees the serialized request)."""
        self._local.api_params = params

    def _before(self, model: Any, params: Any = None, **_: Any) -> None:
        op = str(model.name)
        service = str(model.service_model.signing_name)
        if is_read(op) or self._permitted(f"{service}:{op}"):
            return
        if self._state() is None:
            raise ForbiddenCall(f"{service}:{op} is not a read, and no fix is being applied")
        if not is_allowed_write(op):
            raise ForbiddenCall(f"{service}:{op} is never sent by pytest-mlbatch (create-only fixes)")

    def _unanswered(self, call: str, exception: BaseException | None) -> None:
        """A change sent without an answer (timeout, dropped connection): it may or may not have happened."""
        state = self._state()
        if state is None or is_read(call.split(":", 1)[1]):
            return
        journal, check_id, resource = state
        if journal is not None:
            journal.record_unanswered(check_id, resource, call, f"{type(exception).__name__}: {exception}"[:300])

    def _after(self, model: Any, http_response: Any = None, parsed: Any = None, **_: Any) -> None:
        op = str(model.name)
        state = self._state()
        if is_read(op) or state is None:
            return
        journal, check_id, resource = state
        if journal is not None:
            ok = bool(http_response is not None and http_response.status_code < 400)
            journal.record_call(check_id, resource, f"{model.service_model.signing_name}:{op}", ok, parsed or {})
