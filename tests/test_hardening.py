"""Fix safety under faults and hostile input (issue 15): each guarantee of docs/reliability.md §7 with its proof.

Real backends only: moto in server mode (through the fault-injecting middleware where a slow or silent AWS is
needed), real signals, a second Unix user (`runuser -u nobody`), real symlinks, real GitHub-Actions output.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from audit import AUDIT
from backends import ACCOUNT, Aws
from img_fixtures import auth_registry
from net_fixtures import Net, run_checks
from wsgi_backend import Fault, MotoMiddleware

from pytest_mlbatch.aws import inventory as inventory_mod
from pytest_mlbatch.aws.guard import ForbiddenCall
from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.engine.context import PLAN_TAG

pytest_plugins = ["fault_fixtures"]
__all__ = ["auth_registry"]

ALLOW_S3 = json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def journal_lines(root: Path) -> list[dict[str, Any]]:
    path = root / ".mlbatch" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- 4. the guard allows only what a plan declared -----------------------------------------------------------------
def _probe(inv: Inventory, call: str, method: str, **params: Any) -> str:
    """Send one call inside a fix whose plan declared exactly that call: "sent", or the guard's refusal."""
    service = call.split(":", 1)[0]
    try:
        with inv.mutations(None, "TST001", "x", calls=[call], plan_id="p"):
            getattr(inv.client(service), method)(**params)
    except ForbiddenCall as exc:
        return f"refused: {exc}"
    return "sent"


def test_guard_refuses_overwrites_even_when_declared_and_calls_a_plan_did_not_declare(aws: Aws) -> None:
    iam, ecr, ec2 = aws.client("iam"), aws.client("ecr"), aws.client("ec2")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=trust, Tags=[{"Key": "team", "Value": "ml"}])
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=ALLOW_S3)
    policy = iam.create_policy(PolicyName="mp", PolicyDocument=ALLOW_S3)["Policy"]["Arn"]
    ecr.create_repository(repositoryName="repo")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "a" * 64}, "layers": []})
    ecr.put_image(repositoryName="repo", imageManifest=manifest, imageTag="1.0")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    inv = Inventory(boto3.Session(region_name="us-east-1"), "us-east-1")

    mark = AUDIT.mark()
    results = {
        "PutRolePolicy over an existing policy": _probe(
            inv, "iam:PutRolePolicy", "put_role_policy", RoleName="r", PolicyName="p", PolicyDocument=ALLOW_S3),
        "PutRolePermissionsBoundary": _probe(
            inv, "iam:PutRolePermissionsBoundary", "put_role_permissions_boundary", RoleName="r",
            PermissionsBoundary=policy),
        "TagRole changing a tag": _probe(inv, "iam:TagRole", "tag_role", RoleName="r",
                                         Tags=[{"Key": "team", "Value": "other"}]),
        "CreatePolicyVersion SetAsDefault": _probe(
            inv, "iam:CreatePolicyVersion", "create_policy_version", PolicyArn=policy, PolicyDocument=ALLOW_S3,
            SetAsDefault=True),
        "PutImage moving a tag": _probe(inv, "ecr:PutImage", "put_image", repositoryName="repo",
                                        imageManifest=manifest.replace("a" * 64, "b" * 64), imageTag="1.0"),
        "PutLifecyclePolicy": _probe(inv, "ecr:PutLifecyclePolicy", "put_lifecycle_policy", repositoryName="repo",
                                     lifecyclePolicyText='{"rules": []}'),
        "CreateNetworkAclEntry": _probe(
            inv, "ec2:CreateNetworkAclEntry", "create_network_acl_entry", NetworkAclId=acl, RuleNumber=1,
            Protocol="-1", RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0"),
    }
    undeclared = "sent"
    try:
        with inv.mutations(None, "TST001", "x", calls=["ec2:ImportKeyPair"], plan_id="p"):
            inv.client("ec2").create_key_pair(KeyName="not-in-the-plan")
    except ForbiddenCall as exc:
        undeclared = f"refused: {exc}"
    # what only creates passes when declared: a new inline policy, a new tag key, a new image tag
    creates = {
        "new inline policy": _probe(inv, "iam:PutRolePolicy", "put_role_policy", RoleName="r", PolicyName="new",
                                    PolicyDocument=ALLOW_S3),
        "new tag": _probe(inv, "iam:TagRole", "tag_role", RoleName="r", Tags=[{"Key": "owner", "Value": "me"}]),
        "new image tag": _probe(inv, "ecr:PutImage", "put_image", repositoryName="repo",
                                imageManifest=manifest, imageTag="2.0"),
    }
    AUDIT.forget(mark)  # the refused calls were never sent; the audit (which judges before sending) need not fail us

    assert {k: v for k, v in results.items() if not v.startswith("refused")} == {}
    assert "never overwrites" in results["PutRolePolicy over an existing policy"]
    assert undeclared.startswith("refused") and "not one of the calls the plan" in undeclared
    assert creates == dict.fromkeys(creates, "sent")
    assert iam.get_role_policy(RoleName="r", PolicyName="p")["PolicyDocument"]
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="r")["Tags"]} == {"team": "ml", "owner": "me"}
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert "PermissionsBoundary" not in iam.get_role(RoleName="r")["Role"]
    images = ecr.describe_images(repositoryName="repo", imageIds=[{"imageTag": "1.0"}])["imageDetails"]
    assert len(images) == 1 and images[0]["imageDigest"] == ecr.batch_get_image(
        repositoryName="repo", imageIds=[{"imageTag": "2.0"}])["images"][0]["imageId"]["imageDigest"]


# -- 1. a create is sent once; what an earlier run of the plan made is adopted or completed ------------------------
@pytest.fixture
def slow_creates(faulty: MotoMiddleware, fast_backoff: None, monkeypatch: pytest.MonkeyPatch) -> MotoMiddleware:
    """The plugin talks to moto through the fault middleware, with a read timeout of 3 s (moto's first IAM call
    after a reset loads the managed policies, which takes a second)."""
    monkeypatch.setattr(inventory_mod, "READ_TIMEOUT", 3)
    return faulty


def _nat_scenario(aws: Aws) -> tuple[dict[str, Any], str]:
    net = Net(aws)
    vpc = net.vpc("10.0.0.0/16")
    pub = net.subnet(vpc, "10.0.1.0/24", "a", public_ip=True)
    net.default_route(net.table(vpc, pub), GatewayId=net.igw(vpc))
    priv = net.subnet(vpc, "10.0.3.0/24", "b")
    net.table(vpc, priv)
    return {"network": {"vpc_id": vpc, "subnet_ids": [priv]}, "fix": {"allow": ["nat_gateway"]}}, priv


def _settle(server: MotoMiddleware) -> None:
    """Wait until the delayed requests the client gave up on have reached moto (the server thread goes on)."""
    deadline = time.monotonic() + 15
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


def test_allocate_address_answered_after_the_timeout_is_sent_once_then_adopted(
        aws: Aws, slow_creates: MotoMiddleware, tmp_path: Path) -> None:
    cfg, priv = _nat_scenario(aws)
    key = f"NET003[{priv}]"
    slow_creates.set(Fault("slow", "ec2:AllocateAddress", delay=4))
    first = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    _settle(slow_creates)
    assert first.outcome(key) == "error", first.message(key)
    assert slow_creates.counts("ec2:AllocateAddress") == Counter({"ec2:AllocateAddress": 1})  # not retried
    ec2 = aws.client("ec2")
    assert len(ec2.describe_addresses()["Addresses"]) == 1
    assert [e["status"] for e in journal_lines(tmp_path) if e.get("call") == "ec2:AllocateAddress"] == \
        ["intent", "unknown"]

    slow_creates.set()
    second = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert second.outcome(key) == "fixed", second.message(key)
    addresses = ec2.describe_addresses()["Addresses"]
    assert len(addresses) == 1, "a second Elastic IP was allocated instead of adopting the first"
    nats = ec2.describe_nat_gateways()["NatGateways"]
    assert len(nats) == 1 and nats[0]["NatGatewayAddresses"][0]["AllocationId"] == addresses[0]["AllocationId"]
    adopted = [e for e in journal_lines(tmp_path) if e.get("action") == "adopt"]
    assert len(adopted) == 1 and addresses[0]["AllocationId"] in adopted[0]["detail"]
    sent = [c for c in slow_creates.calls if c.name == "ec2:CreateNatGateway"]
    assert sent and sent[0].params.get("ClientToken", "").startswith("mlbatch-")


def test_a_second_machine_that_does_not_share_the_lock_adopts_what_the_first_made(
        aws: Aws, slow_creates: MotoMiddleware, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two machines share no lock: across machines, the plan's tag (the same plan id on every machine) and the
    re-read before each create are what prevent a duplicate. Machine A's Elastic IP is allocated but its answer is
    lost; while A still holds its lock, machine B (a lock directory of its own) runs the same fix: it does not wait
    for A, reads the address by the plan's tag and adopts it, so the account ends with one address and one NAT."""
    from pytest_mlbatch.engine import fixlock

    cfg, priv = _nat_scenario(aws)
    key = f"NET003[{priv}]"
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    machine_a.mkdir()
    machine_b.mkdir()
    slow_creates.set(Fault("slow", "ec2:AllocateAddress", delay=4))
    first = run_checks(cfg, machine_a, prefixes=("NET003",), fix=True)
    _settle(slow_creates)
    slow_creates.set()
    assert first.outcome(key) == "error", first.message(key)
    with fixlock.fix_lock(aws.account, "us-east-1"):  # machine A's lock, held
        monkeypatch.setattr(fixlock, "lock_dir", lambda: machine_b / "locks")  # machine B's own
        started = time.monotonic()
        second = run_checks(cfg, machine_b, prefixes=("NET003",), fix=True)
        took = time.monotonic() - started
    assert second.outcome(key) == "fixed", second.message(key)
    assert took < fixlock.DEFAULT_TIMEOUT / 2  # B never waited for A's lock
    ec2 = aws.client("ec2")
    addresses = ec2.describe_addresses()["Addresses"]
    nats = ec2.describe_nat_gateways()["NatGateways"]
    assert len(addresses) == 1 and len(nats) == 1, "machine B made a second address or NAT gateway"
    tags = {t["Key"]: t["Value"] for t in addresses[0].get("Tags", [])}
    plans_a = {e["plan"] for e in journal_lines(machine_a) if e.get("status") == "intent"}
    assert plans_a == {tags[PLAN_TAG]}  # A's intent and the address's tag name the plan B computed too
    adopted = [e for e in journal_lines(machine_b) if e.get("action") == "adopt"]
    assert len(adopted) == 1 and addresses[0]["AllocationId"] in adopted[0]["detail"]


def test_role_created_after_the_timeout_is_completed_by_the_next_fix(
        aws: Aws, slow_creates: MotoMiddleware, tmp_path: Path) -> None:
    cfg = {"iam": {"job_role": {"name": "ml-job-role",
                                "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"}]}}}
    slow_creates.set(Fault("slow", "iam:CreateRole", delay=4))
    first = run_checks(cfg, tmp_path, prefixes=("IAM005",), fix=True)
    _settle(slow_creates)
    key = next(iter(first.results))
    assert first.outcome(key) == "error", (first.message(key), slow_creates.operations())
    assert slow_creates.counts("iam:CreateRole") == Counter({"iam:CreateRole": 1}), (
        first.message(key), slow_creates.operations())
    iam = aws.client("iam")
    assert iam.list_role_policies(RoleName="ml-job-role")["PolicyNames"] == []  # half-built

    slow_creates.clear()
    second = run_checks(cfg, tmp_path, prefixes=("IAM005",), fix=True)
    assert second.outcome(key) == "fixed", second.message(key)
    assert iam.list_role_policies(RoleName="ml-job-role")["PolicyNames"] != []
    assert slow_creates.counts("iam:CreateRole") == Counter()  # completed, not created again
    # a role of the same name that this plan did not create is never touched
    iam.delete_role_policy(RoleName="ml-job-role", PolicyName=iam.list_role_policies(
        RoleName="ml-job-role")["PolicyNames"][0])
    iam.untag_role(RoleName="ml-job-role", TagKeys=[PLAN_TAG])
    third = run_checks(cfg, tmp_path, prefixes=("IAM005",), fix=True)
    assert third.outcome(key) == "failed" and "never edits an existing role" in third.message(key)


# -- 8. files are written without following links ------------------------------------------------------------------
KEY_CFG = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key", "private_key_file": "k.pem"}}
TRACEBACK = re.compile(r'File "[^"]*pytest_mlbatch/[^"]*", line \d+|Traceback \(most recent call last\)')


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--mlbatch", "-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_reports_are_never_written_through_a_planted_link(aws: Aws, preflight: Any, pytester: pytest.Pytester,
                                                          tmp_path: Path) -> None:
    preflight.write_config(KEY_CFG)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    # the old temp name was predictable (.NAME.PID.tmp): a link planted there redirected the report's bytes
    (pytester.path / f".r.json.{os.getpid()}.tmp").symlink_to(victim)
    result = _run(pytester, "--mlbatch-json", "r.json", "--mlbatch-junit", "j.xml")
    assert victim.read_text() == "precious\n"
    assert json.loads((pytester.path / "r.json").read_text())["results"]
    assert result.ret == 1  # KEY001 fails: the run's own answer, unchanged

    (pytester.path / "r.json").unlink()
    (pytester.path / "r.json").symlink_to(victim)  # the report path itself is a link
    (pytester.path / "j.xml").unlink()
    (pytester.path / "j.xml").symlink_to(tmp_path / "dangling")
    result = _run(pytester, "--mlbatch-json", "r.json", "--mlbatch-junit", "j.xml")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert victim.read_text() == "precious\n" and not (tmp_path / "dangling").exists()
    assert "--mlbatch-json" in out and "--mlbatch-junit" in out and "symbolic link" in out
    assert not TRACEBACK.search(out)
    leftovers = sorted(p.name for p in pytester.path.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == [f".r.json.{os.getpid()}.tmp"]  # only the planted link; no temp file of ours


def test_the_step_summary_is_never_appended_through_a_link(aws: Aws, preflight: Any, pytester: pytest.Pytester,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$GITHUB_STEP_SUMMARY that is a link (planted by a checked-out repository or an earlier step) is not followed:
    the target keeps its bytes, the run says why it wrote no summary and keeps its own answer."""
    preflight.write_config(KEY_CFG)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (pytester.path / "summary.md").symlink_to(victim)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result = _run(pytester, "-W", "default")
    out = result.stdout.str() + result.stderr.str()
    assert victim.read_text() == "precious\n"
    assert "cannot append to GITHUB_STEP_SUMMARY" in out and "symbolic link" in out
    assert result.ret == 1 and not TRACEBACK.search(out)  # KEY001 fails: the run's own answer, unchanged


def test_an_unwritable_report_path_is_a_usage_error_after_the_summary(aws: Aws, preflight: Any,
                                                                     pytester: pytest.Pytester) -> None:
    preflight.write_config(KEY_CFG)
    (pytester.path / "afile").write_text("")
    result = _run(pytester, "--mlbatch-json", "afile/report.json")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not TRACEBACK.search(out + result.stderr.str())
    summary = out.index("KEY001")  # the results were shown ...
    error = out.index("ERROR: --mlbatch-json: cannot write")
    assert summary < error  # ... before the usage error
    assert [p.name for p in pytester.path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("planted", [".mlbatch", ".mlbatch/journal.jsonl"])
def test_fix_refuses_a_journal_reached_through_a_link(aws: Aws, preflight: Any, pytester: pytest.Pytester,
                                                      tmp_path: Path, planted: str) -> None:
    preflight.write_config(KEY_CFG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == ".mlbatch":
        (pytester.path / ".mlbatch").symlink_to(elsewhere)
    else:
        (pytester.path / ".mlbatch").mkdir()
        (pytester.path / ".mlbatch" / "journal.jsonl").symlink_to(elsewhere / "journal.jsonl")
    result = _run(pytester, "--fix")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-2000:]
    assert "symbolic link" in out and not TRACEBACK.search(out)
    assert list(elsewhere.iterdir()) == []
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []  # nothing was fixed without a journal


# -- 9. configs that crashed instead of exit 4 --------------------------------------------------------------------
def _alias_bomb(levels: int) -> str:
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nregion: *l{levels - 1}\n"


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("mixed int and string keys", "version: 1\n1: a\nregion: us-east-1\n", "keys must be strings"),
    ("an integer over 4300 digits", "version: 1\nnetwork: {min_free_ips: " + "9" * 5000 + "}\n",
     "cannot be read as a config"),
    ("nesting deeper than the recursion limit", "version: 1\nchecks: " + "[" * 5000 + "]" * 5000 + "\n",
     "nested more"),
    ("a YAML alias bomb", _alias_bomb(6), "aliases"),
], ids=["mixed-keys", "huge-int", "deep-nesting", "alias-bomb"])
def test_config_that_crashed_is_a_usage_error(pytester: pytest.Pytester, name: str, text: str,
                                             expected: str) -> None:
    (pytester.path / "mlbatch.yaml").write_text(text)
    result = _run(pytester, "--mlbatch-json", "report.json")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert expected in out and not TRACEBACK.search(out) and "INTERNALERROR" not in out
    assert len(out) < 20_000, f"{name}: {len(out)} characters of output"
    assert not (pytester.path / "report.json").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_key_file_that_is_a_fifo_or_device_is_a_usage_error_not_a_hang(aws: Aws, pytester: pytest.Pytester,
                                                                         kind: str) -> None:
    """On moto KEY001 fails (no key pair), so --fix-dry-run plans its fix, which reads the key file."""
    key = pytester.path / "k.pem"
    if kind == "fifo":
        os.mkfifo(key)
    else:
        key = Path("/dev/zero")  # endless: reading it would never finish
    (pytester.path / "mlbatch.yaml").write_text(json.dumps(
        {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key", "private_key_file": str(key)}}))
    result = pytester.runpytest_subprocess("--mlbatch", "-p", "no:cacheprovider", "--fix-dry-run", timeout=60)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert "key_pair.private_key_file" in out and ("FIFO" if kind == "fifo" else "device") in out
    assert not TRACEBACK.search(out)


# -- 6. no injection into terminals, CI logs or reports -----------------------------------------------------------
FORGED = "ml\n::error title=forged::pwned \u202etxt.exe\n::warning::x"  # what EC2's XML can carry
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m"  # ESC, OSC, BEL, CSI: what a JSON API or a registry could carry


def test_hostile_names_from_aws_cannot_forge_lines_or_escape_sequences(aws: Aws, pytester: pytest.Pytester,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A security group whose name (AWS data, not config) holds a newline, a forged workflow command, ESC and
    bidi sequences fails SG004: under GitHub Actions every line of the output that is a workflow command is one
    of ours, no ESC reaches the terminal, the step summary or JUnit, and JSON keeps the name exactly."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName=FORGED, Description="hostile", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    (pytester.path / "mlbatch.yaml").write_text(json.dumps(
        {"version": 1, "region": "us-east-1", "network": {"vpc_id": vpc, "security_group_ids": [group]}}))
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = _run(pytester, "-k", "SG", "-rA", "-v", "--tb=short", "--color=no", "--fix-dry-run",
                  "--mlbatch-json", "r.json", "--mlbatch-junit", "j.xml")  # --tb: pytest's failure blocks too
    out = result.stdout.lines + result.stderr.lines
    report = json.loads((pytester.path / "r.json").read_text())
    row = next(r for r in report["results"] if r["check_id"] == "SG004")
    assert row["outcome"] == "failed" and FORGED in row["message"]  # JSON stays exact (and valid JSON)
    commands = [line.lstrip() for line in out if line.lstrip().startswith("::")]  # what the runner parses
    assert commands and all(re.match(r"::(error|warning|notice) title=[A-Z]{2,3}\d{3} ", c) for c in commands), \
        commands
    assert any(c.startswith("::error title=SG004") for c in commands)
    texts = {"terminal": "\n".join(out), "step summary": step_summary.read_text(),
             "junit": (pytester.path / "j.xml").read_text()}
    for name, text in texts.items():
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", text), f"a control character reached the {name}"
    assert "ml\\n::error title=forged::pwned \\u202etxt.exe\\n::warning::x" in texts["terminal"]  # escaped
    ET.fromstring(texts["junit"].encode())


def test_escape_sequences_never_reach_any_text_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every writer of text (terminal summary, annotations, step summary Markdown, JUnit, a fix plan) given a
    result whose resource, message and plan hold ESC/OSC/CSI sequences and newlines."""
    from pytest_mlbatch.engine.context import FixPlan
    from pytest_mlbatch.output import github, report, summary

    plan = FixPlan(f"k{ESCAPES}\n::error::x", f"import {ESCAPES}", calls=["ec2:ImportKeyPair"], check_id="KEY001",
                   permissions=["ec2:ImportKeyPair"], apply=lambda fx: None, notes=[f"n\n::error::{ESCAPES}"])
    row = {"check_id": "KEY001", "slug": "key-pair-exists", "title": "t", "severity": "high", "area": "KEY",
           "target": "us-east-1", "account": "123456789012", "region": "us-east-1",
           "resource": f"k{ESCAPES}\n::error title=forged::x", "outcome": "failed",
           "message": f"bad {ESCAPES}\n::error title=forged::x", "remediation": f"do {ESCAPES}", "duration_s": 0.0,
           "below_threshold": False, "fix": plan.as_json(False), "plan": plan.describe(), "notes": []}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    class Terminal:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write_line(self, line: str, **markup: bool) -> None:
            self.lines.append(line)

        def section(self, title: str, sep: str = "=") -> None:
            self.lines.append(title)

    class Run:
        fail_on = type("F", (), {"value": "low"})()
        settings = type("S", (), {"exempt": ()})()
        fix_dry_run = True
        journal = type("J", (), {"path": tmp_path / "journal.jsonl"})()

    term = Terminal()
    summary.write_summary(term, [row], Run(), verbose=1)  # type: ignore[arg-type]
    outputs = {"terminal": "\n".join(term.lines), "markdown": github.markdown([row], "low"),
               "annotations": "\n".join(github.annotation_lines([row], "low")),
               "junit": report.junit_xml([row], "low")}
    for name, text in outputs.items():
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), f"a control character reached the {name}"
        forged = [line for line in text.splitlines()
                  if line.lstrip().startswith("::") and not line.startswith("::error title=KEY001")]
        assert forged == [], (name, forged)
    assert "\\x1b[2J" in outputs["terminal"]


@pytest.mark.parametrize(("args", "config", "expected"), [
    ((), {"key_pair": {"name": "ml-key\n::error title=forged::x"}}, "key_pair.name: contains the control character"),
    ((), {"key_pair": {"name": "ml-key\n"}}, "key_pair.name: contains the control character"),
    ((), {"region": "us-east-1\n"}, "region:"),
    (("--aws-region", "us-east-1\n::error title=forged::x"), {}, "--aws-region:"),
], ids=["newline-in-name", "trailing-newline", "region-trailing-newline", "cli-region"])
def test_names_and_regions_are_validated_to_the_very_end(pytester: pytest.Pytester, args: tuple[str, ...],
                                                         config: dict[str, Any], expected: str) -> None:
    (pytester.path / "mlbatch.yaml").write_text(json.dumps({"version": 1, **config}))
    result = _run(pytester, *args)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-2000:]
    assert expected in out
    assert not [line for line in out.splitlines() if line.startswith("::")]


# -- 7. no secret in DEBUG logs -----------------------------------------------------------------------------------
def test_debug_logs_never_hold_the_session_token_or_authorization(aws: Aws, tmp_path: Path) -> None:
    """botocore's own DEBUG loggers print the x-amz-security-token and Authorization headers of every request
    (and the canonical request they sign); with the plugin active, no sink shows them: the live log, --log-file,
    pytest's --junitxml with junit_logging=all, stdout and stderr."""
    token = "DistinctiveSessionToken" + "Q9x7" * 8
    (tmp_path / "mlbatch.yaml").write_text(json.dumps(KEY_CFG))
    env = {**os.environ, "AWS_SESSION_TOKEN": token, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--mlbatch", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA",
         "--log-cli-level=DEBUG", "--log-file=debug.log", "--log-file-level=DEBUG", "--log-level=DEBUG",
         "--junitxml=junit.xml", "-o", "junit_logging=all", "--mlbatch-json", "r.json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    sinks = {"stdout": proc.stdout, "stderr": proc.stderr, "log file": (tmp_path / "debug.log").read_text(),
             "junit": (tmp_path / "junit.xml").read_text(), "json": (tmp_path / "r.json").read_text()}
    assert "x-amz-security-token" in sinks["log file"].lower()  # botocore did log the header (redacted)
    assert "<redacted>" in sinks["log file"]
    leaks = [name for name, text in sinks.items() if token in text]
    assert leaks == [], f"the session token leaked into {leaks}"
    signatures = [name for name, text in sinks.items() if re.search(r"Signature=[0-9a-f]{64}", text)]
    assert signatures == [], f"an Authorization header leaked into {signatures}"


class _EchoingRegistry(http.server.BaseHTTPRequestHandler):
    """A hostile registry: asks for Basic credentials, then refuses them with an error whose message, a header and
    a realm echo the Authorization header it was sent (a registry is a third party; what it answers is data)."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if not auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="hostile"')
            self.end_headers()
            return
        body = json.dumps({"errors": [{"code": "DENIED", "message": f"credentials {auth} refused",
                                       "detail": {"Authorization": auth}}]}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", auth)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_registry_echoing_the_credentials_gets_them_into_no_output(aws: Aws, preflight: Any) -> None:
    """The registry at image.registry_endpoint answers the ECR token it was sent back in its error message and
    headers: the run fails the pull for that reason, and no output (terminal with DEBUG logs, JSON, JUnit) holds
    the password or the Basic header built from it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoingRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ecr = aws.client("ecr")
        ecr.create_repository(repositoryName="echoed")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                               "digest": "sha256:" + "4" * 64}, "layers": []}
        ecr.put_image(repositoryName="echoed", imageManifest=json.dumps(manifest), imageTag="1.0")
        password = f"{aws.client('sts').get_caller_identity()['Account']}-auth-token"  # moto's ECR token password
        basic = base64.b64encode(f"AWS:{password}".encode()).decode()
        cfg = {"version": 1, "region": "us-east-1",
               "image": {"uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/echoed:1.0",
                         "registry_endpoint": f"http://127.0.0.1:{server.server_address[1]}"}}
        result, report = preflight.run(cfg, "-k", "IMG004", "-rA", "--tb=long", "--log-level=DEBUG",
                                       "--log-cli-level=DEBUG", "--mlbatch-junit", "c.xml",
                                       "--junitxml=j.xml", "-o", "junit_logging=all")
    finally:
        server.shutdown()
    row = preflight.result(report, "IMG004")
    assert row["outcome"] in ("failed", "error") and "DENIED" in row["message"], row
    sinks = {"terminal": result.stdout.str() + result.stderr.str(), "json": json.dumps(report),
             "compliance junit": (preflight.pytester.path / "c.xml").read_text(),
             "pytest junit": (preflight.pytester.path / "j.xml").read_text()}
    leaks = [name for name, text in sinks.items() if password in text or basic in text]
    assert leaks == [], f"the registry credential leaked into {leaks}"


# -- 3. the fix lock: per user, bounded, never skipped --------------------------------------------------------------
HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
try:
    os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o644)
    print("CREATED", flush=True)
except OSError as exc:
    print("DENIED", exc.errno, flush=True)
time.sleep(600)
"""


def _fix_run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--mlbatch", "--fix", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-k", "KEY001", "--mlbatch-json", "report.json", "-q", *args], cwd=root,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("runuser") or not Path("/usr/bin/python3").exists(),
                    reason="needs root, runuser and a system python to act as a second user")
def test_another_local_user_can_neither_block_nor_take_the_fix_lock(aws: Aws, tmp_path: Path) -> None:
    """`nobody` pre-creates and holds the lock where it used to live (a shared temp directory, predictable name)
    and tries to create the new one: it cannot, and --fix (with that shared TMPDIR) runs to the end."""
    from pytest_mlbatch.engine.fixlock import lock_path

    shared = Path(tempfile.mkdtemp(prefix="mlbatch-shared-", dir="/tmp"))
    shared.chmod(0o1777)
    (tmp_path / "mlbatch.yaml").write_text(json.dumps(
        {**KEY_CFG, "key_pair": {"name": "ml-batch-key", "private_key_file": str(tmp_path / "k.pem")}}))
    old = shared / f"pytest-mlbatch-{os.getuid()}-fix-{aws.account}-us-east-1.lock"
    squatter = subprocess.Popen(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", HOLD, str(old),
                                 str(lock_path(aws.account, "us-east-1"))], stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().startswith("DENIED")
        proc = _fix_run(tmp_path, env={"TMPDIR": str(shared)})
        out = proc.communicate(timeout=240)[0].decode()
    finally:
        squatter.kill()
        squatter.wait()
        shutil.rmtree(shared, ignore_errors=True)
    row = next(r for r in json.loads((tmp_path / "report.json").read_text())["results"] if r["check_id"] == "KEY001")
    assert row["outcome"] == "fixed", (row, out[-2000:])


def test_a_held_lock_is_waited_for_a_bounded_time_naming_the_holder(aws: Aws, tmp_path: Path) -> None:
    from pytest_mlbatch.engine.fixlock import fix_lock

    (tmp_path / "mlbatch.yaml").write_text(json.dumps(
        {**KEY_CFG, "key_pair": {"name": "ml-batch-key", "private_key_file": str(tmp_path / "k.pem")}}))
    with fix_lock(aws.account, "us-east-1"):
        start = time.monotonic()
        proc = _fix_run(tmp_path, "--mlbatch-lock-timeout", "2")
        out = proc.communicate(timeout=240)[0].decode()
        waited = time.monotonic() - start
    row = next(r for r in json.loads((tmp_path / "report.json").read_text())["results"] if r["check_id"] == "KEY001")
    assert row["outcome"] == "error", (row, out[-2000:])
    assert "fix lock" in row["message"] and f"pid {os.getpid()} on" in row["message"]
    assert f"held by pid {os.getpid()} on" in out  # said while waiting, not only at the end
    assert waited < 120
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == [] and not (tmp_path / "k.pem").exists()


# -- 10. a bound on the whole run -----------------------------------------------------------------------------------
@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP endpoint that accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_the_run_ends_at_its_deadline_with_every_unfinished_check_an_error(
        pytester: pytest.Pytester, silent_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    monkeypatch.setattr(inventory_mod, "READ_TIMEOUT", 2)  # one request's worst case: 2 s (no retry after it)
    (pytester.path / "mlbatch.yaml").write_text(json.dumps({
        "version": 1, "region": "us-east-1", "key_pair": {"name": "k"},
        "network": {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1", "subnet-2"]},
        "iam": {"instance_role": "r", "execution_role": "e"}}))
    start = time.monotonic()
    _run(pytester, "--mlbatch-deadline", "3", "--mlbatch-concurrency", "1", "--mlbatch-json", "r.json")
    took = time.monotonic() - start
    report = json.loads((pytester.path / "r.json").read_text())
    errors = [r for r in report["results"] if r["outcome"] == "error"]
    assert took < 20, f"the run took {took:.0f} s past a 3 s deadline"
    assert errors and any("--mlbatch-deadline" in r["message"] for r in errors), errors
    assert not [r for r in report["results"] if r["outcome"] == "passed" and r["check_id"] not in ("ENV002",)]


# -- 2. write-ahead journal: an interrupted run is reconciled by the next ----------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_fix_is_reconciled_and_adopted_by_the_next_run(aws: Aws, faulty: MotoMiddleware,
                                                                      tmp_path: Path, sig: signal.Signals) -> None:
    cfg, _ = _nat_scenario(aws)
    (tmp_path / "mlbatch.yaml").write_text(json.dumps({"version": 1, "region": "us-east-1", **cfg}))
    faulty.set(Fault("slow", "ec2:AllocateAddress", delay=6))
    args = [sys.executable, "-m", "pytest", "--mlbatch", "--fix", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-k", "NET003", "-q"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not faulty.counts("ec2:AllocateAddress"):
        assert proc.poll() is None and time.monotonic() < deadline, "the fix never sent AllocateAddress"
        time.sleep(0.05)
    proc.send_signal(sig)  # mid-call: the address is being allocated, the answer never comes back
    proc.wait(timeout=60)
    _settle(faulty)
    ec2 = aws.client("ec2")
    assert len(ec2.describe_addresses()["Addresses"]) == 1  # AWS made it
    sent = [e for e in journal_lines(tmp_path) if e.get("call") == "ec2:AllocateAddress"]
    assert sent and sent[0]["status"] == "intent" and sent[0]["plan"]  # written before the call was sent

    faulty.clear()
    second = subprocess.run([*args, "--mlbatch-json", "r.json"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    row = next(r for r in json.loads((tmp_path / "r.json").read_text())["results"] if r["check_id"] == "NET003")
    assert row["outcome"] == "fixed", (row, second.stdout[-2000:])
    addresses = ec2.describe_addresses()["Addresses"]
    assert len(addresses) == 1, "the interrupted run's Elastic IP was not adopted"
    assert len(ec2.describe_nat_gateways()["NatGateways"]) == 1
    entries = journal_lines(tmp_path)
    assert [e for e in entries if e.get("action") == "adopt" and addresses[0]["AllocationId"] in e["detail"]]
    if sig == signal.SIGKILL:  # no answer was recorded at all: the journal itself says the plan was cut short
        assert [e for e in entries if e.get("status") == "reconcile"]
        assert "interrupted" in row["message"]


# -- 5. a registry push never moves a tag -------------------------------------------------------------------------
def test_push_never_moves_a_tag_the_receiving_registry_holds(preflight: Any, aws: Aws, auth_registry: str,
                                                             docker_env: str, pytester: pytest.Pytester) -> None:
    """image.registry_endpoint is a registry that already serves held:1.0 (pushed there directly, so the ECR API
    does not list it): IMG002's fix asks that registry, refuses to move the tag without the opt-in, and with it
    journals the digest the tag had."""
    import docker
    from img_fixtures import TOKEN_PASSWORD, build_scratch, ecr_config

    from pytest_mlbatch import dockerops
    from pytest_mlbatch.oci import Credentials, RegistryClient

    client = docker.DockerClient(base_url=docker_env)
    creds = Credentials("AWS", TOKEN_PASSWORD)
    original = build_scratch(client, "someone-else:1", "their build")
    held = dockerops.tag_and_push(client, original, f"{auth_registry}/held", "1.0", creds)
    build_scratch(client, "mlmodel-local:2", "our build")
    aws.client("ecr").create_repository(repositoryName="held")
    reg = RegistryClient(f"http://{auth_registry}", creds)
    cfg = ecr_config("held:1.0", auth_registry, local="mlmodel-local:2")

    _, report = preflight.run(cfg, "-k", "IMG002", "--fix")
    r2 = preflight.result(report, "IMG002")
    assert r2["outcome"] == "failed" and "never moves a tag" in r2["message"], r2
    assert reg.manifest("held", "1.0").digest == held  # type: ignore[union-attr]

    cfg["fix"] = {"allow": ["move_tag"]}
    _, report = preflight.run(cfg, "-k", "IMG002", "--fix")
    assert preflight.result(report, "IMG002")["outcome"] == "fixed"
    assert reg.manifest("held", "1.0").digest != held  # type: ignore[union-attr]
    moves = [e for e in journal_lines(pytester.path) if e.get("call") == "local:tag moves from"]
    assert len(moves) == 1 and held in moves[0]["created"]["path"]


def test_every_test_the_reliability_doc_names_exists() -> None:
    """docs/reliability.md states each guarantee with the test that proves it: each named test must exist."""
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b", doc)) - {"test_layers", "test_hardening", "test_secrets",
                                                              "test_fix_safety", "test_faults", "test_bad_input",
                                                              "test_fuzz", "test_least_privilege"}
    sources = "\n".join(p.read_text() for p in (root / "tests").glob("test_*.py"))
    missing = sorted(n for n in named if f"def {n}(" not in sources)
    assert named and missing == [], missing
