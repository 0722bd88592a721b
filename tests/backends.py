"""Real test backends: moto in server mode, a private dockerd and a docker-registry, started by PID on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"


def missing_backend(what: str) -> None:
    """Under CI a missing backend fails the test; on a developer machine it skips."""
    if os.environ.get("CI"):
        pytest.fail(f"test backend missing under CI: {what}")
    pytest.skip(f"test backend missing: {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready in {timeout}s")


@dataclass
class Aws:
    """The moto server for one test: endpoint, region, and clients for arranging scenarios."""

    endpoint: str
    region: str = REGION
    account: str = ACCOUNT

    def client(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def reset(self) -> None:
        """Forget every resource: what moto's /moto-api/reset does, without its wasted work (below)."""
        reset_moto()


def reset_moto() -> None:
    """Empty moto's in-process backends (the tests' moto servers run in this process).

    moto's own reset (POST /moto-api/reset, `BackendDict.reset`) re-runs `__init__` of every backend a test touched
    (each EC2 region builds its default VPC and AMIs again, IAM parses its ~1,300 managed policies again) and then
    drops them all from its dictionaries, so the next test builds them once more: half of a test's setup time. Here
    the backends are dropped without that re-initialisation; the next request builds a fresh one, as after moto's
    reset. Backends that release something in their `reset` (S3's temporary files, Batch's job threads) still run it.
    """
    from moto.core.base_backend import BackendDict, BaseBackend, backend_lock
    from moto.core.model_instances import reset_model_data
    from moto.moto_api._internal.models import moto_api_backend

    with backend_lock:
        for backends in BackendDict._instances:
            for per_account in backends.values():
                for backend in per_account.values():
                    if type(backend).reset is not BaseBackend.reset:  # S3, Batch: their cleanup, then re-init
                        backend.reset()
            backends.clear()
        BackendDict._instances.clear()
    reset_model_data()
    moto_api_backend.__init__(moto_api_backend.region_name, moto_api_backend.account_id)  # type: ignore[misc]


class Process:
    """A background program we started, stopped by its PID."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_dockerd(root: Path) -> tuple[Process, str]:
    exe = shutil.which("dockerd")
    if not exe:
        missing_backend("dockerd (Debian package docker.io)")
    assert exe is not None
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    proc = Process([exe, "--iptables=false", "--bridge=none", "--storage-driver=vfs", "--data-root",
                    str(root / "root"), "--exec-root", str(root / "exec"), "--host", f"unix://{sock}",
                    "--pidfile", str(root / "pid"), "--insecure-registry", "127.0.0.0/8"], root / "dockerd.log")
    host = f"unix://{sock}"
    import docker

    def ready() -> bool:
        return bool(docker.DockerClient(base_url=host, timeout=5).ping())

    try:
        wait_for(ready, 60, "dockerd")
    except RuntimeError:
        proc.stop()
        raise RuntimeError(f"dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}") from None
    return proc, host


def start_registry(root: Path, htpasswd: Path | None = None,
                   auth: dict[str, Any] | None = None) -> tuple[Process, str]:
    """docker-registry on a free loopback port; `htpasswd` for Basic auth, or any `auth` section (e.g. token)."""
    exe = shutil.which("docker-registry")
    if not exe:
        missing_backend("docker-registry (Debian package docker-registry)")
    assert exe is not None
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd is not None:
        conf["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    if auth is not None:
        conf["auth"] = auth
    (root / "config.yml").write_text(json.dumps(conf))  # JSON is YAML
    proc = Process([exe, "serve", str(root / "config.yml")], root / "registry.log")
    address = f"127.0.0.1:{port}"

    def ready() -> bool:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        return True

    try:
        wait_for(ready, 30, "docker-registry")
    except RuntimeError:
        proc.stop()
        raise RuntimeError(f"registry did not start: {(root / 'registry.log').read_text()[-2000:]}") from None
    return proc, address
