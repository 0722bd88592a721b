"""No secret leaks: ECR tokens, registry passwords and private key material never appear in anything a run
prints or writes (stdout, stderr, DEBUG logs, the journal, the JSON and both JUnit reports); private keys are
written 0600 and never over an existing file."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, Aws
from faults import seed_catalog_scenario

from pytest_mlbatch.analysis import keys

REGISTRY_PASSWORD = "Pr1vate-Registry-S3cret-4f7a"
REGISTRY = "127.0.0.1:9"  # nothing listens: every pull attempt fails after the credentials were read


def private_registry(aws: Aws) -> dict[str, Any]:
    """A job definition pulling from a private registry with repositoryCredentials in Secrets Manager."""
    secret = aws.client("secretsmanager").create_secret(
        Name="ml-registry-creds", SecretString=json.dumps({"username": "ml", "password": REGISTRY_PASSWORD}))
    role = f"arn:aws:iam::{ACCOUNT}:role/ml-job-role"
    jd = aws.client("batch").register_job_definition(
        jobDefinitionName="ml-private", type="container",
        containerProperties={"image": f"{REGISTRY}/ml/private:1.0", "command": ["true"], "jobRoleArn": role,
                             "repositoryCredentials": {"credentialsParameter": secret["ARN"]},
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "1024"}]})
    return {"job_definition": jd["jobDefinitionArn"], "image": f"{REGISTRY}/ml/private:1.0"}


def secrets_of(aws: Aws, root: Path) -> dict[str, str]:
    """Every secret value a run could have seen, by what it is."""
    found = {"registry password": REGISTRY_PASSWORD}
    token = aws.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    found["ECR token"] = token
    found["ECR password"] = base64.b64decode(token).decode().partition(":")[2]
    for pem in root.rglob("*.pem"):
        lines = [ln for ln in pem.read_text().splitlines() if ln and not ln.startswith("-----")]
        for i, line in enumerate(lines[1:-1:7]):  # several chunks from the middle of the key body
            found[f"private key {pem.name} #{i}"] = line[8:40]
    return found


def everything_written(root: Path, skip: set[Path]) -> dict[str, str]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and path.suffix != ".pem":
            out[str(path.relative_to(root))] = path.read_text(errors="replace")
    return out


@pytest.mark.parametrize("mode", ["--fix", "--fix-dry-run"])
def test_no_secret_in_any_output(preflight: Any, aws: Aws, pytester: pytest.Pytester, mode: str) -> None:
    raw = seed_catalog_scenario(aws, pytester.path / "state")
    private = private_registry(aws)
    configs = {
        "ecr": raw,
        "private": {**raw, "image": {"uri": private["image"]},
                    "batch": {**raw["batch"], "job_definition": private["job_definition"]}},
    }
    for name, cfg in configs.items():
        cfg = json.loads(json.dumps(cfg))
        cfg["key_pair"]["private_key_file"] = str(pytester.path / f"keys-{name}" / "ml-batch-key.pem")
        cfg.setdefault("image", {})["registry_endpoint"] = f"http://{REGISTRY}"
        preflight.write_config(cfg)
        result, _ = preflight.run(None, mode, "-rA", "-v", "--log-level=DEBUG", "--log-file=run.log",
                                  "--log-file-level=DEBUG", "--junitxml=pytest-junit.xml",
                                  "--mlbatch-junit=mlbatch-junit.xml")
        outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str(),
                   **everything_written(pytester.path, {pytester.path / "mlbatch.yaml"})}
        assert "run.log" in outputs and "mlbatch-junit.xml" in outputs and "mlbatch-report.json" in outputs
        assert "botocore" in outputs["run.log"], "DEBUG logs were not captured: the search would prove nothing"
        leaks = [f"{what} in {where}" for what, value in secrets_of(aws, pytester.path).items()
                 for where, text in outputs.items() if value and value in text]
        assert leaks == [], f"{name} scenario, {mode}: " + "; ".join(leaks)
    if mode == "--fix":
        assert list(pytester.path.rglob("*.pem")), "no private key was written: the key material went unchecked"


def test_private_key_and_journal_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    from pytest_mlbatch.engine.journal import Journal

    old = os.umask(0)
    try:
        keys.write_private_key(tmp_path / "sub" / "k.pem", keys.generate("ed25519"))
        Journal(tmp_path / ".mlbatch" / "journal.jsonl").record_outcome("KEY001", "k", "test", "applied")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "k.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".mlbatch" / "journal.jsonl").stat().st_mode) == 0o600


@pytest.mark.parametrize("existing", ["file", "dangling-symlink", "symlink-to-file"])
def test_write_private_key_never_writes_over_anything(tmp_path: Path, existing: str) -> None:
    target = tmp_path / "elsewhere.txt"
    path = tmp_path / "k.pem"
    if existing == "file":
        path.write_text("precious\n")
    elif existing == "dangling-symlink":
        path.symlink_to(target)
    else:
        target.write_text("precious\n")
        path.symlink_to(target)
    with pytest.raises(FileExistsError):
        keys.write_private_key(path, keys.generate("ed25519"))
    if existing == "dangling-symlink":
        assert not target.exists()
    else:
        assert (target if existing == "symlink-to-file" else path).read_text() == "precious\n"


def test_fix_declines_a_dangling_symlink_at_the_key_path(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    """End to end, the case a plain exists() misses: the fixer must not follow the link, and imports nothing."""
    target = pytester.path / "elsewhere.txt"
    (pytester.path / "k.pem").symlink_to(target)
    _, report = preflight.run({"version": 1, "region": "us-east-1",
                               "key_pair": {"name": "k", "private_key_file": "k.pem"}}, "--fix")
    row = preflight.result(report, "KEY001")
    assert row["outcome"] in ("failed", "error"), row
    assert not target.exists()
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []
