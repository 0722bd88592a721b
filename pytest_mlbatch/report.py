"""The JSON report (schemas/report.schema.json) and the compliance JUnit report, written by the controller."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .model import AREAS, Outcome
from .runtime import Runtime

RESULT_KEYS = ("check_id", "slug", "title", "severity", "account", "region", "resource", "outcome", "message",
               "remediation", "duration_s")


def build_report(runtime: Runtime, results: list[dict[str, Any]], started_at: dt.datetime,
                 duration_s: float) -> dict[str, Any]:
    counts = Counter(r["outcome"] for r in results)
    targets = []
    for t in runtime.targets:
        try:
            account = t.account
        except Exception:
            account = None
        targets.append({"account": account, "region": t.region, "label": t.label})
    return {
        "version": 1,
        "tool": "pytest-mlbatch",
        "tool_version": __version__,
        "started_at": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(duration_s, 3),
        "targets": targets,
        "results": [{**{k: r.get(k) for k in RESULT_KEYS}, "target": r.get("target"),
                     "below_threshold": bool(r.get("below_threshold"))} for r in results],
        "fixes": [{**r["fix"], "check_id": r["check_id"], "resource": r["resource"]}
                  for r in results if r.get("fix")],
        "summary": {o.value: counts.get(o.value, 0) for o in Outcome},
    }


def junit_suites(results: list[dict[str, Any]]) -> Any:
    """One testsuite per (account, region, area), one testcase per check and resource."""
    from junit_xml import TestCase, TestSuite

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((str(r.get("target")), r["check_id"].rstrip("0123456789")), []).append(r)
    suites = []
    for (target, area), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], list(AREAS).index(kv[0][1]))):
        cases = []
        for r in rows:
            case = TestCase(name=f"{r['check_id']} {r['slug']} [{r['resource']}]", classname=f"mlbatch.{area}",
                            elapsed_sec=r.get("duration_s") or 0.0, stdout=r.get("remediation"),
                            status=r["outcome"])
            if r["outcome"] == "failed":
                case.add_failure_info(message=r["message"], output=f"remediation: {r['remediation']}",
                                      failure_type=r["severity"])
            elif r["outcome"] == "error":
                case.add_error_info(message=r["message"], error_type="not-evaluated")
            elif r["outcome"] == "skipped":
                case.add_skipped_info(message=r["message"])
            cases.append(case)
        suites.append(TestSuite(f"mlbatch {target} {area} ({AREAS[area]})", cases,
                                properties={"target": target, "area": area}))
    return suites


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_reports(config: pytest.Config, runtime: Runtime, results: list[dict[str, Any]], started_at: dt.datetime,
                  duration_s: float, *, json_path: str | None, junit_path: str | None) -> None:
    base = Path(config.invocation_params.dir)
    if json_path:
        report = build_report(runtime, results, started_at, duration_s)
        _write(base / json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    if junit_path:
        from junit_xml import to_xml_report_string

        _write(base / junit_path, to_xml_report_string(junit_suites(results), encoding="utf-8"))
