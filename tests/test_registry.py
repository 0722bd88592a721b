"""Meta-tests of the catalog: ids, metadata, fixers' permissions, and agreement with the CHECKS.md contract."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pytest_mlbatch.engine.registry import ID_RE, PERMISSION_RE, REGISTRY, SLUG_RE, Registry, check, load_checks
from pytest_mlbatch.findings import Finding, Resource, passed

# The contract lives in shared/, beside the checkout (CI clones next to a copy of it).
CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "spec" / "CHECKS.md"


# Checks added beyond the contract's floor (CHECKS.md: "ids fixed, may add"): the submitted-job area (issue 17), and the
# fidelity checks (issue 14): DHCP/DNS, endpoint policies, secrets, log groups, offerings, Spot retries, user data.
ADDED = {"JOB001", "JOB002", "NET006", "NET007", "IAM007", "IAM008", "BAT010", "BAT011", "BAT012"}


def contract_rows() -> dict[str, tuple[str, str, bool]]:
    """id -> (slug, severity, has fixer) from CHECKS.md."""
    rows = {}
    for line in CONTRACT.read_text().splitlines():
        m = re.match(r"^\| ([A-Z]+\d{3}) \| ([a-z0-9-]+) \|.*\| (critical|high|medium|low) \| (.*) \|$", line)
        if m:
            fixer = m.group(4).strip()
            rows[m.group(1)] = (m.group(2), m.group(3), not (fixer.startswith("—") or fixer.startswith("-")))
    return rows


CHECKS = list(load_checks())


def need_contract() -> None:
    """Under CI the contract must be there (a copy of shared/ sits beside the clone); elsewhere, skip."""
    if not CONTRACT.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CONTRACT} is missing")
        pytest.skip("shared/spec/CHECKS.md not beside this checkout")


def test_contract_is_readable() -> None:
    need_contract()
    assert len(contract_rows()) == 38


@pytest.mark.parametrize("c", CHECKS, ids=lambda c: c.id)
def test_metadata_complete(c) -> None:  # type: ignore[no-untyped-def]
    assert ID_RE.match(c.id)
    assert SLUG_RE.match(c.slug)
    assert c.title and c.title[0].isupper() and not c.title.endswith(".")
    assert len(c.rationale) > 40 and len(c.remediation) > 20
    assert all(PERMISSION_RE.match(p) for p in c.permissions), c.permissions
    if c.fixer is not None:
        assert c.fix_permissions, f"{c.id}'s fixer declares no permissions"
        assert all(PERMISSION_RE.match(p) for p in c.fix_permissions)
        assert c.fix_summary


@pytest.mark.parametrize("c", CHECKS, ids=lambda c: c.id)
def test_matches_contract(c) -> None:  # type: ignore[no-untyped-def]
    need_contract()
    rows = contract_rows()
    if c.id in ADDED:  # the contract is a floor: checks may be added, under new ids
        assert c.id not in rows, f"{c.id} is added here but the contract has it"
        return
    assert c.id in rows, f"{c.id} is not in CHECKS.md"
    slug, severity, has_fixer = rows[c.id]
    assert (c.slug, c.severity.value) == (slug, severity)
    if c.fixer is not None:
        assert has_fixer, f"{c.id} has a fixer the contract does not list"


def test_duplicate_id_raises() -> None:
    reg = Registry()

    def ev(ctx, res: Resource) -> Finding:  # type: ignore[no-untyped-def]
        return passed()

    kwargs = dict(slug="x-y", title="X", severity="low", resource="target", permissions=[],
                  rationale="r" * 50, remediation="r" * 30, registry=reg)
    check(id="ENV099", **kwargs)(ev)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate check id ENV099"):
        check(id="ENV099", **kwargs)(ev)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad check id"):
        check(id="XYZ001", **kwargs)(ev)  # type: ignore[arg-type]


def test_registry_is_loaded_once() -> None:
    assert load_checks() is REGISTRY
    assert len(REGISTRY) == len(set(REGISTRY.ids()))
