"""The preflight of one pytest run: settings, options, targets, journal and the Docker client, built once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_mlbatch.aws.jobs import RunTarget
from pytest_mlbatch.aws.target import Target, TargetSpec, resolve_targets
from pytest_mlbatch.config import Settings
from pytest_mlbatch.engine.context import Check
from pytest_mlbatch.engine.fixlock import DEFAULT_TIMEOUT
from pytest_mlbatch.engine.journal import Journal
from pytest_mlbatch.engine.registry import Registry, load_checks
from pytest_mlbatch.findings import NotEvaluable, Severity


def _targets(settings: Settings, specs: list[TargetSpec], jobs: tuple[str, ...], canary: bool) -> list[Target]:
    """The configured targets, unless --mlbatch-job alone scopes the run to jobs; then one target per job, in the
    configured target of its ARN's account and region (a bare id: the first target), labelled with the job."""
    targets: list[Target] = []
    if canary or not jobs:
        targets = [RunTarget(spec, settings, canary=canary) for spec in specs]
    for job in jobs:
        spec = _spec_for(job, specs)
        label = f"{spec.label}/job-{job.rsplit('/', 1)[-1]}"
        targets.append(RunTarget(dataclasses.replace(spec, label=label), settings, job_id=job))
    return targets


def _spec_for(job: str, specs: list[TargetSpec]) -> TargetSpec:
    if job.startswith("arn:"):
        parts = job.split(":")
        region, account = parts[3], parts[4]
        for spec in specs:
            if spec.region == region and (spec.account_id in (None, account)):
                return spec
        return dataclasses.replace(specs[0], region=region, region_source=f"the job ARN {job}", label=region)
    return specs[0]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        rootdir: Path,
        *,
        fix: bool = False,
        fix_dry_run: bool = False,
        fail_on: str = "low",
        cli_region: str | None = None,
        cli_profile: str | None = None,
        today: dt.date | None = None,
        jobs: tuple[str, ...] = (),
        canary: bool = False,
        lock_timeout: float | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.rootdir = rootdir
        self.fix = fix
        self.fix_dry_run = fix_dry_run
        self.lock_timeout = DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout
        self.fail_on = Severity(fail_on)
        self.today = today or dt.date.today()
        # the catalog, or the catalog and a project's own checks (plugin/extend.py)
        self.registry: Registry = registry if registry is not None else load_checks()
        self.jobs = tuple(dict.fromkeys(jobs))
        self.canary = canary
        self.stop = threading.Event()  # set when the run ends early (Ctrl-C, -x): a waiting canary stops waiting
        self.targets = _targets(settings, resolve_targets(settings, cli_region, cli_profile), self.jobs, canary)
        self.journal = Journal(rootdir / ".mlbatch" / "journal.jsonl")
        self._docker: Any = None
        self._docker_error: str | None = None
        self._lock = threading.Lock()
        # tells the person at the terminal now (a wait for the fix lock); the plugin sets a writer that suspends
        # pytest's output capture, since an item's setup runs captured
        self.notify: Callable[[str], None] = _to_stderr

    def checks(self) -> list[Check]:
        return list(self.registry)

    def needs_docker(self) -> bool:
        """ENV003 applies only when a check that needs local Docker has something to do."""
        s = self.settings
        return bool(s.image_local or s.image_pull)

    def docker(self) -> Any:
        with self._lock:
            if self._docker is None and self._docker_error is None:
                try:
                    import docker

                    client = docker.from_env(timeout=30)
                    client.ping()
                    self._docker = client
                except Exception as exc:
                    self._docker_error = f"Docker daemon not reachable ({type(exc).__name__}: {str(exc)[:200]})"
            if self._docker_error is not None:
                raise NotEvaluable(self._docker_error)
            return self._docker


def _to_stderr(message: str) -> None:
    stream = sys.__stderr__
    if stream is not None:
        stream.write(message + "\n")
        stream.flush()
