"""Which AWS operations may be sent: reads always; inside a fix, only its plan's declared create-only calls."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "BatchCheck", "Simulate", "Search", "Lookup", "Validate")
READ_EXACT = {"AssumeRole", "GetCallerIdentity"}
# The only kinds of change --fix may make: create, authorize, attach, import, put, tag (+ allocate an address,
# add a role to a profile, which are creations too).
WRITE_PREFIXES = ("Create", "Authorize", "Attach", "Import", "Put", "Tag", "Allocate", "Add")
NEVER = re.compile(r"^(Delete|Revoke|Detach|Remove|Replace|Modify|Update|Disassociate|Deregister|Release|Untag|"
                   r"Terminate|Stop|Cancel|Reset|Disable|Set|Reject|Restore)")
# Writes that replace what exists when their target exists already. Inside a fix each is sent only after the probe
# below found its target absent; one without a probe is never sent.
OVERWRITING = re.compile(r"^(Put|Tag|CreatePolicyVersion$|CreateNetworkAclEntry$)")
# Parameters never written to the journal (secrets, or bulky material that says nothing about what was created).
SECRET_PARAM = re.compile(r"(?i)(password|secret|token|private|credential|materi|userdata|manifest|document)")


class ForbiddenCall(Exception):
    """An operation that pytest-mlbatch must never send (or not outside a fix)."""


def is_read(op: str) -> bool:
    return op in READ_EXACT or op.startswith(READ_PREFIXES)


def is_allowed_write(op: str) -> bool:
    return op.startswith(WRITE_PREFIXES) and not NEVER.match(op)


def declared_call(text: str) -> str:
    """'ecr:PutImage (only if ...)' -> 'ecr:PutImage': the operation a plan's call line names."""
    return text.split(" ", 1)[0].strip()


def _absent(client: Any, op: str, params: dict[str, Any]) -> str | None:
    """Why an overwriting call would replace something (None: its target does not exist yet, it only creates)."""
    not_found: tuple[type[BaseException], ...] = tuple(
        getattr(client.exceptions, name) for name in ("NoSuchEntityException", "RepositoryNotFoundException")
        if hasattr(client.exceptions, name))
    try:
        if op == "iam:PutRolePolicy":
            client.get_role_policy(RoleName=params["RoleName"], PolicyName=params["PolicyName"])
            return f"inline policy {params['PolicyName']} of role {params['RoleName']} exists"
        if op == "iam:TagRole":
            have = {t["Key"]: t["Value"] for t in client.list_role_tags(RoleName=params["RoleName"])["Tags"]}
            changed = sorted(t["Key"] for t in params.get("Tags", []) if have.get(t["Key"], t["Value"]) != t["Value"])
            return f"tags {', '.join(changed)} of role {params['RoleName']} have other values" if changed else None
        if op == "ecr:PutImage":
            tag = params.get("imageTag")
            if not tag:
                return "an image without a tag"
            ids = {"repositoryName": params["repositoryName"], "imageIds": [{"imageTag": tag}]}
            if params.get("registryId"):
                ids["registryId"] = params["registryId"]
            found = client.batch_get_image(**ids).get("images", [])
            return f"tag {tag} of {params['repositoryName']} exists" if found else None
    except not_found:
        return None
    return "it can replace what exists and pytest-mlbatch has no way to tell first"


@dataclass
class Permit:
    """What one applying fix may send: its plan's declared calls, on behalf of (check, resource), journaled."""

    journal: Any
    check_id: str
    resource: str
    calls: frozenset[str] | None = None  # None: any create-only write (the pre-plan API, kept for tools and tests)
    plan_id: str = ""
    sanctioned: frozenset[str] = field(default_factory=frozenset)  # overwrites the config opted in to (move_tag)


class Guard:
    """Installed on every client the inventory makes; refuses anything but reads unless a fix is applying."""

    def __init__(self) -> None:
        self._local = threading.local()

    def install(self, client: Any) -> None:
        def before(model: Any, params: Any = None, **_: Any) -> None:
            self._before(client, model, params or {})

        # before-parameter-build carries the API parameters (before-call has only the serialized request)
        client.meta.events.register("before-parameter-build", before)
        client.meta.events.register("after-call", self._after)
        signing_name = str(client.meta.service_model.signing_name)

        def after_error(event_name: str = "", exception: BaseException | None = None, **_: Any) -> None:
            self._unanswered(f"{signing_name}:{event_name.rsplit('.', 1)[-1]}", exception)

        client.meta.events.register("after-call-error", after_error)

    def _state(self) -> Permit | None:
        state: Permit | None = getattr(self._local, "state", None)
        return state

    @contextlib.contextmanager
    def allow(self, journal: Any, check_id: str, resource: str, calls: list[str] | None = None,
              plan_id: str = "", sanctioned: frozenset[str] = frozenset()) -> Iterator[None]:
        previous = self._state()
        declared = frozenset(declared_call(c) for c in calls) if calls is not None else None
        self._local.state = Permit(journal, check_id, resource, declared, plan_id, sanctioned)
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

    def _permitted(self, call: str, params: dict[str, Any]) -> bool:
        permit = getattr(self._local, "permit", None)
        if permit is None or permit[0] != call:
            return False
        return permit[1] is None or bool(permit[1](dict(params)))

    def _before(self, client: Any, model: Any, params: dict[str, Any]) -> None:
        op = str(model.name)
        service = str(model.service_model.signing_name)
        if is_read(op) or self._permitted(f"{service}:{op}", params):
            return
        state = self._state()
        call = f"{service}:{op}"
        if state is None:
            raise ForbiddenCall(f"{call} is not a read, and no fix is being applied")
        if not is_allowed_write(op):
            raise ForbiddenCall(f"{call} is never sent by pytest-mlbatch (create-only fixes)")
        if state.calls is not None and call not in state.calls:
            raise ForbiddenCall(f"{call} is not one of the calls the plan of {state.check_id} {state.resource} "
                                f"declared ({', '.join(sorted(state.calls)) or 'none'})")
        if OVERWRITING.match(op) and call not in state.sanctioned:
            why = self._probing(lambda: _absent(client, call, params))
            if why is not None:
                raise ForbiddenCall(f"{call} refused: {why}; --fix never overwrites")
        if state.journal is not None and hasattr(state.journal, "record_intent"):
            state.journal.record_intent(state.check_id, state.resource, state.plan_id, call, journal_params(params))

    def _probing(self, probe: Callable[[], str | None]) -> str | None:
        """Run a read while no fix is applying, so it is neither journaled nor mistaken for the fix's own call."""
        state = self._state()
        self._local.state = None
        try:
            return probe()
        finally:
            self._local.state = state

    def _unanswered(self, call: str, exception: BaseException | None) -> None:
        """A change sent without an answer (timeout, dropped connection): it may or may not have happened."""
        state = self._state()
        if state is None or is_read(call.split(":", 1)[1]):
            return
        if state.journal is not None:
            state.journal.record_unanswered(state.check_id, state.resource, call,
                                            f"{type(exception).__name__}: {exception}"[:300])

    def _after(self, model: Any, http_response: Any = None, parsed: Any = None, **_: Any) -> None:
        op = str(model.name)
        state = self._state()
        if is_read(op) or state is None:
            return
        if state.journal is not None:
            ok = bool(http_response is not None and http_response.status_code < 400)
            state.journal.record_call(state.check_id, state.resource, f"{model.service_model.signing_name}:{op}", ok,
                                      parsed or {})


def journal_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a call as the journal keeps them: no secret, nothing bulky."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if SECRET_PARAM.search(key) and key != "ClientToken":
            out[key] = "<not recorded>"
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value if not isinstance(value, str) else value[:200]
        else:
            out[key] = str(value)[:300]
    return out
