"""--mlbatch-list-checks: the catalog as a table, or as JSON with --mlbatch-json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def print_catalog(config: pytest.Config) -> int:
    from .registry import load_checks

    registry = load_checks()
    rows = [c.metadata() for c in registry]
    json_path = config.getoption("mlbatch_json")
    if json_path:
        path = Path(config.invocation_params.dir) / json_path
        path.write_text(json.dumps({"checks": rows}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {len(rows)} checks to {path}")
        return 0
    for c in rows:
        fixer = c["fixer"] or "—"
        print(f"{c['id']:<7} {c['severity']:<9} {c['title']}  [fix: {fixer}]")
    return 0
