"""pytest entry point (`-p mlbatch`): options, ini keys and hooks. Nothing heavy is imported without --mlbatch."""

from __future__ import annotations

from typing import Any

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
    "mlbatch_check_prefix": "the prefix of the project's own check ids (default X-, e.g. X-DATA001), see "
                            "docs/extending.md",
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
    parser.addini("mlbatch_check_prefix", HELP["mlbatch_check_prefix"], default=None)


class HookSpecs:
    """The hook a project implements to add its own checks (docs/extending.md)."""

    @pytest.hookspec
    def pytest_mlbatch_checks(self, registry: Any, config: pytest.Config) -> None:
        """Declare the project's own checks with `@registry.check(id="X-DATA001", ...)` (and `@<check>.fix(...)`),
        as the catalog's are declared. Called once per run with --mlbatch (or --mlbatch-list-checks), from a
        conftest.py or a plugin; the ids use the prefix `mlbatch_check_prefix` (default X-)."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(HookSpecs)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("mlbatch_list_checks"):
        from pytest_mlbatch.output.catalog import print_catalog
        from pytest_mlbatch.plugin.extend import run_registry

        return print_catalog(config, run_registry(config))
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
    from pytest_mlbatch.plugin.extend import ResultsPlugin

    config.pluginmanager.register(ResultsPlugin(), "mlbatch-extend")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_mlbatch.plugin.xdist import XdistPlugin

        config.pluginmanager.register(XdistPlugin(config, session), "mlbatch-xdist")


# -- fixtures for a project's own tests (docs/extending.md): declared here, so that without --mlbatch a test that
# uses one is skipped with the reason; their implementation (plugin/extend.py) is imported only with --mlbatch.
def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("mlbatch") or config.getoption("mlbatch_sandbox"))


def _extend(request: pytest.FixtureRequest) -> Any:
    if not _active(request.config):
        pytest.skip("needs --mlbatch (or --mlbatch-sandbox): it uses the preflight's fixtures")
    from pytest_mlbatch.plugin import extend

    return extend


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses mlbatch_target (or a fixture built on it) runs once per target, with the target's label
    in its node id (as the preflight's items: `-k eu-west-1` selects one), in the target's xdist group."""
    if "mlbatch_target" in metafunc.fixturenames and _active(metafunc.config):
        from pytest_mlbatch.plugin.extend import target_params

        metafunc.parametrize("mlbatch_target", target_params(metafunc.config), indirect=True)


@pytest.fixture(scope="session")
def mlbatch_runtime(request: pytest.FixtureRequest) -> Any:
    """The preflight of this run (engine.runtime.Runtime): settings, targets, registry, journal."""
    return _extend(request).runtime(request.config)


@pytest.fixture
def mlbatch_target(request: pytest.FixtureRequest) -> Any:
    """One target (aws.target.Target) of the run: the test runs once per target. `.label`, `.region`,
    `.account`, `.scope()`."""
    return _extend(request).target(request)


@pytest.fixture
def mlbatch_model(request: pytest.FixtureRequest, mlbatch_target: Any) -> Any:
    """The target's resolved model, the World checks decide over: `.job()`, `.compute_environments()`,
    `.instance_types(names)`, `.key_pairs()`, and `.scope` (queue, subnets, security groups, roles)."""
    return _extend(request).model(request.config, mlbatch_target)


@pytest.fixture
def mlbatch_aws(request: pytest.FixtureRequest, mlbatch_target: Any) -> Any:
    """Read-only AWS of the target: `mlbatch_aws.call("ec2", "describe_subnets", SubnetIds=[...])` (cached,
    retried), `.paginate(...)`, `.client("s3")` (guarded: a call that is not a read is refused)."""
    return _extend(request).AwsReader(mlbatch_target)


@pytest.fixture
def mlbatch_policy(request: pytest.FixtureRequest, mlbatch_target: Any) -> Any:
    """Permission questions: `mlbatch_policy.allows(role, "s3:PutObject", "arn:aws:s3:::ml-out/*")` (raises
    Undecided when it cannot be told) and `.decide(...)` (the decision and the statement that decided)."""
    return _extend(request).Permissions(mlbatch_target)


@pytest.fixture
def mlbatch_fix(request: pytest.FixtureRequest, mlbatch_target: Any) -> Any:
    """Remediation in a test: `mlbatch_fix.ensure("X-DATA001", resource, evaluate, plan)` decides, and applies
    the plan only under --fix (create-only, tagged, journaled; shown under --fix-dry-run)."""
    ext = _extend(request)
    return ext.Remediation(request, ext.runtime(request.config), mlbatch_target)
