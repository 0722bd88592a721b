"""pytest entry point (`-p mlbatch`): options, ini keys and hooks. Nothing heavy is imported without --mlbatch."""

from __future__ import annotations

import pytest

SEVERITIES = ("critical", "high", "medium", "low")

# One text per option, reused for its ini mirror.
HELP = {
    "mlbatch": "run the AWS Batch preflight: one item per check and resource",
    "mlbatch_config": "the preflight config (default: mlbatch.yaml in the rootdir, else [tool.mlbatch] in pyproject)",
    "aws_profile": "AWS profile to use (overrides the config's profile)",
    "aws_region": "AWS region to check (overrides the config's region)",
    "fix": "after a check fails, apply its fixer (create-only), re-check, and report 'fixed'",
    "fix_dry_run": "print the plan of every fix (resource, action, API calls, permissions) and change nothing",
    "mlbatch_json": "write the JSON report to this path",
    "mlbatch_junit": "write the compliance JUnit report (one testsuite per area) to this path",
    "mlbatch_fail_on": "failures below this severity are reported as xfail and do not fail the run (default: low)",
    "mlbatch_sandbox": "run on an embedded AWS (moto) seeded with a sample ML batch environment; needs no account",
    "mlbatch_list_checks": "print the check catalog (id, severity, title, fixer) and exit",
    "mlbatch_allow_unchecked": "let a run pass in which no check beyond credentials and region, at or above "
                               "--mlbatch-fail-on, was evaluated (by default such a run fails: it checked nothing)",
    "mlbatch_job": "diagnose this submitted job (id, array child id:N, multi-node node id#N, or ARN; repeatable): "
                   "the preflight is scoped to its queue and job definition revision, and a JOB001 item explains "
                   "its state",
    "mlbatch_canary": "submit one short canary job to the queue with the job definition, wait for it (canary.timeout)"
                      " and report SUCCEEDED or why not; opt-in, never implied by --fix",
    "mlbatch_lock_timeout": "--fix waits at most this many seconds for another run's fix of the same account and "
                            "region (default 600); then the fix is not applied and says who holds the lock",
    "mlbatch_deadline": "end the preflight after this many seconds (default 900): no AWS request is started or "
                        "retried after it, and every check not finished is an error naming the deadline",
    "mlbatch_concurrency": "at most this many AWS calls in flight per target (account and region), default 16; "
                           "1: checks are evaluated one at a time, each call in turn",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlbatch", "AWS Batch ML preflight (pytest-mlbatch)")
    group.addoption("--mlbatch", action="store_true", default=False, help=HELP["mlbatch"])
    group.addoption("--mlbatch-config", metavar="PATH", default=None, help=HELP["mlbatch_config"])
    group.addoption("--aws-profile", metavar="NAME", default=None, help=HELP["aws_profile"])
    group.addoption("--aws-region", metavar="NAME", default=None, help=HELP["aws_region"])
    group.addoption("--fix", action="store_true", default=False, help=HELP["fix"])
    group.addoption("--fix-dry-run", action="store_true", default=False, help=HELP["fix_dry_run"])
    group.addoption("--mlbatch-json", metavar="PATH", default=None, help=HELP["mlbatch_json"])
    group.addoption("--mlbatch-junit", metavar="PATH", default=None, help=HELP["mlbatch_junit"])
    group.addoption("--mlbatch-fail-on", metavar="SEVERITY", default=None, choices=SEVERITIES,
                    help=HELP["mlbatch_fail_on"])
    group.addoption("--mlbatch-sandbox", action="store_true", default=False, help=HELP["mlbatch_sandbox"])
    group.addoption("--mlbatch-list-checks", action="store_true", default=False, help=HELP["mlbatch_list_checks"])
    group.addoption("--mlbatch-allow-unchecked", action="store_true", default=False,
                    help=HELP["mlbatch_allow_unchecked"])
    group.addoption("--mlbatch-job", metavar="JOB_ID", action="append", default=[], help=HELP["mlbatch_job"])
    group.addoption("--mlbatch-canary", action="store_true", default=False, help=HELP["mlbatch_canary"])
    group.addoption("--mlbatch-concurrency", metavar="N", type=int, default=None, help=HELP["mlbatch_concurrency"])
    group.addoption("--mlbatch-lock-timeout", metavar="SECONDS", type=float, default=None,
                    help=HELP["mlbatch_lock_timeout"])
    group.addoption("--mlbatch-deadline", metavar="SECONDS", type=float, default=None, help=HELP["mlbatch_deadline"])
    parser.addini("mlbatch_config", HELP["mlbatch_config"], default=None)
    parser.addini("mlbatch_fail_on", HELP["mlbatch_fail_on"], default=None)
    parser.addini("mlbatch_json", HELP["mlbatch_json"], default=None)
    parser.addini("mlbatch_junit", HELP["mlbatch_junit"], default=None)
    parser.addini("mlbatch_concurrency", HELP["mlbatch_concurrency"], default=None)
    parser.addini("mlbatch_allow_unchecked", HELP["mlbatch_allow_unchecked"], type="bool", default=False)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("mlbatch_list_checks"):
        from pytest_mlbatch.output.catalog import print_catalog

        return print_catalog(config)
    return None


def pytest_configure(config: pytest.Config) -> None:
    active = config.getoption("mlbatch") or config.getoption("mlbatch_sandbox")
    if not active:
        for flag in ("fix", "fix_dry_run", "mlbatch_job", "mlbatch_canary"):
            if config.getoption(flag):
                raise pytest.UsageError(f"--{flag.replace('_', '-')} needs --mlbatch (or --mlbatch-sandbox)")
        return
    from pytest_mlbatch.plugin.prefetch import PrefetchPlugin
    from pytest_mlbatch.plugin.session import MlbatchPlugin, OncePerFinding

    session = MlbatchPlugin.create(config)
    config.pluginmanager.register(session, "mlbatch-session")
    config.pluginmanager.register(OncePerFinding(), "mlbatch-once")
    config.pluginmanager.register(PrefetchPlugin(config, session.runtime), "mlbatch-prefetch")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_mlbatch.plugin.xdist import XdistPlugin

        config.pluginmanager.register(XdistPlugin(config, session), "mlbatch-xdist")
