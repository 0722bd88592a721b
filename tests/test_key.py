"""KEY001/KEY002 on real moto key pairs, and the KEY001 fixer end to end."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from backends import Aws
from cryptography.hazmat.primitives import serialization

from pytest_mlbatch.analysis import keys


def config(tmp_file: str, name: str = "ml-batch-key") -> dict:
    return {"version": 1, "region": "us-east-1", "key_pair": {"name": name, "private_key_file": tmp_file}}


def test_key_pair_missing_fails_then_fix_imports_once(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    cfg = config("keys/ml.pem")
    result, report = preflight.run(cfg)
    assert preflight.result(report, "KEY001")["outcome"] == "failed"
    assert "does not exist in us-east-1" in preflight.result(report, "KEY001")["message"]
    assert preflight.result(report, "KEY002")["outcome"] == "skipped"
    others = [r for r in report["results"] if r["check_id"][:3] not in ("ENV", "KEY")]
    assert {r["outcome"] for r in others} <= {"skipped"}  # other areas have nothing configured
    result.assert_outcomes(failed=1, passed=2, skipped=2 + len(others))

    result, report = preflight.run(cfg, "--fix")
    assert preflight.result(report, "KEY001")["outcome"] == "fixed"
    assert preflight.result(report, "KEY002")["outcome"] == "passed"
    key_file = pytester.path / "keys" / "ml.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pairs = aws.client("ec2").describe_key_pairs()["KeyPairs"]
    assert [p["KeyName"] for p in pairs] == ["ml-batch-key"]
    assert {"Key": "pytest-mlbatch:managed", "Value": "true"} in pairs[0]["Tags"]
    # no key material in anything the run printed or wrote
    secret = key_file.read_text()
    body = "".join(secret.splitlines()[1:-1])[:40]
    assert body not in result.stdout.str() + result.stderr.str()
    assert body not in (pytester.path / "mlbatch-report.json").read_text()
    assert body not in (pytester.path / ".mlbatch" / "journal.jsonl").read_text()

    journal_before = (pytester.path / ".mlbatch" / "journal.jsonl").read_text()
    result, report = preflight.run(cfg, "--fix")
    assert preflight.outcomes(report, "KEY001") == {"KEY001[ml-batch-key]": "passed"}
    assert (pytester.path / ".mlbatch" / "journal.jsonl").read_text() == journal_before  # no second change
    assert len(aws.client("ec2").describe_key_pairs()["KeyPairs"]) == 1


def test_dry_run_changes_nothing(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    result, report = preflight.run(config("keys/ml.pem"), "--fix-dry-run")
    assert preflight.result(report, "KEY001")["outcome"] == "failed"
    assert report["fixes"][0]["calls"] == ["ec2:ImportKeyPair"]
    assert report["fixes"][0]["applied"] is False
    result.stdout.fnmatch_lines(["*fix plan (dry run*", "KEY001 ml-batch-key: generate a rsa key*",
                                 "*calls: ec2:ImportKeyPair*"])
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []
    assert not (pytester.path / "keys").exists()
    assert not (pytester.path / ".mlbatch" / "journal.jsonl").exists()


def test_fix_never_overwrites_an_unusable_file(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    (pytester.path / "keys").mkdir()
    (pytester.path / "keys" / "ml.pem").write_text("not a key\n")
    _result, report = preflight.run(config("keys/ml.pem"), "--fix")
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "failed"
    assert "never overwritten" in row["message"]
    assert (pytester.path / "keys" / "ml.pem").read_text() == "not a key\n"
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []


def test_fix_imports_existing_private_key(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    key = keys.generate("rsa")
    path = pytester.path / "ml.pem"
    keys.write_private_key(path, key)
    _, report = preflight.run(config("ml.pem"), "--fix")
    assert preflight.result(report, "KEY001")["outcome"] == "fixed"
    assert preflight.result(report, "KEY002")["outcome"] == "passed"


def test_private_key_file_missing(preflight, aws: Aws) -> None:
    aws.client("ec2").import_key_pair(KeyName="ml-batch-key", PublicKeyMaterial=keys.public_openssh(keys.generate()))
    _, report = preflight.run(config("nowhere.pem"))
    row = preflight.result(report, "KEY002")
    assert row["outcome"] == "failed" and "nowhere.pem does not exist" in row["message"]


def test_key_name_given_as_file_name(preflight, aws: Aws) -> None:
    _, report = preflight.run(config("x.pem", name="ml-batch-key.pem"))
    assert "looks like a file name" in preflight.result(report, "KEY001")["message"]


def test_private_key_mismatch_and_mode(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    ec2 = aws.client("ec2")
    other = keys.generate("rsa")
    ec2.import_key_pair(KeyName="ml-batch-key", PublicKeyMaterial=keys.public_openssh(other))
    mine = keys.generate("rsa")
    keys.write_private_key(pytester.path / "ml.pem", mine)
    _, report = preflight.run(config("ml.pem"))
    assert preflight.result(report, "KEY001")["outcome"] == "passed"
    row = preflight.result(report, "KEY002")
    assert row["outcome"] == "failed" and "does not match" in row["message"]

    os.chmod(pytester.path / "ml.pem", 0o644)
    _, report = preflight.run(None)
    row = preflight.result(report, "KEY002")
    assert row["outcome"] == "failed" and "mode 0644" in row["message"]


def test_aws_created_key_matches_sha1_formula(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    """moto's created-key fingerprints are not AWS's formula; we check our formula on the returned key."""
    created = aws.client("ec2").create_key_pair(KeyName="made-by-aws")
    key = serialization.load_pem_private_key(created["KeyMaterial"].encode(), password=None)
    fp = keys.fingerprint_created_rsa(key)  # type: ignore[arg-type]
    oracle = subprocess.run(
        "openssl pkcs8 -in /dev/stdin -nocrypt -topk8 -outform DER | openssl sha1 -c",
        shell=True, input=created["KeyMaterial"].encode(), capture_output=True, check=True,
    ).stdout.decode().split("= ")[-1].strip()
    assert fp == oracle


def test_imported_rsa_fingerprint_matches_openssl_and_moto(aws: Aws, tmp_path) -> None:
    key = keys.generate("rsa")
    path = tmp_path / "k.pem"
    keys.write_private_key(path, key)
    oracle = subprocess.run(
        f"openssl rsa -in {path} -pubout -outform DER | openssl md5 -c", shell=True,
        capture_output=True, check=True,
    ).stdout.decode().split("= ")[-1].strip()
    assert keys.fingerprint_imported_rsa(key) == oracle  # type: ignore[arg-type]
    imported = aws.client("ec2").import_key_pair(KeyName="k", PublicKeyMaterial=keys.public_openssh(key))
    assert keys.match(key, imported["KeyFingerprint"])[0]


def test_ed25519_fingerprint_matches_ssh_keygen(tmp_path) -> None:
    key = keys.generate("ed25519")
    path = tmp_path / "k"
    keys.write_private_key(path, key)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True,
                         check=True).stdout.decode()
    ssh_fp = out.split()[1]  # SHA256:base64-without-padding
    assert ssh_fp == "SHA256:" + keys.fingerprint_ed25519(key).rstrip("=")  # type: ignore[arg-type]
    assert keys.match(key, keys.fingerprint_ed25519(key))[0]  # type: ignore[arg-type]


def test_write_private_key_refuses_existing(tmp_path) -> None:
    path = tmp_path / "k"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        keys.write_private_key(path, keys.generate("ed25519"))
    assert path.read_text() == "keep me"


def test_a_misspelt_key_pair_name_says_which_one_was_meant(preflight, aws: Aws) -> None:
    aws.client("ec2").import_key_pair(KeyName="ml-batch-key", PublicKeyMaterial=keys.public_openssh(keys.generate()))
    _, report = preflight.run(config("x.pem", name="ml-bach-key"))
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "failed" and "did you mean 'ml-batch-key'?" in row["message"], row
    _, report = preflight.run(config("x.pem", name="gpu-cluster"))  # nothing near: no suggestion
    assert "did you mean" not in preflight.result(report, "KEY001")["message"]
