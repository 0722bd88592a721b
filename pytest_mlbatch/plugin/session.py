"""The preflight plugin registered when --mlbatch is on: builds the runtime, adds items, gathers results."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_mlbatch import config as cfg
from pytest_mlbatch.engine.runtime import Runtime
from pytest_mlbatch.findings import printable, redact
from pytest_mlbatch.plugin.extend import run_registry
from pytest_mlbatch.plugin.items import MlbatchItem, build_items
from pytest_mlbatch.plugin.options import allow_unchecked


def _opt(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    if value is None:
        value = config.getini(name) if name in ("mlbatch_config", "mlbatch_fail_on", "mlbatch_json",
                                                "mlbatch_junit") else None
    return value or None


DEFAULT_DEADLINE = 900.0  # s: far beyond a normal run (seconds) or one --fix waiting for a NAT gateway (10 min)


class RedactSecrets(logging.Filter):
    """On every handler while the preflight runs: a record's text with its credentials replaced (findings.redact).
    botocore's own DEBUG loggers print the session token and the Authorization header of every request."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is left to logging's own error handling
            return True
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _all_handlers(config: pytest.Config) -> list[logging.Handler]:
    """Every handler of every logger, and pytest's own (live log, --log-file, caplog and the report's capture)."""
    handlers = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        handlers.extend(getattr(logger, "handlers", []))
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    for name in ("log_cli_handler", "log_file_handler", "caplog_handler", "report_handler"):
        found = getattr(plugin, name, None)
        if isinstance(found, logging.Handler):
            handlers.append(found)
    return list(dict.fromkeys(handlers))


def _live_writer(config: pytest.Config, fallback: Callable[[str], None]) -> Callable[[str], None]:
    """A line for the person at the terminal now, even from inside an item's captured setup: pytest's capture is
    suspended while it is written (as pytest's live logging does). The plugins are looked up when a line is
    written: at configure time the terminal reporter may not be registered yet."""

    def write(message: str) -> None:
        capman = config.pluginmanager.get_plugin("capturemanager")
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if capman is None or tr is None:
            fallback(message)
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(message)
            tr.flush()

    return write


class OncePerFinding:
    """Each finding is shown once, in the preflight summary (one line per problem, worst first): pytest's FAILURES
    and ERRORS blocks and its short test summary leave out the preflight's items while they are written (the
    reports stay, for the counts, JUnit and --lf). `--tb=short`, `--tb=long` etc. bring pytest's blocks back."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> Any:
        hidden: dict[str, list[Any]] = {}
        if config.option.tbstyle == "auto" and not hasattr(config, "workerinput"):
            stats = terminalreporter.stats
            for key in ("failed", "error"):
                reports = stats.get(key, [])
                ours = [r for r in reports if getattr(r, "mlbatch", None)]
                if ours:
                    hidden[key] = reports
                    stats[key] = [r for r in reports if not getattr(r, "mlbatch", None)]
        try:
            return (yield)
        finally:
            terminalreporter.stats.update(hidden)


class MlbatchPlugin:
    def __init__(self, config: pytest.Config, runtime: Runtime, sandbox: Any = None) -> None:
        self.config = config
        self.runtime = runtime
        self.sandbox = sandbox
        self.results: list[dict[str, Any]] = []
        self.started_at = dt.datetime.now(dt.UTC)
        self.t0 = time.perf_counter()
        self.report_problems: list[str] = []
        self.redactor = RedactSecrets()
        self._filtered: list[logging.Handler] = []

    @classmethod
    def create(cls, config: pytest.Config) -> MlbatchPlugin:
        if config.getoption("fix") and config.getoption("fix_dry_run"):
            raise pytest.UsageError("--fix and --fix-dry-run exclude each other: choose one")
        fail_on = _opt(config, "mlbatch_fail_on") or "low"
        if fail_on not in ("critical", "high", "medium", "low"):
            raise pytest.UsageError(f"mlbatch_fail_on: {fail_on!r} is not one of critical, high, medium, low")
        region = config.getoption("aws_region")
        if region is not None and not re.search(cfg.schema()["$defs"]["region"]["pattern"], region):
            raise pytest.UsageError(f"--aws-region: {printable(region)!r} is not a region such as us-east-1")
        registry = run_registry(config)  # the project's own checks: a bad declaration is a usage error, before AWS
        rootdir = Path(config.rootpath)
        sandbox = None
        try:
            if config.getoption("mlbatch_sandbox"):
                from pytest_mlbatch.sandbox import Sandbox

                sandbox = Sandbox.for_config(config)
                settings = sandbox.settings
            else:
                settings = cfg.load(rootdir, _opt(config, "mlbatch_config"),
                                    region=config.getoption("aws_region"), profile=config.getoption("aws_profile"))
        except cfg.ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        runtime = Runtime(
            settings,
            rootdir,
            fix=bool(config.getoption("fix")),
            fix_dry_run=bool(config.getoption("fix_dry_run")),
            fail_on=fail_on,
            cli_region=config.getoption("aws_region"),
            cli_profile=config.getoption("aws_profile"),
            jobs=tuple(config.getoption("mlbatch_job") or ()),
            canary=bool(config.getoption("mlbatch_canary")),
            lock_timeout=config.getoption("mlbatch_lock_timeout"),
            registry=registry,
        )
        runtime.notify = _live_writer(config, runtime.notify)
        if runtime.fix:
            from pytest_mlbatch.engine.journal import JournalPathError

            try:
                runtime.journal.check_path()
            except JournalPathError as exc:
                raise pytest.UsageError(str(exc)) from None
        from pytest_mlbatch.aws.inventory import Deadline

        deadline = config.getoption("mlbatch_deadline")
        if deadline is not None and deadline <= 0:
            raise pytest.UsageError(f"--mlbatch-deadline: {deadline:g} is not a positive number of seconds")
        Deadline.set(DEFAULT_DEADLINE if deadline is None else deadline)
        config.addinivalue_line("markers", "mlbatch: a pytest-mlbatch preflight check")
        if not config.pluginmanager.hasplugin("xdist"):
            config.addinivalue_line("markers", "xdist_group(name): the items of one target (pytest-xdist loadgroup)")
        return cls(config, runtime, sandbox)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._filtered = _all_handlers(self.config)
        for handler in self._filtered:
            handler.addFilter(self.redactor)

    # -- collection ----------------------------------------------------------------------------------
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """`pytest --mlbatch` with no paths runs the preflight alone; paths given on the command line still run."""
        if config.args_source != pytest.Config.ArgsSource.ARGS:
            return True
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        built = build_items(session, self.runtime)
        by_parent: dict[str, list[pytest.Item | pytest.Collector]] = {}
        for item in built:
            assert item.parent is not None
            by_parent.setdefault(item.parent.nodeid, []).append(item)
        for nodeid, children in by_parent.items():  # so the terminal counts them as collected
            session.ihook.pytest_collectreport(report=pytest.CollectReport(nodeid, "passed", None, children))
        items[:0] = built

    # -- running and reporting -----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if isinstance(item, MlbatchItem) and item.result is not None:
            final = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
            if final:
                report.mlbatch = item.result.as_json()
            if report.skipped and isinstance(report.longrepr, tuple):  # point at the check, not at items.py
                path, line = item.check_location()
                report.longrepr = (path, line, report.longrepr[2])
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        data = getattr(report, "mlbatch", None)
        if data and data.get("outcome") == "fixed" and report.when == "call":
            return "fixed", "+", ("FIXED", {"green": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "mlbatch", None)
        if data:
            self.results.append(data)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        from pytest_mlbatch.output.jobs import write_job_section
        from pytest_mlbatch.output.summary import write_summary

        write_job_section(terminalreporter, self.results)
        write_summary(terminalreporter, self.results, self.runtime, verbose=config.getoption("verbose"),
                      allow_unchecked=allow_unchecked(config))
        for problem in self.report_problems:  # a usage error, shown after the results it could not save
            terminalreporter.write_line(f"ERROR: {problem}", red=True, bold=True)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        try:
            return (yield)
        finally:  # the items are done, or Ctrl-C / -x ended them: a canary still waiting in the prefetch pool
            self.runtime.stop.set()  # stops waiting and terminates its job (before the pool is shut down)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return
        from pytest_mlbatch.output.report import write_reports
        from pytest_mlbatch.output.results import run_fails

        allowed = allow_unchecked(self.config)
        if session.exitstatus == pytest.ExitCode.OK and run_fails(self.results, self.runtime.fail_on.value,
                                                                  allow_unchecked=allowed):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # checked nothing of the job: the gate does not pass
        self.report_problems = write_reports(
            self.config, self.runtime, self.results, self.started_at, time.perf_counter() - self.t0,
            json_path=_opt(self.config, "mlbatch_json"), junit_path=_opt(self.config, "mlbatch_junit"),
            allow_unchecked=allowed)
        if self.report_problems:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from pytest_mlbatch.aws.inventory import Deadline

        Deadline.set(None)
        for handler in self._filtered:
            handler.removeFilter(self.redactor)
        for target in self.runtime.targets:
            target.release()
        if self.sandbox is not None:
            self.sandbox.stop()
