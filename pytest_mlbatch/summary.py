"""The terminal summary people read: counts per area and outcome, then one line per problem, worst first."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .model import AREAS, Severity
from .runtime import Runtime

ORDER = ("failed", "error", "fixed", "passed", "skipped")


def problem_lines(results: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in results if r["outcome"] in ("failed", "error")]
    rows.sort(key=lambda r: (list(AREAS).index(r["area"]), -Severity(r["severity"]).rank, r["check_id"],
                             r["resource"]))
    out = []
    for r in rows:
        tag = "ERROR " if r["outcome"] == "error" else ""
        low = " (below fail-on)" if r.get("below_threshold") else ""
        out.append(f"{tag}{r['check_id']} {r['resource']} — {r['message']} → {r['remediation']}{low}")
    return out


def write_summary(tr: Any, results: list[dict[str, Any]], runtime: Runtime, *, verbose: int) -> None:
    if not results:
        return
    tr.section("mlbatch preflight", sep="=")
    per_area: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        per_area[r["area"]][r["outcome"]] += 1
    if verbose >= 0:
        for area in AREAS:
            if area in per_area:
                counts = ", ".join(f"{per_area[area][o]} {o}" for o in ORDER if per_area[area][o])
                tr.write_line(f"{area:<4} {AREAS[area]:<26} {counts}")
    for line in problem_lines(results):
        tr.write_line(line)
    plans = [r for r in results if r.get("plan")]
    if plans and runtime.fix_dry_run:
        tr.section("mlbatch fix plan (dry run: nothing was changed)", sep="-")
        for r in plans:
            tr.write_line(r["plan"])
    fixed = [r for r in results if r["outcome"] == "fixed"]
    if fixed:
        tr.write_line(f"fixed {len(fixed)}; journal: {runtime.journal.path}")
