"""The JSON report (schemas/report.schema.json) and the compliance JUnit report, written by the controller."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mlbatch import __version__
from pytest_mlbatch.findings import AREAS, Outcome, printable
from pytest_mlbatch.output.github import write_step_summary
from pytest_mlbatch.output.results import area_of, exemption_status, normalize, run_fails, sort_results

if TYPE_CHECKING:
    import pytest

    from pytest_mlbatch.engine.runtime import Runtime

# The result fields of the contract (INTERFACE.md), then the ones the implementation adds.
RESULT_KEYS = ("check_id", "slug", "title", "severity", "account", "region", "resource", "outcome", "message",
               "remediation", "duration_s")
EXTRA_RESULT_KEYS = ("area", "target")
FIX_KEYS = ("check_id", "resource", "action", "calls", "permissions", "notes", "applied")


def _targets(runtime: Runtime, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets of the run; accounts come from the results (no AWS call here: the controller may have none)."""
    seen: dict[str, str] = {}
    for r in results:
        if r.get("account") and r.get("target"):
            seen.setdefault(str(r["target"]), str(r["account"]))
    return [{"account": seen.get(t.label) or t.spec.account_id, "region": t.region, "label": t.label}
            for t in runtime.targets]


def build_report(runtime: Runtime, results: list[dict[str, Any]], started_at: dt.datetime,
                 duration_s: float, *, allow_unchecked: bool = False) -> dict[str, Any]:
    counts = Counter(r["outcome"] for r in results)
    rows = []
    for r in results:
        row = {k: r.get(k) for k in RESULT_KEYS}
        row.update({k: r.get(k) for k in EXTRA_RESULT_KEYS})
        row["area"] = area_of(r)
        row["below_threshold"] = bool(r.get("below_threshold"))
        row["notes"] = [str(n) for n in r.get("notes") or ()]
        rows.append(row)
    fixes = []
    for r in results:
        if r.get("fix"):
            fix = {k: r["fix"].get(k) for k in FIX_KEYS if k in r["fix"]}
            fix.update({"check_id": r["check_id"], "resource": r["resource"], "target": r.get("target")})
            fix.setdefault("calls", [])
            fix["applied"] = bool(fix.get("applied"))
            fixes.append(fix)
    summary = {o.value: counts.get(o.value, 0) for o in Outcome}
    summary["below_fail_on"] = sum(1 for r in results if r["outcome"] == "failed" and r.get("below_threshold"))
    return {
        "version": 1,
        "tool": "pytest-mlbatch",
        "tool_version": __version__,
        "started_at": started_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(duration_s, 3),
        "fail_on": runtime.fail_on.value,
        "gate": "failed" if run_fails(results, runtime.fail_on.value, allow_unchecked=allow_unchecked) else "passed",
        "targets": _targets(runtime, results),
        "results": rows,
        "fixes": fixes,
        "exemptions": [exemption_status(ex, runtime.today, results) for ex in runtime.settings.exempt],
        "summary": summary,
    }


# -- compliance JUnit -----------------------------------------------------------------------------------------
def _one_line(text: Any) -> str:
    return printable(" ".join(str(text or "").split()))


def junit_suites(results: list[dict[str, Any]], fail_on: str = "low") -> list[Any]:
    """One testsuite per (account, region, area), one testcase per check and resource.

    failed → <failure message=finding type=severity>remediation</failure>; error → <error>; skipped (not
    applicable, not configured, exempted) → <skipped message=reason>; a failure below --mlbatch-fail-on →
    <skipped> that says so (like pytest's xfail), so CI systems do not count it; fixed and passed → a
    passing testcase whose system-out says what was found.
    """
    from junit_xml import TestCase, TestSuite

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in normalize(results):
        key = (str(r.get("account") or "unknown-account"), str(r.get("region") or "no-region"), area_of(r))
        groups.setdefault(key, []).append(r)
    area_order = list(AREAS)
    suites = []
    for (account, region, area), rows in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], area_order.index(kv[0][2]) if kv[0][2] in AREAS else 99)
    ):
        cases = []
        for r in sorted(rows, key=lambda r: (r["check_id"], str(r["resource"]))):
            finding = _one_line(r.get("message"))
            remediation = printable(r.get("remediation") or "")
            case = TestCase(name=f"{r['check_id']} {r.get('slug', '')} [{printable(r['resource'])}]",
                            classname=f"mlbatch.{account}.{region}.{area}",
                            elapsed_sec=float(r.get("duration_s") or 0.0))
            outcome = r["outcome"]
            if outcome == "failed" and r.get("below_threshold"):
                case.add_skipped_info(message=f"below --mlbatch-fail-on {fail_on} ({r['severity']}): {finding}",
                                      output=remediation)
            elif outcome == "failed":
                case.add_failure_info(message=finding, output=remediation, failure_type=str(r["severity"]))
            elif outcome == "error":
                case.add_error_info(message=f"could not evaluate: {finding}", output=remediation,
                                    error_type="not-evaluated")
            elif outcome == "skipped":
                case.add_skipped_info(message=finding)
            else:
                case.stdout = finding if finding.startswith(f"{outcome}:") else f"{outcome}: {finding}"
            cases.append(case)
        suites.append(TestSuite(f"{area} ({AREAS.get(area, area)}) {account}/{region}", cases,
                                package=f"mlbatch.{account}.{region}",
                                properties={"account": account, "region": region, "area": area,
                                            "fail_on": fail_on}))
    return suites


def junit_xml(results: list[dict[str, Any]], fail_on: str = "low") -> str:
    """The report as text, tidied to the JUnit XSD Jenkins validates against (times to the millisecond, no
    junit-xml-only `disabled` counts)."""
    import xml.etree.ElementTree as ET

    from junit_xml import to_xml_report_string

    root = ET.fromstring(to_xml_report_string(junit_suites(results, fail_on), encoding="utf-8").encode("utf-8"))
    for el in root.iter():
        el.attrib.pop("disabled", None)
        if "time" in el.attrib:
            el.set("time", f"{float(el.get('time') or 0):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class ReportPathError(OSError):
    """A report path that cannot be written safely (a link, a directory, an unwritable place)."""


def _write(path: Path, text: str) -> None:
    """Write `path` atomically without following a link: the temp file is created with O_EXCL|O_NOFOLLOW under an
    unpredictable name in the target's directory (tempfile.mkstemp), then renamed over the target; a target that
    is a link is refused. Nothing is left behind on failure."""
    if path.is_symlink():
        raise ReportPathError(f"{path} is a symbolic link; a report is never written through a link")
    if path.is_dir():
        raise ReportPathError(f"{path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ReportPathError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ReportPathError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def write_reports(config: pytest.Config, runtime: Runtime, results: list[dict[str, Any]], started_at: dt.datetime,
                  duration_s: float, *, json_path: str | None, junit_path: str | None,
                  allow_unchecked: bool = False) -> list[str]:
    """Write the reports asked for; returns why any could not be written (each other report is still written)."""
    base = Path(config.invocation_params.dir)
    ordered = sort_results(normalize(results))
    problems: list[str] = []
    if json_path:
        report = build_report(runtime, ordered, started_at, duration_s, allow_unchecked=allow_unchecked)
        try:
            _write(base / json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        except ReportPathError as exc:
            problems.append(f"--mlbatch-json: {exc}")
    if junit_path:
        try:
            _write(base / junit_path, junit_xml(ordered, runtime.fail_on.value))
        except ReportPathError as exc:
            problems.append(f"--mlbatch-junit: {exc}")

    write_step_summary(ordered, runtime.fail_on.value, allow_unchecked=allow_unchecked)
    return problems
