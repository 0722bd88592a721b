"""The terminal summary people read: counts per area and outcome, then one line per problem, worst first."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from pytest_mlbatch.findings import AREAS, printable
from pytest_mlbatch.output.github import annotation_lines
from pytest_mlbatch.output.results import (
    COLUMNS,
    area_of,
    column,
    counted,
    exemption_status,
    gate_text,
    normalize,
    one_line,
    problem_kind,
    problem_line,
    problems_by_area,
    severity_rank,
    sort_results,
    totals_text,
)

if TYPE_CHECKING:
    from pytest_mlbatch.engine.runtime import Runtime


def _ascii_only(tr: Any) -> bool:
    """Fall back to -- and -> when the terminal's encoding cannot show — and →."""
    stream = getattr(getattr(tr, "_tw", None), "_file", None)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "—→".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def _markup(row: dict[str, Any]) -> dict[str, bool]:
    kind = problem_kind(row)
    if kind == 0:
        return {"red": True, "bold": severity_rank(row) >= 4}
    return {"yellow": True}


def write_summary(tr: Any, results: list[dict[str, Any]], runtime: Runtime, *, verbose: int,
                  allow_unchecked: bool = False) -> None:
    """Write the preflight summary; colours only where pytest uses them (a TTY or --color=yes)."""
    if not results:
        return
    tr = _Escaping(tr)
    results = sort_results(normalize(results))
    fail_on = runtime.fail_on.value
    ascii_only = _ascii_only(tr)
    several_targets = len({r.get("target") for r in results}) > 1
    problems = problems_by_area(results)
    if hasattr(tr, "ensure_newline"):  # end the progress line first, so no blank line follows the heading
        tr.ensure_newline()
    tr.section("mlbatch preflight", sep="=")
    if verbose >= 0:
        per_area: dict[str, Counter[str]] = defaultdict(Counter)
        for r in results:
            per_area[area_of(r)][column(r)] += 1
        for area in [*AREAS, *sorted(set(per_area) - set(AREAS))]:
            if area in per_area:
                counts = ", ".join(counted(per_area[area][c], c) for c in COLUMNS if per_area[area][c])
                tr.write_line(f"{area:<4} {AREAS.get(area, 'project checks'):<26} {counts}")
    else:
        tr.write_line(f"mlbatch: {totals_text(results)}")
    if verbose >= -1:
        for area, rows in problems:
            if verbose >= 0:
                tr.write_line("")
                tr.write_line(f"{area} {AREAS.get(area, '')}".rstrip() + ":", bold=True)  # a project's area: no name
            for r in rows:
                tag = {0: r["severity"], 1: "ERROR", 2: f"({r['severity']})"}[problem_kind(r)]
                tr.write_line(f"{'  ' if verbose >= 0 else ''}{tag:<8} "
                              f"{problem_line(r, with_target=several_targets, ascii_only=ascii_only)}",
                              **_markup(r))
    elif problems:
        worst = problems[0][1][0]
        tr.write_line(f"worst: {problem_line(worst, ascii_only=ascii_only)}")
    if verbose >= 1:  # -v: also why each skipped check did not run
        skipped = [r for r in results if r["outcome"] == "skipped"]
        if skipped:
            tr.write_line("")
            tr.write_line("skipped:", bold=True)
        for r in skipped:
            where = f" ({r.get('target')})" if several_targets else ""
            dash = " -- " if ascii_only else " — "
            tr.write_line(f"  {r['check_id']} {r['resource']}{where}{dash}{one_line(r.get('message'))}")
    if verbose >= 0 and runtime.settings.exempt:
        tr.write_line("")
        _exemptions(tr, results, runtime)
    fixed = [r for r in results if r["outcome"] == "fixed"]
    if fixed:  # what --fix did, without -v: each item, what it created, and where the journal is
        if verbose >= 0:
            tr.write_line("")
        tr.write_line(f"fixed {len(fixed)} (+), journal {runtime.journal.path}:", bold=True, green=True)
        dash = " -- " if ascii_only else " — "
        for r in fixed:
            fix = r.get("fix") or {}
            created = ", ".join(str(c) for c in fix.get("created") or ()) or "nothing new (see the journal)"
            where = f" ({r.get('target')})" if several_targets else ""
            tr.write_line(f"  + {r['check_id']} {r['resource']}{where}{dash}{fix.get('action', 'fixed')}: "
                          f"created {created}", green=True)
    plans = [r for r in results if r.get("plan")]
    if plans and runtime.fix_dry_run:
        tr.section("mlbatch fix plan (dry run: nothing was changed)", sep="-")
        for r in plans:
            for line in str(r["plan"]).split("\n"):  # plan lines: each part escaped by FixPlan.describe
                tr.write_line(line)
    if verbose >= 0:
        tr.write_line("")
    tr.write_line(gate_text(results, fail_on, marked="in parentheses" if verbose >= -1 else "",
                            allow_unchecked=allow_unchecked), bold=True)

    for line in annotation_lines(results, fail_on):
        tr.write_line(line)


class _Escaping:
    """The terminal reporter, with every line written escaped (findings.printable): one line stays one line."""

    def __init__(self, tr: Any) -> None:
        self._tr = tr

    def write_line(self, line: str, **markup: bool) -> None:
        self._tr.write_line(printable(line), **markup)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tr, name)


def _exemptions(tr: Any, results: list[dict[str, Any]], runtime: Runtime) -> None:

    for ex in runtime.settings.exempt:
        st = exemption_status(ex, runtime.today, results)
        what = {"active": f"exempted until {st['until']}", "expired": f"exemption EXPIRED on {st['until']}: "
                "the check counts again", "unused": f"exemption (until {st['until']}) matched no result"}
        tr.write_line(f"exemption {st['check']} {st['resource']}: {what[st['status']]} ({st['reason']})",
                      yellow=st["status"] != "active")
