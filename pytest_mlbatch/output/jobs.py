"""The terminal section that opens the preflight's summary when jobs were diagnosed or a canary ran (JOB area)."""

from __future__ import annotations

from typing import Any

from pytest_mlbatch.output.results import one_line, sort_results


def write_job_section(tr: Any, results: list[dict[str, Any]]) -> None:
    """One line per JOB result, whatever its outcome: the state, the cause, the checks, what to do."""
    rows = [r for r in sort_results(results) if str(r.get("check_id", "")).startswith("JOB")]
    if not rows:
        return
    if hasattr(tr, "ensure_newline"):
        tr.ensure_newline()
    tr.section("mlbatch: submitted jobs", sep="=")
    for r in rows:
        markup = {"green": True} if r["outcome"] == "passed" else (
            {"yellow": True} if r["outcome"] in ("skipped", "error") else {"red": True, "bold": True})
        tr.write_line(f"{r['check_id']} {r['resource']} ({r.get('target')}): {r['outcome'].upper()} — "
                      f"{one_line(r.get('message'))}", **markup)
