"""The terminal summary people read: counts per area and outcome, then one line per problem, worst first."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from .model import AREAS
from .report import area_of, gating, normalize, severity_rank, sort_results

if TYPE_CHECKING:
    from .runtime import Runtime

# Columns of the per-area table; "below fail-on" are failures that do not fail the run (xfail).
COLUMNS = ("failed", "error", "below fail-on", "fixed", "passed", "skipped")


def column(row: dict[str, Any]) -> str:
    if row["outcome"] == "failed" and row.get("below_threshold"):
        return "below fail-on"
    return str(row["outcome"])


def problem_kind(row: dict[str, Any]) -> int:
    """0: a failure that fails the run; 1: could not be evaluated; 2: a failure below --mlbatch-fail-on."""
    if row["outcome"] == "error":
        return 1
    return 2 if row.get("below_threshold") else 0


def worst_key(row: dict[str, Any]) -> tuple[int, int, str, str]:
    return (problem_kind(row), -severity_rank(row), row["check_id"], str(row["resource"]))


def problems_by_area(results: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Failed and error results grouped by area; areas with the worst problem first, worst first inside."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r["outcome"] in ("failed", "error"):
            groups[area_of(r)].append(r)
    order = list(AREAS)
    out = [(area, sorted(rows, key=worst_key)) for area, rows in groups.items()]
    out.sort(key=lambda ar: (worst_key(ar[1][0])[:2], order.index(ar[0]) if ar[0] in order else 99))
    return out


def one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def problem_line(row: dict[str, Any], *, with_target: bool = False, ascii_only: bool = False) -> str:
    """'ID resource — what is wrong → what to do' (a target is added when the run has several)."""
    dash, arrow = (" -- ", " -> ") if ascii_only else (" — ", " → ")
    where = f" ({row.get('target')})" if with_target else ""
    return f"{row['check_id']} {row['resource']}{where}{dash}{one_line(row.get('message'))}{arrow}" \
           f"{one_line(row.get('remediation'))}"


def totals(results: list[dict[str, Any]]) -> Counter[str]:
    return Counter(column(r) for r in results)


def totals_text(results: list[dict[str, Any]]) -> str:
    counts = totals(results)
    return ", ".join(f"{counts[c]} {c}" for c in COLUMNS if counts[c]) or "nothing ran"


def gate_text(results: list[dict[str, Any]], fail_on: str, *, marked: str = "") -> str:
    """The verdict; `marked` says how the failures below the threshold are shown (e.g. 'in parentheses')."""
    failing = sum(1 for r in results if gating(r))
    below = sum(1 for r in results if problem_kind(r) == 2 and r["outcome"] == "failed")
    verb = "does" if below == 1 else "do"
    note = f" ({below} below it{', ' + marked + ',' if marked else ''} {verb} not count)" if below else ""
    if failing:
        return f"{failing} problem{'s' if failing != 1 else ''} at or above --mlbatch-fail-on {fail_on} " \
               f"or not evaluated: the run fails{note}"
    return f"nothing at or above --mlbatch-fail-on {fail_on} failed: the run passes{note}"


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


def write_summary(tr: Any, results: list[dict[str, Any]], runtime: Runtime, *, verbose: int) -> None:
    """Write the preflight summary; colours only where pytest uses them (a TTY or --color=yes)."""
    if not results:
        return
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
                counts = ", ".join(f"{per_area[area][c]} {c}" for c in COLUMNS if per_area[area][c])
                tr.write_line(f"{area:<4} {AREAS.get(area, ''):<26} {counts}")
    else:
        tr.write_line(f"mlbatch: {totals_text(results)}")
    if verbose >= -1:
        for area, rows in problems:
            if verbose >= 0:
                tr.write_line("")
                tr.write_line(f"{area} {AREAS.get(area, '')}:", bold=True)
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
    if fixed:
        tr.write_line(f"fixed {len(fixed)}; journal: {runtime.journal.path}")
    plans = [r for r in results if r.get("plan")]
    if plans and runtime.fix_dry_run:
        tr.section("mlbatch fix plan (dry run: nothing was changed)", sep="-")
        for r in plans:
            tr.write_line(r["plan"])
    if verbose >= 0:
        tr.write_line("")
    tr.write_line(gate_text(results, fail_on, marked="in parentheses" if verbose >= -1 else ""), bold=True)
    from .github import annotation_lines

    for line in annotation_lines(results, fail_on):
        tr.write_line(line)


def _exemptions(tr: Any, results: list[dict[str, Any]], runtime: Runtime) -> None:
    from .report import exemption_status

    for ex in runtime.settings.exempt:
        st = exemption_status(ex, runtime.today, results)
        what = {"active": f"exempted until {st['until']}", "expired": f"exemption EXPIRED on {st['until']}: "
                "the check counts again", "unused": f"exemption (until {st['until']}) matched no result"}
        tr.write_line(f"exemption {st['check']} {st['resource']}: {what[st['status']]} ({st['reason']})",
                      yellow=st["status"] != "active")
