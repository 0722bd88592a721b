"""Shared helpers for the benchmarks: the latency/counting moto server, a seeded environment, timed pytest runs."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

from wsgi_backend import MotoMiddleware, concurrency, round_trips  # noqa: E402

__all__ = ["ROOT", "MotoMiddleware", "concurrency", "median", "round_trips", "run_pytest", "run_pytest_cpu",
           "seed_environment", "workdir", "write_config"]


def median(values: list[float]) -> float:
    return statistics.median(values)


def workdir(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"mlbatch-bench-{name}-"))
    return path


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def seed_environment(endpoint: str, state: Path, subnets: int = 2, groups: int = 1) -> dict[str, Any]:
    """The sandbox's sample ML batch environment (every area has something to check), with `subnets` subnets and
    `groups` security groups in the config's network section."""
    import boto3

    from pytest_mlbatch.sandbox import seed

    raw = seed(endpoint, state)
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    vpc = raw["network"]["vpc_id"]
    subnet_ids = list(raw["network"]["subnet_ids"])[:subnets]
    for i in range(len(subnet_ids), subnets):
        subnet_ids.append(ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{10 + i}.0/24",
                                            AvailabilityZone="us-east-1" + "abc"[i % 3])["Subnet"]["SubnetId"])
    group_ids = list(raw["network"]["security_group_ids"])[:groups]
    for i in range(len(group_ids), groups):
        group_ids.append(ec2.create_security_group(GroupName=f"ml-extra-{i}", Description="bench",
                                                   VpcId=vpc)["GroupId"])
    raw["network"]["subnet_ids"] = subnet_ids
    raw["network"]["security_group_ids"] = group_ids
    return raw


def write_config(directory: Path, raw: dict[str, Any]) -> Path:
    path = directory / "mlbatch.yaml"
    path.write_text(json.dumps(raw, indent=1))  # JSON is YAML
    return path


def run_pytest(directory: Path, args: list[str],
               endpoint: str | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """One `python -m pytest ...` in `directory`; returns (wall seconds, the process)."""
    wall, _, proc = run_pytest_cpu(directory, args, endpoint)
    return wall, proc


def run_pytest_cpu(directory: Path, args: list[str],
                   endpoint: str | None = None) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Like run_pytest, also returning the child's CPU seconds (user + system): steadier on a shared machine."""
    env = aws_env(endpoint) if endpoint else dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", *args],
                          cwd=directory, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc
