"""Fuzzing (hypothesis): bad input gives a clear error, never a crash.

- the config loader: random documents, random text (YAML, TOML, JSON), and mutations of a valid full config give
  a valid config or a ConfigError naming the key path — never another exception;
- image references (analysis.imageref): parse or ImageRefError, and what parses round-trips;
- job definition documents: every check that runs on a job definition answers (passed, failed, error with a
  reason) on any document, never with an internal error;
- IAM policy documents (pytest_mlbatch.analysis.policy, when present): the evaluator never crashes, never allows on a
  document without an applicable Allow, and answers unknown where a condition could change the answer.
Example counts are modest so the suite stays fast.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_mlbatch import config as cfg

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FULL = {
    "version": 1, "region": "us-east-1", "profile": "ml", "account_id": "123456789012",
    "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0", "local": "mlmodel:1.0",
              "pull": False, "scan_fail_at": "critical"},
    "key_pair": {"name": "ml-batch-key", "private_key_file": "~/.ssh/ml-batch-key.pem"},
    "network": {"vpc_id": "vpc-0123", "subnet_ids": ["subnet-0a", "subnet-0b"], "security_group_ids": ["sg-0123"],
                "security_group": {"name": "ml-batch-sg",
                                   "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.7/32"}]},
                "min_free_ips": 16},
    "iam": {"service_role": "AWSBatchServiceRole", "instance_role": "ecsInstanceRole",
            "instance_profile": "ecsInstanceRole", "execution_role": "ecsTaskExecutionRole",
            "job_role": {"name": "ml-job-role",
                         "allow": [{"action": "s3:GetObject", "resource": "arn:aws:s3:::ml-data/*"}]}},
    "batch": {"compute_environment": "ml-ce", "job_queue": "ml-queue", "job_definition": "ml-train",
              "job": {"vcpus": 4, "memory": 16384, "gpus": 0}},
    "fix": {"allow": ["internet_gateway", "nat_gateway"], "tags": {"team": "ml"}},
    "checks": {"skip": ["IMG008"], "severity": {"NET004": "medium"},
               "exempt": [{"check": "SG003", "resource": "sg-0123", "until": "2026-12-31", "reason": "bastion"}]},
    "targets": [{"region": "us-east-1"},
                {"region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/preflight"}],
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["", "us-east-1", "sg-1", "2026-13-45", "*", "~"]))
keys_ = st.one_of(st.sampled_from(sorted({*FULL, *(k for v in FULL.values() if isinstance(v, dict) for k in v)})),
                  st.text(min_size=1, max_size=10))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys_, inner, max_size=5)),
                         max_leaves=20)


def _path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load(doc: Any) -> cfg.Settings | cfg.ConfigError:
    """build() must return Settings or raise ConfigError; anything else fails the test (a traceback)."""
    try:
        if not isinstance(doc, dict):
            raise cfg.ConfigError("fuzz: the top level must be a mapping of keys")
        return cfg.build("fuzz", doc)
    except cfg.ConfigError as exc:
        return exc


PROBLEM = re.compile(r"^  (\(top level\)|[A-Za-z_][\w-]*(\.[^.\s:\[]+|\[\d+\])*|.+?): ")


@FAST
@given(documents)
def test_random_documents_load_or_name_the_key(doc: Any) -> None:
    out = load(doc)
    if isinstance(out, cfg.ConfigError):
        lines = str(out).splitlines()
        assert lines[0].startswith("fuzz") or lines[0].startswith("invalid config fuzz"), lines
        for line in lines[1:]:
            assert PROBLEM.match(line) or line.strip().startswith("(+"), line


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """A valid full config with one change at one key path: (document, path, change)."""
    doc = copy.deepcopy(FULL)
    # every (path, container) in the document
    nodes: list[tuple[list[Any], Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        nodes.append((path, node))
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])

    walk(doc, [])
    path, node = draw(st.sampled_from(nodes))
    change = draw(st.sampled_from(["unknown-key", "replace", "delete"]))
    if change == "unknown-key" and isinstance(node, dict) and path[-1:] != ["tags"] and path[-1:] != ["severity"]:
        node["zz_unknown"] = draw(scalars)
        return doc, _path([*path, "zz_unknown"]), change
    if not path:
        return doc, "", "none"
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if change == "delete":
        del parent[path[-1]]
        return doc, _path(path), change
    parent[path[-1]] = draw(documents)
    return doc, _path(path), "replace"


@FAST
@given(mutations())
def test_mutated_valid_config_loads_or_names_the_path(case: tuple[dict[str, Any], str, str]) -> None:
    doc, path, change = case
    out = load(doc)
    if change == "unknown-key":
        assert isinstance(out, cfg.ConfigError)
        # an unknown key whose drawn value is also not printable text may be refused for the value first: either
        # way the complaint names the key's path
        assert f"{path}: unknown key" in str(out) or f"{path}: contains the control character" in str(out), str(out)
    elif isinstance(out, cfg.ConfigError):
        # the complaint is about the changed key or something inside/above it, by path
        head = path.split("[")[0].split(".")[0]
        assert head in str(out) or "(top level)" in str(out) or "until" in str(out), (path, str(out))


def test_the_full_config_is_valid() -> None:
    assert isinstance(load(copy.deepcopy(FULL)), cfg.Settings)


@FAST
@given(st.text(max_size=200), st.sampled_from(["mlbatch.yaml", "mlbatch.json", "cfg.toml"]))
def test_random_text_files(text: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else \
            path.write_bytes(text.encode("utf-8", "replace"))
        try:
            source, raw = cfg.find_config(Path(d), name)
            cfg.build(source, raw)
        except cfg.ConfigError as exc:
            assert str(exc).startswith((str(path), "invalid config")), str(exc)


@FAST
@given(st.text(max_size=200))
def test_random_pyproject(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "pyproject.toml").write_bytes(("[tool.mlbatch]\n" + text).encode("utf-8", "replace"))
        try:
            source, raw = cfg.find_config(Path(d), None)
            cfg.build(source, raw)
        except cfg.ConfigError:
            pass


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- image references -------------------------------------------------------------------------------------------
REF_CHARS = st.sampled_from([*"abcz09._-/:@ABZ", "sha256:" + "a" * 64, ".dkr.ecr.", ".amazonaws.com", "123456789012",
                             "localhost", "[::1]", ":5000", "us-east-1"])


@FAST
@given(st.one_of(st.text(max_size=60), st.lists(REF_CHARS, max_size=12).map("".join)))
def test_image_references_parse_or_say_why(text: str) -> None:
    imageref = pytest.importorskip("pytest_mlbatch.analysis.imageref")
    try:
        ref = imageref.parse(text)
    except imageref.ImageRefError as exc:
        assert str(exc)
        return
    again = imageref.parse(str(ref))
    assert (again.registry, again.repository, again.tag, again.digest) == \
        (ref.registry, ref.repository, ref.tag, ref.digest)
    if ref.is_ecr:
        assert ref.account and ref.region


# -- IAM policy documents ---------------------------------------------------------------------------------------
actions = st.sampled_from(["s3:GetObject", "s3:*", "*", "ecr:Get*", "iam:PassRole", "S3:getobject", "s3:Get?bject",
                           "", "ec2:", ":", "not-an-action"])
resources_ = st.sampled_from(["*", "arn:aws:s3:::ml-data/*", "arn:aws:s3:::ml-data/${aws:username}/*",
                              "arn:aws:s3:::other", "", "arn:", "arn:aws:iam::123456789012:role/r"])
anything = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars,
                                                                               max_size=3))
conditions = st.one_of(
    st.dictionaries(st.sampled_from(["StringEquals", "StringLike", "ArnLike", "IpAddress", "Bool",
                                     "ForAnyValue:StringEquals", "StringEqualsIfExists", "Null", "Bogus"]),
                    st.dictionaries(st.sampled_from(["aws:SourceIp", "s3:prefix", "aws:PrincipalTag/team"]),
                                    st.one_of(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=2)),
                                    max_size=2), max_size=2),
    anything)
statement = st.fixed_dictionaries(
    {"Effect": st.one_of(st.sampled_from(["Allow", "Deny", "allow", "DENY"]), anything)},
    optional={"Action": st.one_of(actions, st.lists(actions, max_size=3), anything),
              "NotAction": st.one_of(actions, st.lists(actions, max_size=3)),
              "Resource": st.one_of(resources_, st.lists(resources_, max_size=3), anything),
              "NotResource": st.one_of(resources_, st.lists(resources_, max_size=3)),
              "Condition": conditions, "Sid": anything, "Principal": anything})
policy_documents = st.one_of(
    st.fixed_dictionaries({"Version": st.sampled_from(["2012-10-17", "2008-10-17", "x"])},
                          optional={"Statement": st.one_of(statement, st.lists(statement, max_size=4), anything)}),
    anything)


@settings(max_examples=150, deadline=None)
@given(policy_documents, st.sampled_from(["s3:GetObject", "ecr:GetAuthorizationToken", "iam:PassRole"]),
       st.sampled_from(["*", "arn:aws:s3:::ml-data/x", "arn:aws:iam::123456789012:role/r"]))
def test_policy_evaluator_never_crashes(doc: Any, action: str, resource: str) -> None:
    policy = pytest.importorskip("pytest_mlbatch.analysis.policy")
    try:
        parsed = policy.parse_document(doc if isinstance(doc, dict) else json.dumps(doc))
    except ValueError:
        return  # not a JSON object: the caller reports it unreadable
    decision = policy.evaluate([policy.Document("fuzz", parsed)], policy.Request(action, resource))
    assert decision.verdict in ("allowed", "denied", "unknown")
    stmts = parsed.get("Statement")
    stmts = stmts if isinstance(stmts, list) else [stmts]
    allows = [s for s in stmts if isinstance(s, dict) and str(s.get("Effect", "")).lower() == "allow"]
    if not allows:
        assert decision.verdict != "allowed", (parsed, decision)
    if decision.verdict == "allowed":
        assert all(not (isinstance(s, dict) and str(s.get("Effect", "")).lower() == "deny"
                        and s.get("Action") in ("*", action) and s.get("Resource") in ("*", resource)
                        and "Condition" not in s and "NotAction" not in s and "NotResource" not in s)
                   for s in stmts), (parsed, decision)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["StringEquals", "StringLike", "IpAddress", "Bogus", "ForAllValues:StringLike"]))
def test_conditions_make_an_allow_unknown(operator: str) -> None:
    policy = pytest.importorskip("pytest_mlbatch.analysis.policy")
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
         "Condition": {operator: {"aws:SourceIp": "203.0.113.0/24"}}}]}
    decision = policy.evaluate([policy.Document("fuzz", doc)], policy.Request("s3:GetObject", "arn:aws:s3:::b/k"))
    assert decision.verdict == "unknown", decision


# -- job definition documents -------------------------------------------------------------------------------------
container = st.fixed_dictionaries({}, optional={
    "image": st.one_of(st.sampled_from(["mlmodel:1.0", "", "UPPER:x", "a" * 300]), anything),
    "vcpus": st.one_of(st.integers(-5, 10_000), anything), "memory": st.one_of(st.integers(-5, 10**7), anything),
    "command": anything, "jobRoleArn": anything, "executionRoleArn": anything,
    "resourceRequirements": st.one_of(st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["VCPU", "MEMORY", "GPU", "vcpu", "X"]),
         "value": st.one_of(st.sampled_from(["1", "0.25", "16384", "-1", "abc", ""]), anything)}), max_size=4),
        anything),
    "linuxParameters": st.one_of(st.fixed_dictionaries({}, optional={"sharedMemorySize": anything}), anything),
    "fargatePlatformConfiguration": anything, "runtimePlatform": anything, "networkConfiguration": anything})
job_definitions = st.one_of(
    st.fixed_dictionaries({"jobDefinitionName": st.one_of(st.just("ml-train"), anything),
                           "type": st.one_of(st.sampled_from(["container", "multinode"]), anything)},
                          optional={"containerProperties": st.one_of(container, anything),
                                    "platformCapabilities": anything, "nodeProperties": anything,
                                    "timeout": anything, "retryStrategy": anything}),
    anything)


def _job_definition_checks() -> list[Any]:
    from pytest_mlbatch.engine.registry import load_checks

    return [c for c in load_checks() if c.resource_kind in ("job_definition", "job")]


@pytest.fixture(scope="module")
def jd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobdefs")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(job_definitions, st.sampled_from([".json", ".yaml"]))
def test_job_definition_documents_never_crash_a_check(jd_root: Path, moto_endpoint: str, doc: Any,
                                                      suffix: str) -> None:
    """Every check on a job definition, given a local job definition file with random content (AWS is a moto server
    holding none of the resources named, so reads find nothing): never an internal error. (Pointing at a refused
    port instead spent seconds per example in botocore's connection retries; tests/test_faults.py covers those.)"""
    from pytest_mlbatch.engine.runtime import Runtime

    checks = _job_definition_checks()
    if not checks:
        pytest.skip("no check runs on job definitions yet")
    path = jd_root / f"jd{suffix}"
    path.write_text(json.dumps(doc, default=str))
    try:
        settings_ = cfg.build("fuzz", {"version": 1, "region": "us-east-1",
                                       "batch": {"job_definition_file": str(path)}})
    except cfg.ConfigError:
        assume(False)
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        runtime = Runtime(settings_, jd_root)
        _run_all(runtime, checks)


def _run_all(runtime: Any, checks: list[Any]) -> None:
    from pytest_mlbatch.engine import runner as engine
    from pytest_mlbatch.model.resources import resources_for

    target = runtime.targets[0]
    for check in checks:
        found = resources_for(check.resource_kind, target.scope(), target.label)
        for res in [] if isinstance(found, str) else found:
            result = engine.run(runtime, check, target, res)
            assert "internal error" not in result.message, result.message
