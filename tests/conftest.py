"""Shared fixtures: real backends (moto server, dockerd, registry) and helpers to run the plugin with pytester."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
# Never reach real AWS from a test: fake credentials, no profile, no config files of the machine's user.
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # refused until a test points it at its moto server
# Inner pytest runs must not write to the step summary or annotate the log of a GitHub Actions job running the suite.
for _var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
    os.environ.pop(_var, None)

from audit import AUDIT  # noqa: E402
from backends import REGION, Aws, start_dockerd, start_registry  # noqa: E402

import pytest_mlbatch  # noqa: E402
from pytest_mlbatch.engine.registry import load_checks  # noqa: E402

# Import every module of the plugin now, so pytester's in-process runs (which drop modules they import)
# always see the same classes and the same registry.
for _info in pkgutil.walk_packages(pytest_mlbatch.__path__, "pytest_mlbatch."):
    if not _info.name.endswith("sandbox"):
        importlib.import_module(_info.name)
load_checks()
# Likewise hypothesis: its pytest plugin imports hypothesis in every inner run's terminal summary; dropped after each
# run, it was imported (and assertion-rewritten) again by the next one: a fifth of the suite's time.
# (Only where it is installed: README's sandbox command runs in this checkout, loading this conftest, without the test
# extras.)
if importlib.util.find_spec("hypothesis") is not None:
    for _name in ("hypothesis.internal.observability", "hypothesis.internal.conjecture.providers",
                  "hypothesis.statistics"):
        importlib.import_module(_name)
AUDIT.install()


@pytest.fixture(autouse=True)
def fix_audit() -> Iterator[None]:
    """Session-wide (tests/audit.py): a test in which a fixer sent a delete, revoke, detach, replace, or a modify
    or overwrite that can narrow access, fails."""
    mark = AUDIT.mark()
    yield
    bad = AUDIT.violations(mark)
    AUDIT.forget(mark)
    if bad:
        pytest.fail("a fixer sent forbidden AWS calls:\n" + "\n".join(f"  {c.fixing}: {c.violation}" for c in bad),
                    pytrace=False)

# moto's server imports a service's backend on its first request; if that happened inside a pytester run, pytester
# would drop the module afterwards and the next request would see a fresh, empty backend. Import them all now.
MOTO_SERVICES = ("ec2", "iam", "sts", "ecr", "batch", "service-quotas", "secretsmanager", "ssm", "logs", "ecs",
                 "autoscaling", "s3")


def _preload_moto() -> None:
    from moto.backends import get_backend

    for name in MOTO_SERVICES:
        get_backend(name)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from pytest_mlbatch.sandbox.motoserver import MotoServer

    _preload_moto()
    server = MotoServer().start()
    yield server.endpoint
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A clean moto server for this test, and the environment pointing at it."""
    backend = Aws(moto_endpoint)
    backend.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    return backend


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private dockerd (vfs, no bridge, no iptables) for the whole session."""
    proc, host = start_dockerd(Path(tmp_path_factory.mktemp("dockerd", numbered=True)))
    yield host
    proc.stop()


@pytest.fixture
def docker_env(docker_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    return docker_host


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A docker-registry on loopback without auth: returns host:port."""
    proc, address = start_registry(Path(tmp_path_factory.mktemp("registry", numbered=True)))
    yield address
    proc.stop()


class Preflight:
    """Run `pytest --mlbatch` in a pytester directory with a given config; read back the JSON report."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    def write_config(self, config: dict[str, Any]) -> Path:
        path = self.pytester.path / "mlbatch.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def run(self, config: dict[str, Any] | None, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        if config is not None:
            self.write_config(config)
        report = self.pytester.path / "mlbatch-report.json"
        if report.exists():
            report.unlink()
        result = self.pytester.runpytest("--mlbatch", "-p", "no:cacheprovider", "-p", "no:randomly",
                                         "--mlbatch-json", str(report), *args)
        data = json.loads(report.read_text()) if report.exists() else {}
        return result, data

    @staticmethod
    def outcomes(report: dict[str, Any], check_id: str | None = None) -> dict[str, str]:
        """{"CHECK[resource]": outcome} for every result (of one check if given)."""
        return {f"{r['check_id']}[{r['resource']}]": r["outcome"] for r in report.get("results", [])
                if check_id is None or r["check_id"] == check_id}

    @staticmethod
    def result(report: dict[str, Any], check_id: str, resource: str | None = None) -> dict[str, Any]:
        rows = [r for r in report.get("results", []) if r["check_id"] == check_id
                and (resource is None or r["resource"] == resource)]
        assert len(rows) == 1, f"expected one {check_id} result for {resource}, got {rows}"
        return rows[0]


@pytest.fixture
def preflight(pytester: pytest.Pytester, aws: Aws) -> Preflight:
    return Preflight(pytester)
