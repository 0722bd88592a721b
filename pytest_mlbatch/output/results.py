"""The result rows every output shares: area, gating, order, the per-area columns, problem lines and the verdict."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from pytest_mlbatch.findings import AREAS, Severity, printable

if TYPE_CHECKING:
    from pytest_mlbatch.config import Exemption


def area_of(row: dict[str, Any]) -> str:
    return str(row.get("area") or str(row["check_id"]).rstrip("0123456789"))


def gating(row: dict[str, Any]) -> bool:
    """Does this result fail the run? Failures at or above --mlbatch-fail-on and every `error`."""
    return row["outcome"] == "error" or (row["outcome"] == "failed" and not row.get("below_threshold"))


def exemption_status(ex: Exemption, today: dt.date, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One configured exemption for the audit trail: active, expired, or unused (matched no result of this run)."""
    matched = [r for r in results if r["check_id"] == ex.check and r["resource"] == ex.resource]
    status = "expired" if ex.until < today else ("active" if matched else "unused")
    return {"check": ex.check, "resource": ex.resource, "until": ex.until.isoformat(), "reason": ex.reason,
            "status": status, "results": len(matched)}


def normalize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the results with the account filled in from other results of the same target (a check skipped
    before any AWS call does not know it)."""
    accounts: dict[str, str] = {}
    for r in results:
        if r.get("account") and r.get("target"):
            accounts.setdefault(str(r["target"]), str(r["account"]))
    return [{**r, "account": r.get("account") or accounts.get(str(r.get("target")))} for r in results]


def sort_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stable order whatever the order items ran in (xdist): target, area, check, resource."""
    order = list(AREAS)
    return sorted(results, key=lambda r: (str(r.get("target")), order.index(area_of(r)) if area_of(r) in AREAS
                                          else 99, r["check_id"], str(r["resource"])))


def severity_rank(row: dict[str, Any]) -> int:
    try:
        return Severity(row["severity"]).rank
    except ValueError:
        return 0


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
    """One line of text for an output: whitespace runs collapsed, every other control character escaped."""
    return printable(" ".join(str(text or "").split()))


def problem_line(row: dict[str, Any], *, with_target: bool = False, ascii_only: bool = False) -> str:
    """'ID resource — what is wrong → what to do' (a target is added when the run has several)."""
    dash, arrow = (" -- ", " -> ") if ascii_only else (" — ", " → ")
    where = f" ({row.get('target')})" if with_target else ""
    return f"{row['check_id']} {printable(row['resource'])}{where}{dash}{without_resource(row)}{arrow}" \
           f"{one_line(row.get('remediation'))}"


def without_resource(row: dict[str, Any]) -> str:
    """The message, less a leading repeat of the resource the line already names ('subnet-0b: private ...')."""
    message, resource = one_line(row.get("message")), str(row["resource"])
    for sep in (": ", " "):
        if resource and message.startswith(resource + sep) and len(message) > len(resource) + len(sep):
            return message[len(resource) + len(sep):]
    return message


def totals(results: list[dict[str, Any]]) -> Counter[str]:
    return Counter(column(r) for r in results)


def counted(n: int, column_name: str) -> str:
    """'1 error', '2 errors' (the other columns read the same for one or many)."""
    return f"{n} {column_name}{'s' if column_name == 'error' and n != 1 else ''}"


def totals_text(results: list[dict[str, Any]]) -> str:
    counts = totals(results)
    return ", ".join(counted(counts[c], c) for c in COLUMNS if counts[c]) or "nothing ran"


ALLOW_UNCHECKED = "--mlbatch-allow-unchecked"


def unchecked(results: list[dict[str, Any]], fail_on: str) -> bool:
    """True when results exist but no check beyond ENV (credentials, region, Docker) at or above --mlbatch-fail-on
    was evaluated (passed, failed or fixed): a gate that checked nothing of the job must not pass by accident."""
    gate = Severity(fail_on).rank
    return bool(results) and not any(
        r["outcome"] in ("passed", "failed", "fixed") and area_of(r) != "ENV" and severity_rank(r) >= gate
        for r in results)


def run_fails(results: list[dict[str, Any]], fail_on: str, *, allow_unchecked: bool = False) -> bool:
    """The verdict as a boolean: a gating problem, or nothing checked without the explicit opt-in."""
    return any(gating(r) for r in results) or (unchecked(results, fail_on) and not allow_unchecked)


def gate_text(results: list[dict[str, Any]], fail_on: str, *, marked: str = "", allow_unchecked: bool = False) -> str:
    """The verdict; `marked` says how the failures below the threshold are shown (e.g. 'in parentheses')."""
    failing = sum(1 for r in results if gating(r))
    below = sum(1 for r in results if problem_kind(r) == 2 and r["outcome"] == "failed")
    verb = "does" if below == 1 else "do"
    note = f" ({below} below it{', ' + marked + ',' if marked else ''} {verb} not count)" if below else ""
    if failing:
        return f"{failing} problem{'s' if failing != 1 else ''} at or above --mlbatch-fail-on {fail_on} " \
               f"or not evaluated: the run fails{note}"
    if unchecked(results, fail_on):
        skipped = sum(1 for r in results if r["outcome"] == "skipped")
        nothing = f"nothing at or above --mlbatch-fail-on {fail_on} was checked beyond credentials and region " \
                  f"({skipped} skipped; -rs shows why)"
        if allow_unchecked:
            return f"{nothing}: the run passes ({ALLOW_UNCHECKED}){note}"
        return f"{nothing}: the run fails, as a gate that checked nothing must not pass. Name what to check in the " \
               f"config (e.g. batch.job_queue, batch.job_definition), or pass {ALLOW_UNCHECKED} to accept{note}"
    return f"nothing at or above --mlbatch-fail-on {fail_on} failed: the run passes{note}"
