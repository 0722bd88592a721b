"""Derive the IAM policies pytest-mlbatch needs from the check registry: read-only for the preflight, extra for --fix.

    python scripts/least_privilege.py            # (re)write docs/iam-policy-{readonly,fix,canary}.json
    python scripts/least_privilege.py --check    # exit 1 if either file is out of date
    python scripts/least_privilege.py --markdown # print the README section

The read-only policy is the union of every check's declared `permissions` plus what the run needs outside any
check (the credentials gate). The fix policy is the union of every fixer's `fix_permissions` that the read-only
policy does not already grant: attach it only when running `--fix`. The canary policy is what `--mlbatch-canary`
sends (batch:SubmitJob, batch:TerminateJob of its own job, batch:TagResource): attach it only for that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READONLY_FILE = ROOT / "docs" / "iam-policy-readonly.json"
FIX_FILE = ROOT / "docs" / "iam-policy-fix.json"
CANARY_FILE = ROOT / "docs" / "iam-policy-canary.json"
# Calls made outside any check: the credentials gate and every target's identity.
ALWAYS = ("sts:GetCallerIdentity",)


def _policy(sid: str, actions: list[str]) -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": "*"}]}


def derive() -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """(read-only policy, fix policy, {action: [check ids that need it]})."""
    from pytest_mlbatch.engine.registry import load_checks

    readonly: dict[str, set[str]] = {a: {"(run)"} for a in ALWAYS}
    fix: dict[str, set[str]] = {}
    for check in load_checks():
        for action in check.permissions:
            readonly.setdefault(action, set()).add(check.id)
        for action in check.fix_permissions:
            fix.setdefault(action, set()).add(check.id)
    fix_only = sorted(set(fix) - set(readonly), key=str.lower)
    users = {a: sorted(readonly.get(a, set()) | fix.get(a, set())) for a in {*readonly, *fix}}
    return (_policy("PytestMlbatchPreflightReadOnly", sorted(readonly, key=str.lower)),
            _policy("PytestMlbatchFix", fix_only), users)


def canary_policy() -> dict[str, Any]:
    """The writes checks send themselves when the user opts in (--mlbatch-canary): attach only for that."""
    from pytest_mlbatch.engine.registry import load_checks

    actions = sorted({a for c in load_checks() for a in c.run_permissions}, key=str.lower)
    return _policy("PytestMlbatchCanary", actions)


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def markdown() -> str:
    readonly, fix, _ = derive()
    return (
        "## Least privilege\n\n"
        "The preflight only reads. Give the identity that runs it this policy (`docs/iam-policy-readonly.json`, "
        "generated from the checks' declared permissions by `scripts/least_privilege.py`):\n\n"
        f"```json\n{render(readonly)}```\n\n"
        "`--fix` creates what is missing and never deletes, revokes, detaches or overwrites. It needs these "
        "extra permissions, and only while fixing (`docs/iam-policy-fix.json`):\n\n"
        f"```json\n{render(fix)}```\n\n"
        "`--fix-dry-run` needs nothing beyond the read-only policy: it prints each fix's exact API calls and "
        "permissions and changes nothing.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the policy files are out of date")
    parser.add_argument("--markdown", action="store_true", help="print the README section")
    args = parser.parse_args(argv)
    readonly, fix, _ = derive()
    if args.markdown:
        print(markdown(), end="")
        return 0
    wanted = {READONLY_FILE: render(readonly), FIX_FILE: render(fix), CANARY_FILE: render(canary_policy())}
    if args.check:
        stale = [str(p.relative_to(ROOT)) for p, text in wanted.items()
                 if not p.exists() or p.read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)} (run python scripts/least_privilege.py)", file=sys.stderr)
            return 1
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
