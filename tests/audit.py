"""Session-wide audit of every AWS call made in the test process; flags what a fixer must never send.

Installed once by conftest: every botocore client call is recorded (service, operation, whether a fix was being
applied, by which check). A call made while a fix is applying is a violation if it deletes, revokes, detaches,
removes, replaces, or modifies in a way that can narrow access, or if a Put would overwrite something that
exists (an inline policy, a repository policy, an image tag). conftest fails the test in which it happened.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

DESTRUCTIVE = re.compile(r"^(Delete|Revoke|Detach|Remove|Replace|Disassociate|Deregister|Release|Untag|Terminate|"
                         r"Stop|Cancel|Reset|Disable|Reject|Restore|Purge|Batch(Delete|Detach|Remove))")
MODIFY = re.compile(r"^(Modify|Update|Set|Change|Edit|Reboot|Rotate)")
# Puts that always narrow or destroy, whatever exists.
NARROWING_PUTS = {"iam:PutRolePermissionsBoundary", "iam:PutUserPermissionsBoundary", "ecr:PutLifecyclePolicy",
                  "ecr:PutImageTagMutability", "ecr:PutRegistryPolicy", "ecr:PutReplicationConfiguration"}


@dataclass(frozen=True)
class Call:
    operation: str  # "ec2:DescribeKeyPairs"
    fixing: str | None  # "KEY001 ml-batch-key" while a fix applies, else None
    violation: str | None

    @property
    def mutating(self) -> bool:
        from pytest_mlbatch.aws.guard import is_read

        return not is_read(self.operation.split(":", 1)[1])


def _widening_modify(op: str, params: dict[str, Any]) -> bool:
    """The few modifies that only ever open up (turning DNS or public IPs on)."""
    if op in ("ec2:ModifyVpcAttribute", "ec2:ModifySubnetAttribute"):
        values = [v for v in params.values() if isinstance(v, dict) and "Value" in v]
        return bool(values) and all(v["Value"] is True for v in values)
    return False


def _exists(probe: Callable[[str, dict[str, Any]], Any], op: str, params: dict[str, Any]) -> bool:
    """Whether a Put would replace something: ask the same client with the matching read."""
    try:
        if op in ("iam:PutRolePolicy", "iam:PutUserPolicy", "iam:PutGroupPolicy"):
            kind = op.split("Put", 1)[1].replace("Policy", "")  # Role | User | Group
            probe(f"Get{kind}Policy", {f"{kind}Name": params[f"{kind}Name"], "PolicyName": params["PolicyName"]})
            return True
        if op == "ecr:PutRepositoryPolicy":
            probe("GetRepositoryPolicy", {"repositoryName": params["repositoryName"],
                                          **({"registryId": params["registryId"]} if "registryId" in params else {})})
            return True
        if op == "ecr:PutImage" and params.get("imageTag"):
            found = probe("BatchGetImage", {"repositoryName": params["repositoryName"],
                                            "imageIds": [{"imageTag": params["imageTag"]}]})
            return bool(found.get("images"))
    except Exception:
        return False
    return False


# Overwrites the contract itself asks for, by (check, operation), only when the config opts in (fix.allow:
# [move_tag]). CHECKS.md: IMG003's fix "push the local image"
# moves the configured tag to the local image. Anything else that overwrites is a violation.
SANCTIONED = {("IMG003", "ecr:PutImage")}


def judge(op: str, params: dict[str, Any], probe: Callable[[str, dict[str, Any]], Any],
          check_id: str = "") -> str | None:
    """Why a call made by a fixer is forbidden, or None."""
    name = op.split(":", 1)[1]
    if (check_id, op) in SANCTIONED:
        return None
    if DESTRUCTIVE.match(name):
        return f"{op} deletes, revokes, detaches or replaces"
    if MODIFY.match(name) and not _widening_modify(op, params):
        return f"{op} modifies something that exists (it may narrow access)"
    if op in NARROWING_PUTS:
        return f"{op} narrows or destroys whatever it applies to"
    if op == "iam:CreatePolicyVersion" and params.get("SetAsDefault"):
        return f"{op} with SetAsDefault replaces the policy in force"
    if name.startswith("Put") and _exists(probe, op, params):
        return f"{op} would overwrite an existing {name[3:]}"
    return None


class Audit:
    """Records calls; thread-safe. `install()` patches botocore and the plugin's guard once per process."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._installed = False

    def fixing(self) -> str | None:
        who: str | None = getattr(self._local, "who", None)
        return who

    @contextlib.contextmanager
    def applying(self, who: str) -> Iterator[None]:
        previous = self.fixing()
        self._local.who = who
        try:
            yield
        finally:
            self._local.who = previous

    def install(self) -> None:
        if self._installed:
            return
        from botocore.client import BaseClient

        from pytest_mlbatch.aws.guard import Guard

        audit = self
        original_call = BaseClient._make_api_call
        original_allow = Guard.allow

        def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if getattr(audit._local, "probing", False):
                return original_call(client, operation_name, api_params)
            op = f"{client.meta.service_model.signing_name}:{operation_name}"
            who = audit.fixing()
            violation = None
            if who is not None:
                def probe(name: str, params: dict[str, Any]) -> Any:
                    audit._local.probing = True
                    try:
                        return original_call(client, name, params)
                    finally:
                        audit._local.probing = False

                violation = judge(op, api_params, probe, who.split(" ", 1)[0])
            with audit._lock:
                audit.calls.append(Call(op, who, violation))
            return original_call(client, operation_name, api_params)

        @contextlib.contextmanager
        def allow(guard: Any, journal: Any, check_id: str, resource: str, *args: Any, **kwargs: Any) -> Iterator[None]:
            with audit.applying(f"{check_id} {resource}"), original_allow(guard, journal, check_id, resource, *args,
                                                                          **kwargs):
                yield

        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
        Guard.allow = allow  # type: ignore[method-assign,assignment]
        self._installed = True

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        with self._lock:
            return list(self.calls[mark:])

    def violations(self, mark: int = 0) -> list[Call]:
        return [c for c in self.since(mark) if c.violation]

    def forget(self, mark: int) -> None:
        """Drop what was recorded since `mark` (tests of the audit itself, after asserting on it)."""
        with self._lock:
            del self.calls[mark:]


AUDIT = Audit()
