"""The check catalog: --mlbatch-list-checks (a table, or JSON with --mlbatch-json) and docs/checks.md.

`python -m pytest_mlbatch.output.catalog --write docs/checks.md` regenerates the Markdown from the registry, the single
source; `--check docs/checks.md` exits 1 when the file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mlbatch import __version__

if TYPE_CHECKING:
    import pytest

    from pytest_mlbatch.engine.registry import Registry

REGENERATE = "python -m pytest_mlbatch.output.catalog --write docs/checks.md"
DETAILS = "python -m pytest_mlbatch.output.catalog"  # prints the Markdown catalog from the installed package


def catalog(registry: Registry | None = None) -> dict[str, Any]:
    """Every registered check's metadata, in catalog order (the built-in areas, then a project's own checks, each
    with `custom`: the file and line of its declaration)."""
    from pytest_mlbatch.engine.registry import load_checks

    checks = registry if registry is not None else load_checks()
    rows = [{**c.metadata(), "custom": checks.origins[c.id]} if checks.is_custom(c.id) else c.metadata()
            for c in checks]
    return {"version": 1, "tool": "pytest-mlbatch", "tool_version": __version__, "checks": rows}


def print_catalog(config: pytest.Config, registry: Registry | None = None) -> int:
    """Runs from pytest_cmdline_main, before pytest is configured (no terminal reporter yet): plain stdout.
    `registry`: the catalog and the project's own checks (plugin/extend.py), marked 'custom'."""
    data = catalog(registry)
    rows = data["checks"]
    out: list[str] = []
    json_path = config.getoption("mlbatch_json")
    if json_path:
        path = Path(config.invocation_params.dir) / json_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.append(f"wrote {len(rows)} checks to {path}")
    else:
        width = max([7, *(len(c["id"]) for c in rows)])
        out += [f"{c['id']:<{width}} {c['severity']:<9} {c['title']}  [fix: {c['fixer'] or '—'}]"
                + (f"  (custom: {c['custom']})" if c.get("custom") else "") for c in rows]
        custom = sum(1 for c in rows if c.get("custom"))
        mine = f" ({custom} of them the project's own)" if custom else ""
        out.append(f"{len(rows)} checks{mine}; details (why, what to do, permissions, fixes): {DETAILS}")
    text = "\n".join(out) + "\n"
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "replace").decode(encoding))
    sys.stdout.flush()
    return 0


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _runs_on(kind: str) -> str:
    return {"target": "once per target (account and region)", "docker": "on the local Docker daemon"}.get(
        kind, f"on each {kind.replace('_', ' ')}")


def read_only_policy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An IAM policy with every read permission the checks need (what a CI role for the preflight needs)."""
    actions = sorted({p for c in rows for p in c["permissions"]})
    return {"Version": "2012-10-17",
            "Statement": [{"Sid": "PytestMlbatchPreflight", "Effect": "Allow", "Action": actions, "Resource": "*"}]}


def render_markdown(data: dict[str, Any] | None = None) -> str:
    """docs/checks.md: a table per area, then each check's rationale, remediation, fixer and permissions."""
    from pytest_mlbatch.findings import AREAS

    data = data or catalog()
    rows: list[dict[str, Any]] = data["checks"]
    out = [
        "# Checks",
        "",
        f"<!-- Generated from the check registry by `{REGENERATE}`; do not edit by hand. -->",
        "",
        f"{len(rows)} checks. Severity is the default; `checks.severity` in the config overrides it, `checks.skip` "
        "turns a check off and `checks.exempt` exempts one check on one resource until a date. "
        "`pytest --mlbatch-list-checks --mlbatch-json checks.json` gives the same catalog as JSON.",
        "",
    ]
    for area, name in AREAS.items():
        checks = [c for c in rows if c["area"] == area]
        if not checks:
            continue
        out += [f"## {area} — {name}", "", "| id | slug | title | severity | runs on | fixer |",
                "|---|---|---|---|---|---|"]
        out += [f"| [{c['id']}](#{c['id'].lower()}) | `{c['slug']}` | {_cell(c['title'])} | {c['severity']} | "
                f"{c['resource']} | {_cell(c['fixer']) or '—'} |" for c in checks]
        out.append("")
        for c in checks:
            out += [f"### {c['id']}", "", f"**{_cell(c['title'])}** (`{c['slug']}`, {c['severity']}, runs "
                    f"{_runs_on(c['resource'])})", "", f"- Why: {_cell(c['rationale'])}",
                    f"- What to do: {_cell(c['remediation'])}",
                    f"- Permissions: {', '.join(f'`{p}`' for p in c['permissions']) or 'none'}"]
            if c["fixer"]:
                out.append(f"- `--fix`: {_cell(c['fixer'])} (permissions: "
                           f"{', '.join(f'`{p}`' for p in c['fix_permissions']) or 'none'})")
            if c.get("run_permissions"):
                out.append(f"- Opt-in writes (never implied by `--fix`): "
                           f"{', '.join(f'`{p}`' for p in c['run_permissions'])}")
            out.append("")
    read = {p for c in rows for p in c["permissions"]}
    fix_permissions = sorted({p for c in rows for p in c["fix_permissions"]} - read)
    out += ["## Permissions", "",
            "The checks only read. A role for the preflight in CI needs these actions (`--fix` needs, in addition, "
            f"{', '.join(f'`{p}`' for p in fix_permissions) or 'nothing'}):", "", "```json",
            json.dumps(read_only_policy(rows), indent=2), "```"]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    prog = "python -m pytest_mlbatch.output.catalog"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write the Markdown catalog to PATH")
    group.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from the generated catalog")
    group.add_argument("--json", action="store_true", help="print the catalog as JSON")
    args = parser.parse_args(argv)
    if args.json:
        sys.stdout.write(json.dumps(catalog(), indent=2, ensure_ascii=False) + "\n")
        return 0
    text = render_markdown()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        return 0
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            sys.stderr.write(f"{path} is stale: run `{REGENERATE}`\n")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
