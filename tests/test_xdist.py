"""`pytest --mlbatch -n 2` gives the serial run's results, reads each target once per run, and reports once."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from backends import Aws
from wsgi_backend import MotoMiddleware

from pytest_mlbatch.aws.inventory import AwsError

pytest_plugins = ("scale_fixtures",)

pytest.importorskip("xdist")

CONFIG = {
    "version": 1,
    "key_pair": {"name": "ml-batch-key"},
    "checks": {"severity": {"KEY001": "low"}},
    "targets": [{"region": "us-east-1"}, {"region": "eu-west-1"}, {"region": "ap-south-1"}],
}


def per_query(server: MotoMiddleware) -> Counter[str]:
    """Reads by (operation, region, parameters): the inventory's own cache key, seen from the server. Where
    SimulatePrincipalPolicy is unavailable (moto) only its probe is made, by whichever IAM check asks first, so its
    parameters vary from run to run: that one counts by operation and region.

    A read is an API call, not an HTTP attempt: botocore's retries of one call (same invocation id, attempt > 1) are
    the retry policy at work, not a second read. They did happen on fresh installs: the first request to each of
    moto's backends after a reset builds it (seconds; STS, and EC2 per region), and three targets doing that at once
    on a loaded 2-core machine outlasted the 15 s read timeout, so botocore sent GetCallerIdentity or
    DescribeKeyPairs again and the old count saw "twice"."""
    return Counter(f"{c.name} {c.region}" if c.name == "iam:SimulatePrincipalPolicy"
                   else f"{c.name} {c.region} {json.dumps(c.params, sort_keys=True)}" for c in server.calls
                   if not c.retry)


def warm(aws: Aws, *regions: str) -> None:
    """Build moto's backends the runs will use before counting, so no first request waits seconds for one."""
    for region in regions:
        aws.client("sts", region).get_caller_identity()
        aws.client("ec2", region).describe_key_pairs()


def test_a_retried_read_is_one_read(preflight, aws: Aws, counted: MotoMiddleware) -> None:
    """The cause of "DescribeKeyPairs counted twice": an SDK retry of one call reaches the server twice. It is
    counted as one read, and seen as a retry of the same invocation."""
    from wsgi_backend import Fault

    counted.set(Fault("throttle", "ec2:DescribeKeyPairs", times=1))  # the first attempt throttled, the retry works
    _, report = preflight.run({"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"}},
                              "-k", "KEY001")
    assert preflight.result(report, "KEY001")["outcome"] == "failed"  # evaluated after the retry, not an error
    attempts = [c for c in counted.calls if c.name == "ec2:DescribeKeyPairs"]
    assert len(attempts) >= 2 and [c.attempt for c in attempts] == list(range(1, len(attempts) + 1))
    assert len({c.invocation for c in attempts}) == 1 and attempts[0].invocation
    assert Counter(k.split()[0] for k in per_query(counted))["ec2:DescribeKeyPairs"] == 1


def test_two_workers_match_serial_and_read_each_target_once(preflight, aws: Aws, counted: MotoMiddleware,
                                                            pytester: pytest.Pytester, comparable: Any) -> None:
    aws.client("ec2", "eu-west-1").create_key_pair(KeyName="ml-batch-key")
    warm(aws, "us-east-1", "eu-west-1", "ap-south-1")
    counted.clear()
    # only KEY001 (made low) is evaluated beyond ENV, below the gate: the run passes with the explicit opt-in
    serial, serial_report = preflight.run(CONFIG, "--mlbatch-fail-on", "high", "--mlbatch-allow-unchecked")
    serial_calls = per_query(counted)

    counted.clear()
    junit = pytester.path / "compliance.xml"
    parallel, parallel_report = preflight.run(CONFIG, "--mlbatch-fail-on", "high", "--mlbatch-allow-unchecked",
                                              "-n", "2", "--mlbatch-junit", str(junit))
    parallel_calls = per_query(counted)

    parallel.stdout.fnmatch_lines(["*mlbatch: xdist --dist loadgroup*", "*2 workers*"])
    assert comparable(parallel_report) == comparable(serial_report)
    assert parallel_report["summary"] == serial_report["summary"]
    assert parallel_report["targets"] == serial_report["targets"]
    # one result per check and target (the key pair is the only resource configured; other checks skip once)
    n_checks = len({r["check_id"] for r in serial_report["results"]})
    assert n_checks >= 5
    assert len(parallel_report["results"]) == len(serial_report["results"]) == 3 * n_checks
    outcomes = {(r["target"], r["check_id"]): r["outcome"] for r in parallel_report["results"]}
    assert outcomes[("eu-west-1", "KEY001")] == "passed"
    assert outcomes[("us-east-1", "KEY001")] == "failed"  # below --mlbatch-fail-on: reported, not failing
    assert parallel.ret == serial.ret == 0

    # every query once per run, in both modes: workers start from the controller's snapshot
    assert parallel_calls == serial_calls
    assert set(parallel_calls.values()) == {1}
    assert Counter(k.split()[0] for k in parallel_calls) == {"sts:GetCallerIdentity": 3, "ec2:DescribeKeyPairs": 3}

    # the compliance report is written once, by the controller, with every result
    xml = junit.read_text()
    assert xml.count("<testcase ") == 3 * n_checks
    assert xml.count("ap-south-1") >= n_checks  # the third target's cases are there too


def test_the_whole_catalog_on_two_workers_reads_each_query_once(aws: Aws, counted: MotoMiddleware,
                                                                 pytester: pytest.Pytester, comparable: Any) -> None:
    """The sample environment in two regions: discovery's read-ahead is still in flight when the controller takes
    its snapshot, and must travel with it (else a worker reads it again)."""
    from pytest_mlbatch import sandbox

    raw = sandbox.seed(aws.endpoint, pytester.path / "state")
    raw.pop("region", None)
    raw["targets"] = [{"region": "us-east-1"}, {"region": "eu-west-1"}]
    warm(aws, "us-east-1", "eu-west-1")
    pytester.makefile(".yaml", mlbatch=json.dumps(raw))
    args = ("--mlbatch", "-p", "no:randomly", "-p", "no:cacheprovider", "--mlbatch-json")
    counted.clear()
    serial = pytester.runpytest_subprocess(*args, "serial.json")
    serial_calls = per_query(counted)
    counted.clear()
    parallel = pytester.runpytest_subprocess(*args, "parallel.json", "-n", "2")
    parallel_calls = per_query(counted)
    assert serial.ret == parallel.ret == 1  # the sample environment has real problems
    reports = [json.loads((pytester.path / name).read_text()) for name in ("serial.json", "parallel.json")]
    assert comparable(reports[0]) == comparable(reports[1])
    assert parallel_calls == serial_calls
    # once per target; the only queries two targets share are the image's registry (us-east-1) and its repository
    # policy, which each target reads with its own credentials (another account's role may be denied where this one
    # is not)
    repeated = {k for k, n in parallel_calls.items() if n > 1}
    assert {k.split()[0] for k in repeated} <= {"ecr:DescribeRepositories", "ecr:DescribeImages",
                                                "ecr:GetRepositoryPolicy"}, repeated
    assert all(n <= 2 for n in parallel_calls.values())


def test_workerinput_carries_sandbox_and_snapshot(tmp_path) -> None:
    """The controller side of pytest_configure_node, and the worker side that reads it back. No AWS call: the
    targets' profiles do not exist, so each target's session error travels in the snapshot too."""
    from pytest_mlbatch import config as cfg
    from pytest_mlbatch.engine.runtime import Runtime
    from pytest_mlbatch.plugin.xdist import XdistPlugin

    raw = {"version": 1, "key_pair": {"name": "ml-batch-key"}, "targets": [{"region": "eu-west-1", "profile": "nope-a"},
                                                                   {"region": "eu-west-2", "profile": "nope-b"}]}
    settings = cfg.build("(test)", raw)

    def plugin(workerinput: dict[str, Any] | None) -> XdistPlugin:
        option = SimpleNamespace(dist="load", tx=["popen", "popen"], mlbatch_concurrency=None)
        config = SimpleNamespace(option=option, getoption=lambda name, default=None: getattr(option, name, default),
                                 getini=lambda name: None)
        if workerinput is not None:
            config.workerinput = workerinput  # type: ignore[attr-defined]
        runtime = Runtime(settings, tmp_path)
        sandbox = SimpleNamespace(endpoint="http://127.0.0.1:1", raw=raw, credentials={"AWS_ACCESS_KEY_ID": "ASIAX"})
        session = SimpleNamespace(runtime=runtime, sandbox=sandbox)
        return XdistPlugin(config, session)  # type: ignore[arg-type]

    controller = plugin(None)
    assert controller.config.option.dist == "loadgroup"  # -n's default `load` would split a target
    node = SimpleNamespace(workerinput={"workerid": "gw0"})
    controller.pytest_configure_node(node)
    assert node.workerinput["mlbatch_sandbox"] == {"endpoint": "http://127.0.0.1:1", "config": raw,
                                                   "credentials": {"AWS_ACCESS_KEY_ID": "ASIAX"}}
    snapshot = pickle.loads(node.workerinput["mlbatch_snapshot"])
    labels = [t.label for t in controller.session.runtime.targets]
    assert sorted(snapshot) == sorted(labels) and len(labels) == 2
    assert all(snapshot[label]["scope"].key_name == "ml-batch-key" for label in labels)
    assert all(snapshot[label]["session_error"].kind == "credentials" for label in labels)

    worker = plugin(node.workerinput)
    assert worker.config.option.loadgroup is True
    for target in worker.session.runtime.targets:
        assert target._scope is not None and target._scope.key_name == "ml-batch-key"  # preloaded, not rebuilt
        with pytest.raises(AwsError, match="ProfileNotFound"):
            target.identity()  # the controller's answer, as the controller got it
