"""Helpers of the reliability tests: which operations each check read, the catalog scenario, the IAM policies' reach.

The fault-injecting moto server itself is tests/wsgi_backend.py.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        """A read by the current check; a read made while computing a memoized value is also remembered for
        that value."""
        (self.needs if ok else self.failed).setdefault(self.current(), set()).add(op)
        if ok:
            for collector in getattr(self.local, "collectors", []):
                collector.add(op)

    def reset(self) -> None:
        self.needs.clear()
        self.failed.clear()

    def ops(self) -> set[str]:
        return set().union(*self.needs.values()) if self.needs else set()


def result_key(check_id: str, target: str | None, resource: str) -> str:
    return f"{check_id}[{target}/{resource}]"


def seed_catalog_scenario(aws: Any, state_dir: Path) -> dict[str, Any]:
    """The sandbox's sample ML batch environment (with its real problems) on the test's moto server: a scenario
    in which as many checks of the catalog as possible have data to read."""
    from pytest_mlbatch import sandbox

    return sandbox.seed(aws.endpoint, state_dir)


# API operations whose IAM action has another name.
ACTION_OF = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadBucket": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}


def iam_actions(kind: str) -> set[str]:
    """The actions of docs/iam-policy-<kind>.json (readonly or fix)."""
    doc = json.loads((Path(__file__).resolve().parent.parent / "docs" / f"iam-policy-{kind}.json").read_text())
    return {a for st in doc["Statement"] for a in st["Action"]}


def uncovered(ops: set[str] | list[str], kind: str) -> list[str]:
    """Operations the documented policy does not grant."""
    granted = iam_actions(kind) | (iam_actions("readonly") if kind == "fix" else set())
    return sorted({op for op in ops if ACTION_OF.get(op, op) not in granted})
