"""The terminal summary (real runs: plain text off a TTY, colours with --color=yes, -q short) and the GitHub
Actions output (step summary table, ::error/::warning annotations escaped as GitHub requires)."""

from __future__ import annotations

import datetime as dt
import types
from pathlib import Path
from typing import Any

import pytest
from backends import Aws

from pytest_mlbatch.config import Exemption
from pytest_mlbatch.findings import Severity
from pytest_mlbatch.output.github import annotation_lines, command, escape_data, escape_property, markdown, md
from pytest_mlbatch.output.summary import problems_by_area, write_summary

# ENV001 fails for real (the config names another account) and KEY001 fails for real (no such key pair; KEY002 then
# defers to it); severities are overridden so that the KEY area holds the worst problem and comes first.
CONFIG = {"version": 1, "region": "us-east-1", "account_id": "210987654321",
          "key_pair": {"name": "ml-batch-key", "private_key_file": "keys/ml.pem"},
          "checks": {"severity": {"ENV001": "medium", "KEY001": "critical"}}}


@pytest.fixture
def no_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_summary_worst_first_plain_text_and_github_output(preflight, aws: Aws, pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result, report = preflight.run(CONFIG)
    assert result.ret == 1
    out = result.stdout.str()
    assert "\x1b[" not in out  # not a TTY: plain text
    result.stdout.fnmatch_lines([
        "*= mlbatch preflight =*",
        "ENV  account and local tooling  1 failed, 1 passed, 1 skipped",
        "KEY  EC2 key pair               1 failed, 1 skipped",
        "KEY EC2 key pair:",
        "  critical KEY001 ml-batch-key — key pair 'ml-batch-key' does not exist in us-east-1 → Create or import "
        "the key pair in this region*",
        "ENV account and local tooling:",
        "  medium   ENV001 us-east-1 — credentials are for account 123456789012, config expects 210987654321 → "
        "Set AWS_PROFILE*",
        "2 problems at or above --mlbatch-fail-on low or not evaluated: the run fails",
        "::error title=KEY001 key-pair-exists (critical)::ml-batch-key (us-east-1): key pair 'ml-batch-key' does "
        "not exist in us-east-1%0AWhat to do: Create or import the key pair*",
        "::error title=ENV001 credentials (medium)::us-east-1 (us-east-1): credentials are for account "
        "123456789012, config expects 210987654321%0AWhat to do: *",
    ])
    assert out.count("::error ") == 2 and "::warning" not in out

    text = step_summary.read_text()
    assert text.startswith("## an earlier step\n### pytest-mlbatch preflight: ❌ fails (--mlbatch-fail-on low)\n")
    assert "| area | failed | error | below fail-on | fixed | passed | skipped |" in text
    assert "| KEY EC2 key pair | 1 | 0 | 0 | 0 | 0 | 1 |" in text
    assert "| **critical** | KEY001 key-pair-exists | ml-batch-key | us-east-1 | key pair 'ml-batch-key' does not " \
           "exist in us-east-1 | Create or import the key pair in this region (\\`--fix\\` generates one" in text
    assert "make sure account\\_id names the account you mean" in text
    assert f"<details><summary>All {len(report['results'])} results</summary>" in text


def test_quiet_is_short_and_color_only_when_asked(preflight, aws: Aws, no_github: None) -> None:
    result, report = preflight.run(CONFIG, "-q", "--color=yes")
    assert result.ret == 1
    out = result.stdout.str()
    assert "\x1b[31m" in out  # --color=yes: failures in red
    plain = _strip_ansi(out)
    assert "ENV  account and local tooling" not in plain  # -q: no per-area table, no area headings
    assert "KEY EC2 key pair:" not in plain
    lines = plain.splitlines()
    start = lines.index(f"mlbatch: 2 failed, 1 passed, {report['summary']['skipped']} skipped")
    assert lines[start + 1].startswith("critical KEY001 ml-batch-key — key pair 'ml-batch-key' does not exist")
    assert lines[start + 2].startswith("medium   ENV001 us-east-1 — ")
    assert lines[start + 3] == "2 problems at or above --mlbatch-fail-on low or not evaluated: the run fails"
    assert "::error" not in out  # annotations only under GitHub Actions


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# -- the same logic without a pytest run -------------------------------------------------------------------------
def row(check_id: str, outcome: str, severity: str = "high", *, below: bool = False, target: str = "us-east-1",
        message: str = "it is wrong", resource: str = "res") -> dict[str, Any]:
    return {"check_id": check_id, "slug": "a-check", "title": "t", "severity": severity,
            "area": check_id.rstrip("0123456789"), "target": target, "account": "123456789012",
            "region": "us-east-1", "resource": resource, "outcome": outcome, "message": message,
            "remediation": "do this", "duration_s": 0.01, "below_threshold": below}


RESULTS = [
    row("ENV002", "passed", "critical"),
    row("IMG008", "failed", "low", below=True),
    row("IMG001", "failed", "critical"),
    row("NET004", "failed", "low"),
    row("NET001", "error", "high", message="ec2:DescribeVpcs denied"),
    row("SG003", "failed", "high"),
    row("BAT001", "fixed", "critical"),
]


class FakeTerminal:
    """What write_summary uses of pytest's TerminalReporter."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.lines: list[str] = []
        self.markup: list[dict[str, bool]] = []
        self._tw = types.SimpleNamespace(_file=types.SimpleNamespace(encoding=encoding))

    def section(self, title: str, sep: str = "=") -> None:
        self.lines.append(f"{sep * 3} {title} {sep * 3}")

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)
        self.markup.append(markup)


def runtime(fail_on: str = "medium", exempt: tuple[Exemption, ...] = ()) -> Any:
    settings = types.SimpleNamespace(exempt=exempt)
    return types.SimpleNamespace(fail_on=Severity(fail_on), settings=settings, today=dt.date(2026, 11, 28),
                                 fix_dry_run=False, journal=types.SimpleNamespace(path=Path(".mlbatch/journal")))


def test_problems_grouped_by_area_worst_first() -> None:
    groups = problems_by_area(RESULTS)
    assert [(area, [r["check_id"] for r in rows]) for area, rows in groups] == [
        ("IMG", ["IMG001", "IMG008"]),  # a critical failure: first; inside, the failure below fail-on comes last
        ("SG", ["SG003"]),              # high
        ("NET", ["NET004", "NET001"]),  # a low failure that counts, then the error (could not check)
    ]


def test_summary_lines_and_very_quiet(no_github: None) -> None:
    tr = FakeTerminal()
    write_summary(tr, RESULTS, runtime("low"), verbose=0)
    body = tr.lines[tr.lines.index("IMG container image:") + 1:]
    assert body[:2] == ["  critical IMG001 res — it is wrong → do this",
                        "  (low)    IMG008 res — it is wrong → do this"]
    assert "  ERROR    NET001 res — ec2:DescribeVpcs denied → do this" in body
    assert tr.lines[-1] == "4 problems at or above --mlbatch-fail-on low or not evaluated: the run fails " \
                           "(1 below it, in parentheses, does not count)"

    tr = FakeTerminal()
    write_summary(tr, RESULTS, runtime("low"), verbose=-2)
    assert tr.lines[1:] == ["mlbatch: 3 failed, 1 error, 1 below fail-on, 1 fixed, 1 passed",
                            "worst: IMG001 res — it is wrong → do this",
                            "fixed 1 (+), journal .mlbatch/journal:",
                            "  + BAT001 res — fixed: created nothing new (see the journal)",
                            "4 problems at or above --mlbatch-fail-on low or not evaluated: the run fails "
                            "(1 below it does not count)"]


def test_verbose_lists_why_checks_were_skipped(no_github: None) -> None:
    tr = FakeTerminal()
    results = [*RESULTS, row("IMG009", "skipped", message="no image: set image.uri")]
    write_summary(tr, results, runtime("low"), verbose=1)
    assert tr.lines[tr.lines.index("skipped:") + 1] == "  IMG009 res — no image: set image.uri"
    tr = FakeTerminal()
    write_summary(tr, results, runtime("low"), verbose=0)
    assert "skipped:" not in tr.lines


def test_summary_ascii_fallback_several_targets_and_exemptions(no_github: None) -> None:
    tr = FakeTerminal(encoding="ascii")
    results = [row("KEY001", "failed", target="us-east-1"), row("KEY001", "failed", target="eu-west-1"),
               row("SG003", "skipped", resource="sg-1", message="exempted until 2026-12-31: ticket 42")]
    exempt = (Exemption("SG003", "sg-1", dt.date(2026, 12, 31), "ticket 42"),
              Exemption("KEY001", "res", dt.date(2026, 1, 1), "old ticket"))
    write_summary(tr, results, runtime("low", exempt), verbose=0)
    assert "  high     KEY001 res (eu-west-1) -- it is wrong -> do this" in tr.lines
    assert "exemption SG003 sg-1: exempted until 2026-12-31 (ticket 42)" in tr.lines
    assert "exemption KEY001 res: exemption EXPIRED on 2026-01-01: the check counts again (old ticket)" in tr.lines


def test_escaping_follows_github_rules() -> None:
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("KEY001: a,b 5%\n") == "KEY001%3A a%2Cb 5%25%0A"
    assert command("error", "line 1\nline 2", title="IMG001: repo, tag") == \
        "::error title=IMG001%3A repo%2C tag::line 1%0Aline 2"
    assert md("a | b <script>&x</script> *bold* _it_ `code` [link]") == \
        "a \\| b &lt;script&gt;&amp;x&lt;/script&gt; \\*bold\\* \\_it\\_ \\`code\\` \\[link\\]"


def test_annotation_levels_and_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    lines = annotation_lines(RESULTS, "medium")
    levels = [line.split(" ", 1)[0] for line in lines]
    # failures that count and errors are errors; below fail-on a warning; a fix a notice
    assert levels == ["::error", "::error", "::error", "::error", "::warning", "::notice"]
    assert lines[3].startswith("::error title=NET001 a-check (could not check)::res (us-east-1): ec2:DescribeVpcs")
    many = [row("NET002", "failed", resource=f"subnet-{i}") for i in range(60)]
    lines = annotation_lines(many, "low")
    assert len(lines) == 51 and lines[-1].startswith("::warning title=pytest-mlbatch::10 more problems")
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert annotation_lines(RESULTS, "medium") == []


def test_step_summary_lists_fixes() -> None:
    fixed = {**row("KEY001", "fixed", message="fixed: import key pair"),
             "fix": {"action": "import key pair ml|key", "calls": ["ec2:ImportKeyPair"], "applied": True}}
    planned = {**row("SG002", "failed", resource="sg-1"),
               "fix": {"action": "authorize tcp/22", "calls": ["ec2:AuthorizeSecurityGroupIngress"], "applied": False}}
    text = markdown([fixed, planned], "low")
    assert "| KEY001 | res | us-east-1 | import key pair ml\\|key | ec2:ImportKeyPair | applied |" in text
    assert "| SG002 | sg-1 | us-east-1 | authorize tcp/22 | ec2:AuthorizeSecurityGroupIngress | " \
           "planned, not applied |" in text


def test_step_summary_stays_within_githubs_limit() -> None:
    big = [row("NET002", "failed", resource=f"subnet-{i}", message="x" * 400) for i in range(3000)]
    text = markdown(big, "low")
    assert len(text.encode()) < 1024 * 1024
    assert text.rstrip().endswith("</details>")
