"""Fault injection: throttling recovered by retries changes nothing; persistent faults make `error`, never `passed`.

The moto server sits behind tests/wsgi_backend.py's middleware. Per operation and across the whole catalog (the
sandbox's sample environment, every registered check): throttling within the retry budget gives results identical to
a clean run; a persistent 5xx, access denied, throttling past retries, slow answer past the read timeout or a dropped
connection on any one operation makes every check that read it `error` naming the operation, leaves every other
check as it was, and never turns anything into `passed`; the run's wall time stays within the documented bound.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from backends import REGION, Aws
from faults import OUTSIDE, CallLog, result_key, seed_catalog_scenario, uncovered
from wsgi_backend import WIRE, Fault, MotoMiddleware, error_response, identify

from pytest_mlbatch.aws import inventory as inv
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.engine.registry import load_checks

pytest_plugins = ["fault_fixtures"]

# kind injected -> AwsError.kind the inventory must report
EXPECTED_KIND = {"throttle": "throttled", "fault": "fault", "denied": "denied", "slow": "timeout",
                 "drop": "connection"}
# one read per wire protocol: EC2, query (IAM, STS), JSON (ECR), REST-JSON (Batch)
PROTOCOL_CALLS = [
    ("ec2", "describe_key_pairs", {}, "ec2:DescribeKeyPairs"),
    ("iam", "list_roles", {}, "iam:ListRoles"),
    ("sts", "get_caller_identity", {}, "sts:GetCallerIdentity"),
    ("ecr", "describe_repositories", {}, "ecr:DescribeRepositories"),
    ("batch", "describe_compute_environments", {}, "batch:DescribeComputeEnvironments"),
]


SHORT_READ_TIMEOUT = 0.5


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> float:
    """Lower the inventory's timeouts so slow answers cost fractions of a second; returns the read timeout."""
    monkeypatch.setattr(inv, "CONNECT_TIMEOUT", 2)
    monkeypatch.setattr(inv, "READ_TIMEOUT", SHORT_READ_TIMEOUT)
    return SHORT_READ_TIMEOUT


def inventory() -> Inventory:
    return Inventory(boto3.Session(region_name=REGION), REGION)


# -- the middleware itself ---------------------------------------------------------------------------------------
def test_operation_names_from_each_protocol(faulty: MotoMiddleware) -> None:
    inv_ = inventory()
    for service, method, params, op in PROTOCOL_CALLS:
        inv_.call(service, method, **params)
        assert faulty.operations()[-1] == op
    # REST-JSON path templates: a Batch path is matched to its operation
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/describejobqueues",
           "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/batch/aws4_request, x"}
    assert identify(env, b"{}").name == "batch:DescribeJobQueues"


@pytest.mark.parametrize("kind", ["throttle", "fault", "unavailable", "denied"])
@pytest.mark.parametrize("protocol", ["ec2", "query", "json", "rest-json"])
def test_error_bodies_parse_as_the_real_services_do(protocol: str, kind: str) -> None:
    """botocore's own parser reads the injected answer as the documented error code and status."""
    import botocore.parsers
    import botocore.session
    from botocore.awsrequest import HeadersDict

    service = {"ec2": "ec2", "query": "iam", "json": "ecr", "rest-json": "batch"}[protocol]
    model = botocore.session.get_session().get_service_model(service)
    op = model.operation_model(model.operation_names[0])
    status, headers, body = error_response(protocol, kind)
    parsed = botocore.parsers.create_parser(protocol).parse(
        {"status_code": int(status.split()[0]), "headers": HeadersDict(headers), "body": body}, op.output_shape)

    assert parsed["Error"]["Code"] == WIRE[protocol][kind][1]
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == WIRE[protocol][kind][0]


# -- per operation, through the inventory --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(EXPECTED_KIND))
@pytest.mark.parametrize(("service", "method", "params", "op"), PROTOCOL_CALLS,
                         ids=[c[3] for c in PROTOCOL_CALLS])
def test_persistent_fault_per_operation(faulty: MotoMiddleware, fast_backoff: None, short_timeouts: float,
                                        service: str, method: str, params: dict[str, Any], op: str,
                                        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind != "slow":  # only slow answers need the short read timeout; under load it could fire elsewhere
        monkeypatch.setattr(inv, "READ_TIMEOUT", 15)
    faulty.set(Fault(kind, op, delay=short_timeouts * 3))
    with pytest.raises(AwsError) as info:
        inventory().call(service, method, **params)
    exc = info.value
    assert exc.kind == EXPECTED_KIND[kind]
    assert exc.operation == op and op in str(exc)
    attempts = faulty.operations().count(op)
    assert attempts == (1 if kind == "denied" else inv.RETRIES["total_max_attempts"]), faulty.calls
    # and the same operation, no longer faulted, answers again
    monkeypatch.setattr(inv, "READ_TIMEOUT", 15)
    faulty.set(Fault(kind, "nothing:Matches"))
    assert inventory().call(service, method, **params) is not None


@pytest.mark.parametrize(("service", "method", "params", "op"), PROTOCOL_CALLS,
                         ids=[c[3] for c in PROTOCOL_CALLS])
def test_throttling_recovered_by_retries_per_operation(faulty: MotoMiddleware, fast_backoff: None, service: str,
                                                       method: str, params: dict[str, Any], op: str) -> None:
    """Throttled twice, answered on the third attempt: the same data as a clean call."""
    clean = inventory().call(service, method, **params)
    faulty.set(Fault("throttle", op, times=inv.RETRIES["total_max_attempts"] - 1))
    throttled = inventory().call(service, method, **params)
    assert throttled == clean
    assert [c.injected for c in faulty.calls if c.name == op][-3:] == ["throttle", "throttle", None]


def test_throttling_recovered_with_real_backoff(aws: Aws, faulty: MotoMiddleware) -> None:
    """The same with botocore's real (jittered, exponential) backoff, on data that exists."""
    aws.client("ec2").create_key_pair(KeyName="k1")
    clean = inventory().paginate("ec2", "describe_key_pairs", "KeyPairs")
    assert [k["KeyName"] for k in clean] == ["k1"]
    faulty.set(Fault("throttle", "ec2:DescribeKeyPairs", times=1))
    assert inventory().paginate("ec2", "describe_key_pairs", "KeyPairs") == clean


def test_failures_are_cached_not_repeated(faulty: MotoMiddleware, fast_backoff: None) -> None:
    """A failed read is remembered for the run: the next check asking gets the same error without new calls."""
    faulty.set(Fault("fault", "ec2:DescribeKeyPairs"))
    inv_ = inventory()
    for _ in range(3):
        with pytest.raises(AwsError):
            inv_.paginate("ec2", "describe_key_pairs", "KeyPairs")
    assert faulty.operations().count("ec2:DescribeKeyPairs") == inv.RETRIES["total_max_attempts"]


def test_a_client_made_while_another_thread_changes_the_environment(aws: Aws,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore iterates os.environ while it makes a client, and pytest sets and deletes PYTEST_CURRENT_TEST around
    every test phase meanwhile: the thread making the client can see KeyError. That race is rare and cannot be
    provoked on demand, so boto3's client() is wrapped to fail that way once, exactly as the race does; the real
    client is made on the next attempt and the read answers from moto. A failure that persists is reported."""
    real = boto3.Session.client
    attempts: list[str] = []

    def racing(self: boto3.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(service)
        if len(attempts) == 1:
            raise KeyError("PYTEST_CURRENT_TEST")
        return real(self, service, *args, **kwargs)

    aws.client("ec2").create_key_pair(KeyName="raced")
    monkeypatch.setattr(boto3.Session, "client", racing)
    found = inventory().paginate("ec2", "describe_key_pairs", "KeyPairs")
    assert [k["KeyName"] for k in found] == ["raced"] and attempts == ["ec2", "ec2"]

    monkeypatch.setattr(boto3.Session, "client", lambda *a, **k: (_ for _ in ()).throw(KeyError("GONE")))
    with pytest.raises(AwsError, match="KeyError"):
        inventory().paginate("ec2", "describe_key_pairs", "KeyPairs")


# -- across the whole catalog ---------------------------------------------------------------------------------------
def rows(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {result_key(r["check_id"], r.get("target"), r["resource"]): (r["outcome"], r["message"])
            for r in report["results"]}


KINDS_ROTATION = ("fault", "denied", "throttle", "drop", "slow")


# Each run of the catalog costs a second or two: operations are faulted in at most this many groups (all
# operations of a group fail together). MLBATCH_FAULT_RUNS=0 faults every operation on its own.
MAX_RUNS = int(os.environ.get("MLBATCH_FAULT_RUNS", "6"))


def fault_groups(ops: list[str], max_runs: int = MAX_RUNS) -> list[list[str]]:
    if max_runs <= 0 or len(ops) <= max_runs:
        return [[op] for op in ops]
    return [ops[i::max_runs] for i in range(max_runs)]


# Reads with a documented fallback: the caller's identity gives the account (else the configured account_id) and
# the partition (else "aws"), and only ENV001 must turn `error` when it fails; permission questions use
# iam:SimulatePrincipalPolicy where it answers, else a local evaluation of the policies (CHECKS.md, IAM), and the
# message says which answered.
TOLERATED = {"sts:GetCallerIdentity", "iam:SimulatePrincipalPolicy", "iam:SimulateCustomPolicy"}


def check_invariants(group: list[str], kind: str, clean: dict[str, tuple[str, str]],
                     faulted: dict[str, tuple[str, str]], needs: dict[str, set[str]]) -> list[str]:
    """Every broken guarantee of a run with the operations of `group` persistently failing (empty if none)."""
    problems: list[str] = []
    failing = set(group)
    outside = bool(failing & needs.get(OUTSIDE, set()))  # read by the gate or discovery: items may change
    for key, (outcome, message) in faulted.items():
        needed = failing & needs.get(key, set())
        if not key.startswith("ENV001"):
            needed -= TOLERATED
        before = clean.get(key)
        if outcome == "passed" and (needed or before is None or before[0] != "passed"):
            problems.append(f"{key}: passed with {group} failing ({kind}); clean run: {before}")
        if needed and (outcome != "error" or not any(op in message for op in needed)):
            problems.append(f"{key} read {sorted(needed)} ({kind}) but is {outcome}: {message!r}")
        if not needed and not outside and not (failing & TOLERATED) and before is not None \
                and before[0] != outcome:
            problems.append(f"{key} did not read {group} yet changed {before[0]} -> {outcome}: {message!r}")
    gone = sorted(set(clean) - set(faulted))
    if gone and not any(o == "error" and any(op in m for op in group) for o, m in faulted.values()):
        problems.append(f"with {group} failing ({kind}) items vanished ({gone}) and no error names them")
    return problems


def test_whole_catalog_under_faults(preflight: Any, aws: Aws, pytester: pytest.Pytester, fault_server: MotoMiddleware,
                                    call_log: CallLog, fast_backoff: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every registered check, on the sandbox's sample environment (one seeding, several runs):

    1. clean run, recording which operations each (check, resource) read;
    2. every request throttled twice (recovered on the third attempt): results identical to the clean run;
    3. each operation in turn failing persistently (5xx, denied, throttled past retries, dropped, slower than the
       read timeout, in rotation): every check that read it is `error` naming it, the others are unchanged, and
       nothing becomes `passed`;
    4. every request slower than the read timeout: the run ends within the documented bound;
    5. all of AWS answering 5xx: everything that reads AWS is `error`, nothing that reads AWS passes.
    """
    short_timeouts = 1.0  # the read timeout while answers are slowed (a loaded CI machine answers within it)
    monkeypatch.setattr(inv, "CONNECT_TIMEOUT", 2)
    preflight.write_config(seed_catalog_scenario(aws, pytester.path / "state"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.endpoint)
    faulty = fault_server
    faulty.clear()
    problems: list[str] = []

    # 1. clean
    t0 = time.monotonic()
    result, clean_report = preflight.run(None)
    clean_wall = time.monotonic() - t0
    assert result.ret in (0, 1), result.stdout.str()[-3000:]
    # every check has a result, but the JOB checks: they have items only with --mlbatch-job / --mlbatch-canary
    always = [c for c in load_checks() if c.area != "JOB"]
    assert len({r["check_id"] for r in clean_report["results"]}) == len(always), "a check has no result"
    clean = rows(clean_report)
    needs = {k: set(v) for k, v in call_log.needs.items()}
    ops = sorted(set(faulty.operations()))
    assert ops, "the plugin made no AWS call through the fault server"
    assert uncovered(ops, "readonly") == [], "called without being in docs/iam-policy-readonly.json"

    # 2. throttled twice on every request, recovered by the third attempt
    faulty.set(Fault("throttle", "*", times=inv.RETRIES["total_max_attempts"] - 1))
    faulty.calls.clear()
    _, report = preflight.run(None)
    if rows(report) != clean:
        diff = {k: (clean.get(k), v) for k, v in rows(report).items() if clean.get(k) != v}
        problems.append(f"throttling within the retries changed results: {diff}")
    called = {c.name for c in faulty.calls if c.from_plugin}
    not_throttled = (set(ops) & called) - {c.name for c in faulty.calls if c.injected == "throttle"}
    if not_throttled:
        problems.append(f"never throttled: {sorted(not_throttled)}")

    # 3. each operation failing persistently
    for i, group in enumerate(fault_groups(ops)):
        kind = KINDS_ROTATION[i % len(KINDS_ROTATION)]
        monkeypatch.setattr(inv, "READ_TIMEOUT", short_timeouts if kind == "slow" else 15)
        faulty.set(*(Fault(kind, op, delay=short_timeouts * 4) for op in group))
        _, report = preflight.run(None)
        problems += check_invariants(group, kind, clean, rows(report), needs)

    # 4. everything slow: bounded wall time
    monkeypatch.setattr(inv, "READ_TIMEOUT", short_timeouts)
    faulty.set(Fault("slow", "*", delay=short_timeouts * 4))
    faulty.calls.clear()
    t0 = time.monotonic()
    _, report = preflight.run(None)
    wall = time.monotonic() - t0
    attempts = inv.RETRIES["total_max_attempts"]
    distinct = len([c for c in faulty.calls if c.from_plugin]) / attempts
    per_call = attempts * short_timeouts + sum(0.05 * 2 ** n for n in range(attempts - 1))
    bound = 2 * clean_wall + distinct * per_call + 2.0
    if wall > bound:
        problems.append(f"all answers slow: {wall:.1f}s for {distinct:.0f} calls, bound {bound:.1f}s")
    for key, (outcome, message) in rows(report).items():
        if outcome == "passed" and needs.get(key, set()) - TOLERATED:
            problems.append(f"{key} passed with every answer timing out: {message!r}")

    # 5. everything failing
    monkeypatch.setattr(inv, "READ_TIMEOUT", 15)
    faulty.set(Fault("fault", "*"))
    result, report = preflight.run(None)
    if "Traceback" in result.stdout.str():
        problems.append("a traceback was printed")
    for key, (outcome, message) in rows(report).items():
        if needs.get(key, set()) - TOLERATED and (outcome != "error" or not any(op in message for op in needs[key])):
            problems.append(f"{key} read {sorted(needs[key])} yet is {outcome} with AWS failing: {message!r}")
    assert not problems, "\n".join(problems)


def test_reliability_doc_states_the_bound() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    attempts = inv.RETRIES["total_max_attempts"]
    per_call = attempts * (inv.CONNECT_TIMEOUT + inv.READ_TIMEOUT) + sum(2 ** n for n in range(attempts - 1))
    for fact in (f"connect timeout {inv.CONNECT_TIMEOUT} s", f"read timeout {inv.READ_TIMEOUT} s",
                 f"{attempts} attempts", f"{per_call} s", inv.RETRIES["mode"]):
        assert fact in doc, f"docs/reliability.md does not state {fact!r}"
