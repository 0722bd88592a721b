"""Fixes that cannot do harm: create-only (audited for every test by conftest), idempotent, race-safe, journaled.

- the session-wide audit (tests/audit.py, installed by conftest) catches a fixer that deletes, revokes, detaches,
  replaces, modifies in a narrowing way or overwrites; the guard refuses every such operation of the AWS models;
- every fixer of the registry: a second `--fix` makes zero mutating calls and leaves the journal as it was;
- two `--fix` processes at once create nothing twice;
- a fix that fails halfway leaves a journal saying what exists now.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from audit import AUDIT, DESTRUCTIVE, MODIFY, judge
from backends import ACCOUNT, Aws
from faults import seed_catalog_scenario, uncovered
from wsgi_backend import Fault, MotoMiddleware

from pytest_mlbatch.aws.guard import Guard, is_allowed_write, is_read
from pytest_mlbatch.engine.registry import load_checks

pytest_plugins = ["fault_fixtures"]

SERVICES = ("ec2", "iam", "ecr", "batch", "sts", "ecs", "logs", "ssm", "secretsmanager", "service-quotas",
            "autoscaling", "s3")
OPT_INS = ["internet_gateway", "nat_gateway", "vpc_endpoints", "endpoints", "service_linked_role"]


# -- the audit and the guard ----------------------------------------------------------------------------------------
def test_audit_flags_destructive_calls_made_during_a_fix(aws: Aws) -> None:
    ec2, iam = aws.client("ec2"), aws.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.create_key_pair(KeyName="k")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=doc)
    mark = AUDIT.mark()
    with Guard().allow(None, "TST001", "x"):  # what the engine wraps every fix in
        ec2.delete_key_pair(KeyName="k")
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # widening: allowed
        iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=doc)  # overwrite
        iam.put_role_policy(RoleName="r", PolicyName="new", PolicyDocument=doc)  # a new one: allowed
        ec2.create_key_pair(KeyName="k2")
    ec2.delete_key_pair(KeyName="k2")  # test arrangement, outside a fix: not the audit's business
    flagged = [(c.fixing, c.violation) for c in AUDIT.violations(mark)]
    AUDIT.forget(mark)  # asserted here; keep conftest's audit from failing this test
    assert flagged == [
        ("TST001 x", "ec2:DeleteKeyPair deletes, revokes, detaches or replaces"),
        ("TST001 x", "ec2:ModifyVpcAttribute modifies something that exists (it may narrow access)"),
        ("TST001 x", "iam:PutRolePolicy would overwrite an existing RolePolicy"),
    ]


def all_operations() -> list[str]:
    session = botocore.session.get_session()
    ops = []
    for name in SERVICES:
        model = session.get_service_model(name)
        ops += [f"{model.signing_name}:{op}" for op in model.operation_names]
    return ops


def test_guard_refuses_every_destructive_operation_of_the_models() -> None:
    """Over every operation of every service the plugin may touch: nothing destructive passes as a read or as an
    allowed fix write; every allowed Put that can overwrite is one the audit probes."""
    leaks = []
    for op in all_operations():
        name = op.split(":", 1)[1]
        if (DESTRUCTIVE.match(name) or MODIFY.match(name)) and (is_read(name) or is_allowed_write(name)):
            leaks.append(op)
        if judge(op, {}, lambda *_: {}) and is_read(name):
            leaks.append(op)
    assert leaks == []


def test_every_fixer_declares_its_permissions() -> None:
    for check in load_checks():
        if check.fixer is not None:
            assert check.fix_summary, f"{check.id}: fixer without a summary"
            assert check.fix_permissions, f"{check.id}: fixer without declared permissions"
            for perm in check.fix_permissions:
                name = perm.split(":", 1)[1]
                assert not DESTRUCTIVE.match(name), f"{check.id} declares {perm}"


# -- idempotency for every fixer ------------------------------------------------------------------------------------
def fix_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The sandbox scenario with every opt-in fix allowed, so every fixer that can run does."""
    cfg = json.loads(json.dumps(raw))
    cfg.setdefault("fix", {})["allow"] = sorted(set(cfg.get("fix", {}).get("allow", [])) | set(OPT_INS))
    return cfg


def journal_lines(root: Path) -> list[dict[str, Any]]:
    path = root / ".mlbatch" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def fresh_account(aws: Aws, root: Path) -> dict[str, Any]:
    """A VPC and a subnet, and a config naming everything else, none of which exists: every create-fixer runs."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    closed = ec2.create_security_group(GroupName="fresh-closed", Description="no egress", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(GroupId=closed, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])  # arrangement: a group without HTTPS egress
    return {
        "version": 1, "region": "us-east-1",
        "image": {"uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/fresh-model:1.0"},
        "key_pair": {"name": "fresh-key", "private_key_file": str(root / "fresh" / "fresh-key.pem")},
        "network": {"vpc_id": vpc, "subnet_ids": [subnet], "security_group_ids": [closed], "security_group": {
            "name": "fresh-sg", "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.7/32"}],
            "egress": [{"protocol": "tcp", "port": 443, "cidr": "0.0.0.0/0"}]}},
        "iam": {"service_role": "service-linked", "instance_role": "fresh-instance-role",
                "instance_profile": "fresh-instance-profile", "execution_role": "fresh-execution-role",
                "job_role": {"name": "fresh-job-role",
                             "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"}]}},
        "fix": {"tags": {"purpose": "fix-safety"}},
    }


def scenario_configs(aws: Aws, root: Path) -> list[tuple[str, dict[str, Any]]]:
    return [("sandbox", fix_config(seed_catalog_scenario(aws, root / "state"))),
            ("fresh account", fix_config(fresh_account(aws, root)))]


def test_every_fixer_is_idempotent(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    applied: set[str] = set()
    for name, cfg in scenario_configs(aws, pytester.path):
        preflight.write_config(_supported(cfg))
        mark = AUDIT.mark()
        result, first = preflight.run(None, "--fix")
        ours = re.findall(r'File "[^"]*pytest_mlbatch/[^"]*", line \d+', result.stdout.str() + result.stderr.str())
        assert ours == [], "a traceback through pytest-mlbatch was printed"
        fixed = {f"{r['check_id']} {r['resource']}" for r in first["results"] if r["outcome"] == "fixed"}
        applied |= {f["check_id"] for f in first["fixes"] if f.get("applied")}
        first_mutations = [c for c in AUDIT.since(mark) if c.fixing and c.mutating]
        assert {c.fixing for c in first_mutations} >= fixed
        assert uncovered({c.operation for c in first_mutations}, "fix") == [], "not in docs/iam-policy-fix.json"
        journal = journal_lines(pytester.path)

        mark = AUDIT.mark()
        _, second = preflight.run(None, "--fix")
        again = [c for c in AUDIT.since(mark) if c.fixing and c.mutating]
        failed_before = {f"{f['check_id']} {f['resource']}" for f in first["fixes"] if not f.get("applied")} | {
            f"{r['check_id']} {r['resource']}" for r in first["results"] if r["outcome"] == "error"}
        repeated = [c for c in again if c.fixing not in failed_before]
        assert repeated == [], f"{name}: a second --fix changed things again: {repeated}"
        for key in fixed:
            check_id, resource = key.split(" ", 1)
            row = next(r for r in second["results"] if r["check_id"] == check_id and r["resource"] == resource)
            assert row["outcome"] == "passed", row
        if not again:
            assert journal_lines(pytester.path) == journal
    fixers = {c.id for c in load_checks() if c.fixer is not None and not c.needs_docker and not c.fix_needs_docker}
    assert applied, "no fixer ran in any scenario"
    missing = sorted((fixers & KNOWN_FIXERS) - applied)
    assert missing == [], f"these fixers no longer run in the scenarios, so their idempotency is untested: {missing}"
    new = sorted(fixers - applied - KNOWN_FIXERS)
    if new:
        warnings.warn(f"fixers no scenario triggers (add one in tests/test_fix_safety.py): {new}", stacklevel=1)


def test_docker_fixers_are_shown_idempotent_with_a_real_daemon() -> None:
    """The fixers that push with Docker need dockerd and a registry, so the scenarios above leave them out; each is
    run twice (the second --fix must change nothing) in the test named here."""
    docker_fixers = {c.id for c in load_checks() if c.fixer is not None and (c.needs_docker or c.fix_needs_docker)}
    assert docker_fixers == set(DOCKER_FIXERS), "name the test that shows a new Docker fixer idempotent"
    source = (Path(__file__).parent / "test_img_docker.py").read_text()
    for check_id, test in DOCKER_FIXERS.items():
        assert f"def {test}(" in source, f"{check_id}: {test} is gone from tests/test_img_docker.py"


DOCKER_FIXERS = {"IMG002": "test_push_fix_then_compare_then_repush", "IMG003": "test_push_fix_then_compare_then_repush"}


# Fixers the scenarios above trigger (a fixer landing later that they miss gives a warning naming it).
KNOWN_FIXERS = {"IAM001", "IAM002", "IAM003", "IAM004", "IAM005", "IMG001", "KEY001", "NET003", "SG001", "SG002",
                "SG004"}


def _supported(cfg: dict[str, Any]) -> dict[str, Any]:
    """Drop opt-in names the config schema does not know (yet), so the config stays valid."""
    from pytest_mlbatch import config as config_mod

    allowed = config_mod.schema()["properties"].get("fix", {}).get("properties", {}).get("allow", {})
    names = allowed.get("items", {}).get("enum")
    if names:
        cfg["fix"]["allow"] = [n for n in cfg["fix"]["allow"] if n in names]
    return cfg


# -- two --fix processes at once ------------------------------------------------------------------------------------
def test_two_fix_processes_at_once_create_nothing_twice(aws: Aws, tmp_path: Path) -> None:
    raw = _supported(fix_config(seed_catalog_scenario(aws, tmp_path / "state")))
    procs = []
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
        cfg = json.loads(json.dumps(raw))
        cfg["key_pair"]["private_key_file"] = str(root / "ml-batch-key.pem")
        (root / "mlbatch.yaml").write_text(json.dumps(cfg))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "--mlbatch", "--fix", "-p", "no:cacheprovider", "-p", "no:randomly",
             "--mlbatch-json", "report.json", "-q"], cwd=root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    for out in outputs:
        assert not re.findall(r'File "[^"]*pytest_mlbatch/[^"]*", line \d+', out), out[-3000:]
    created: dict[str, list[tuple[str, str]]] = {}
    for root in roots:
        for entry in journal_lines(root):
            call = str(entry.get("call", ""))
            if entry.get("status") == "ok" and entry.get("created") and not call.startswith("local:") \
                    and call.split(":", 1)[-1].startswith(("Create", "Import", "Allocate")):
                created.setdefault(f"{entry['check_id']} {entry['resource']} {call}", []).append(
                    (root.name, json.dumps(entry["created"], sort_keys=True)))
    twice = {k: v for k, v in created.items() if len({who for who, _ in v}) > 1}
    assert twice == {}, f"both processes created: {twice}"
    pairs = aws.client("ec2").describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["ml-batch-key"]}])
    assert len(pairs["KeyPairs"]) == 1
    reports = [json.loads((root / "report.json").read_text()) for root in roots]
    for report in reports:  # the loser of a race reports an error or a failure, never a false `fixed`/`passed`
        assert report["summary"]["fixed"] + report["summary"]["failed"] + report["summary"]["error"] > 0


class Output:
    """A process's merged output, read as it comes (a thread), so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(
            line.decode(errors="replace") for line in stream), daemon=True)
        self._thread.start()

    def wait_for(self, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in list(self.lines) if text in line), None)
            if found is not None:
                return found
            assert proc.poll() is None and time.monotonic() < deadline, f"never saw {text!r}: {self.lines[-20:]}"
            time.sleep(0.05)

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "".join(self.lines)


def test_a_fix_waits_for_the_lock_and_reads_aws_again(aws: Aws, tmp_path: Path) -> None:
    """Deterministic form of the race above: this test holds the account's fix lock while a --fix run (with a
    TMPDIR of its own: the lock is per user, not per temp directory) finds the key pair missing and waits, saying
    who holds the lock; meanwhile "another run" creates it. Released, the waiting run reads AWS again and creates
    nothing."""
    from pytest_mlbatch.engine.fixlock import fix_lock

    key_file = tmp_path / "ml-batch-key.pem"
    cfg = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key", "private_key_file": str(key_file)}}
    (tmp_path / "mlbatch.yaml").write_text(json.dumps(cfg))
    (tmp_path / "own-tmp").mkdir()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path / "own-tmp")}
    with fix_lock(aws.account, "us-east-1") as held:
        assert held
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "--mlbatch", "--fix", "-p", "no:cacheprovider", "-p", "no:randomly",
             "-k", "KEY001", "--mlbatch-json", "report.json", "-q"], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = Output(proc)
        line = output.wait_for("waiting up to", proc)
        assert f"pid {os.getpid()} on " in line  # the holder is named
        aws.client("ec2").create_key_pair(KeyName="ml-batch-key")  # the other run's fix lands meanwhile
    proc.wait(timeout=120)
    out = output.text()
    report = json.loads((tmp_path / "report.json").read_text())
    row = next(r for r in report["results"] if r["check_id"] == "KEY001")
    assert row["outcome"] == "passed" and "read again before fixing" in row["message"], (row, out[-2000:])
    assert not key_file.exists()  # no key generated, nothing imported
    assert not [e for e in journal_lines(tmp_path) if str(e.get("call", "")).startswith("ec2:")]
    pairs = aws.client("ec2").describe_key_pairs()["KeyPairs"]
    assert [p["KeyName"] for p in pairs] == ["ml-batch-key"]


# -- a fix that fails halfway ---------------------------------------------------------------------------------------
def test_fix_failing_halfway_leaves_an_exact_journal(preflight: Any, aws: Aws, pytester: pytest.Pytester,
                                                     fault_server: MotoMiddleware, fast_backoff: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """KEY001's fix writes the private key, then imports it; the import fails (5xx): the journal says the file
    exists and the import failed, the item is `error` pointing at the journal, and the file really is there."""
    cfg = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key", "private_key_file": "k.pem"}}
    preflight.write_config(cfg)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.endpoint)
    fault_server.set(Fault("fault", "ec2:ImportKeyPair"))
    _, report = preflight.run(None, "--fix")
    fault_server.clear()
    row = preflight.result(report, "KEY001")
    assert row["outcome"] == "error" and "journal.jsonl" in row["message"], row
    entries = journal_lines(pytester.path)
    assert [(e.get("call") or e.get("action"), e["status"]) for e in entries] == [
        ("local:write private key (0600)", "ok"),
        ("ec2:ImportKeyPair", "intent"),  # written ahead, before the call was sent
        ("ec2:ImportKeyPair", "failed"),
        (entries[-1].get("action"), "failed"),
    ]
    assert entries[0]["created"]["path"] == str(pytester.path / "k.pem")
    assert (pytester.path / "k.pem").exists()
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []


def test_fix_with_no_answer_is_journaled_as_unknown(preflight: Any, aws: Aws, pytester: pytest.Pytester,
                                                    fault_server: MotoMiddleware, fast_backoff: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A create whose connection drops may or may not have happened: the journal says exactly that."""
    cfg = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key", "private_key_file": "k.pem"}}
    preflight.write_config(cfg)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.endpoint)
    fault_server.set(Fault("drop", "ec2:ImportKeyPair"))
    _, report = preflight.run(None, "--fix")
    fault_server.clear()
    assert preflight.result(report, "KEY001")["outcome"] == "error"
    entries = journal_lines(pytester.path)
    unknown = [e for e in entries if e.get("call") == "ec2:ImportKeyPair" and e["status"] != "intent"]
    assert [e["status"] for e in unknown] == ["unknown"]
    assert "may or may not have taken effect" in unknown[0]["detail"]
