"""The documented IAM policies are current (derived from the registry) and cover what the plugin really calls."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from pytest_mlbatch.aws.guard import is_read
from pytest_mlbatch.engine.registry import PERMISSION_RE, load_checks

ROOT = Path(__file__).resolve().parent.parent


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("least_privilege", ROOT / "scripts" / "least_privilege.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["least_privilege"] = module
    spec.loader.exec_module(module)
    return module


def test_policy_files_are_current() -> None:
    lp = script()
    readonly, fix, _ = lp.derive()
    for path, policy in ((lp.READONLY_FILE, readonly), (lp.FIX_FILE, fix)):
        assert path.exists(), f"missing {path}: run python scripts/least_privilege.py"
        assert json.loads(path.read_text()) == policy, f"{path} is out of date: run python scripts/least_privilege.py"
    assert lp.main(["--check"]) == 0


def test_readonly_policy_only_reads_and_fix_policy_only_creates() -> None:
    lp = script()
    readonly, fix, users = lp.derive()
    read_actions = readonly["Statement"][0]["Action"]
    for action in read_actions:
        assert PERMISSION_RE.match(action), action
        name = action.split(":", 1)[1]
        assert is_read(name) or name == "*" or action == "iam:PassRole", f"{action} (from {users[action]}) writes"
    for action in fix["Statement"][0]["Action"]:
        name = action.split(":", 1)[1]
        assert not re.match(r"(Delete|Revoke|Detach|Remove|Replace|Modify|Update|Set|Disassociate)", name), action
        assert action not in read_actions
    assert "*" not in json.dumps(readonly["Statement"][0]["Action"]), "no wildcard actions"


def test_every_check_declares_permissions_it_reads_with() -> None:
    """A check that reads AWS declares what it reads (ENV002 and local-only checks declare none)."""
    lp = script()
    readonly, _, users = lp.derive()
    for check in load_checks():
        for action in check.permissions:
            assert check.id in users[action]
    assert "sts:GetCallerIdentity" in readonly["Statement"][0]["Action"]


def test_markdown_section_has_both_policies() -> None:
    text = script().markdown()
    assert "iam-policy-readonly.json" in text and "iam-policy-fix.json" in text
    assert text.count("```json") == 2


def test_canary_policy_is_current_and_the_only_place_submit_and_terminate_appear() -> None:
    lp = script()
    readonly, fix, _ = lp.derive()
    canary = lp.canary_policy()
    assert json.loads(lp.CANARY_FILE.read_text()) == canary
    actions = canary["Statement"][0]["Action"]
    assert {"batch:SubmitJob", "batch:TerminateJob", "batch:TagResource"} <= set(actions)
    for policy in (readonly, fix):
        assert not {"batch:SubmitJob", "batch:TerminateJob"} & set(policy["Statement"][0]["Action"])
