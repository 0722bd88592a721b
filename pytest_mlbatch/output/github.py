"""GitHub Actions output: a Markdown table appended to $GITHUB_STEP_SUMMARY and ::error/::warning annotations."""

from __future__ import annotations

import os
import stat
from collections import Counter, defaultdict
from typing import Any

from pytest_mlbatch.findings import AREAS
from pytest_mlbatch.output.results import (
    COLUMNS,
    area_of,
    column,
    gate_text,
    one_line,
    problem_kind,
    problems_by_area,
    run_fails,
    totals_text,
    worst_key,
)

# GitHub shows at most 10 error and 10 warning annotations per step and 50 per job; more are dropped silently.
MAX_ANNOTATIONS = 50
# A step summary may hold at most 1 MiB; stay well below it.
MAX_SUMMARY_BYTES = 900_000
MAX_DETAIL_ROWS = 2000


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as @actions/core does (%, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title=...), escaped as @actions/core does (also : and ,)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, **props: str) -> str:
    params = ",".join(f"{k}={escape_property(v)}" for k, v in props.items())
    return f"::{level}{' ' + params if params else ''}::{escape_data(message)}"


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def annotation_lines(results: list[dict[str, Any]], fail_on: str) -> list[str]:
    """One annotation per problem (error: fails the run; warning: below --mlbatch-fail-on), only under Actions."""
    if not in_actions():
        return []
    rows = [r for _area, group in problems_by_area(results) for r in group]
    rows.sort(key=problem_kind)
    out = []
    for r in rows[:MAX_ANNOTATIONS]:
        kind = problem_kind(r)
        level = "warning" if kind == 2 else "error"
        what = {0: f"{r['severity']}", 1: "could not check", 2: f"{r['severity']}, below fail-on {fail_on}"}[kind]
        title = f"{r['check_id']} {r.get('slug', '')} ({what})"
        message = f"{one_line(r['resource'])} ({r.get('target')}): {one_line(r.get('message'))}\n" \
                  f"What to do: {one_line(r.get('remediation'))}"
        out.append(command(level, message, title=title))
    if len(rows) > MAX_ANNOTATIONS:
        out.append(command("warning", f"{len(rows) - MAX_ANNOTATIONS} more problems are not annotated; "
                                      "see the step summary or the JSON report", title="pytest-mlbatch"))
    for r in results:
        if r["outcome"] == "fixed":
            out.append(command("notice", f"{one_line(r['resource'])}: {one_line(r.get('message'))}",
                               title=f"{r['check_id']} fixed"))
    return out


def md(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, no HTML, no table or emphasis syntax."""
    s = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\|*_`[]":
        s = s.replace(ch, "\\" + ch)
    return s


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def markdown(results: list[dict[str, Any]], fail_on: str, *, allow_unchecked: bool = False) -> str:
    failing = run_fails(results, fail_on, allow_unchecked=allow_unchecked)
    verdict = gate_text(results, fail_on, allow_unchecked=allow_unchecked)
    lines = [f"### pytest-mlbatch preflight: {'❌ fails' if failing else '✅ passes'} "
             f"(--mlbatch-fail-on {fail_on})", "", f"{md(totals_text(results))}. {md(verdict)}.", ""]
    per_area: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        per_area[area_of(r)][column(r)] += 1
    areas = [a for a in [*AREAS, *sorted(set(per_area) - set(AREAS))] if a in per_area]
    lines += _table(["area", *COLUMNS],
                    [[f"{a} {AREAS.get(a, '')}".strip(), *(str(per_area[a][c]) for c in COLUMNS)] for a in areas])
    problems = problems_by_area(results)
    if problems:
        lines += ["", "#### Problems, worst first", ""]
        rows = []
        what = {0: "**{}**", 1: "could not check", 2: "{} (below fail-on)"}
        for r in sorted((r for _area, group in problems for r in group), key=worst_key):
            rows.append([what[problem_kind(r)].format(r["severity"]), f"{md(r['check_id'])} {md(r.get('slug', ''))}",
                         md(r["resource"]), md(r.get("target")), md(r.get("message")), md(r.get("remediation"))])
        lines += _table(["severity", "check", "resource", "target", "what is wrong", "what to do"], rows)
    fixes = [r for r in results if r.get("fix")]
    if fixes:
        lines += ["", "#### Fixes", ""]
        lines += _table(["check", "resource", "target", "action", "calls", "state"],
                        [[md(r["check_id"]), md(r["resource"]), md(r.get("target")), md(r["fix"].get("action")),
                          md(", ".join(r["fix"].get("calls") or ())),
                          "applied" if r["fix"].get("applied") else "planned, not applied"] for r in fixes])
    detail = _table(["outcome", "check", "resource", "target", "message"],
                    [[column(r), md(r["check_id"]), md(r["resource"]), md(r.get("target")), md(r.get("message"))]
                     for r in results[:MAX_DETAIL_ROWS]])
    lines += ["", f"<details><summary>All {len(results)} results</summary>", "", *detail]
    if len(results) > MAX_DETAIL_ROWS:
        lines.append(f"\n({len(results) - MAX_DETAIL_ROWS} more in the JSON report)")
    lines += ["", "</details>", ""]
    text = "\n".join(lines)
    if len(text.encode("utf-8")) > MAX_SUMMARY_BYTES:
        cut = text.encode("utf-8")[:MAX_SUMMARY_BYTES].decode("utf-8", "ignore")
        text = cut.rsplit("\n", 1)[0] + "\n\n(cut to stay within GitHub's step summary limit; see the JSON report)\n" \
            "\n</details>\n"
    return text


def write_step_summary(results: list[dict[str, Any]], fail_on: str, *, allow_unchecked: bool = False) -> None:
    """Append the Markdown summary to $GITHUB_STEP_SUMMARY when it is set (GitHub Actions sets it per step)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path or not results:
        return
    try:
        # never through a link (a checked-out repository or another step could plant one), never a FIFO's hang
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError("not a regular file")
            fh.write(markdown(results, fail_on, allow_unchecked=allow_unchecked) + "\n")
    except OSError as exc:  # a summary we cannot write must not turn the preflight's result into a crash
        import warnings

        reason = "it is a symbolic link" if os.path.islink(path) else str(exc)
        warnings.warn(f"pytest-mlbatch: cannot append to GITHUB_STEP_SUMMARY {path}: {reason}", stacklevel=1)
