"""`pytest --mlbatch -n 2` gives the serial run's results, reads each target once per run, and reports once."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from backends import Aws
from wsgi_backend import LatencyServer

pytest_plugins = ("scale_fixtures",)

pytest.importorskip("xdist")

CONFIG = {
    "version": 1,
    "key_pair": {"name": "ml-batch-key"},
    "checks": {"severity": {"KEY001": "low"}},
    "targets": [{"region": "us-east-1"}, {"region": "eu-west-1"}, {"region": "ap-south-1"}],
}


def per_query(server: LatencyServer) -> Counter[str]:
    """Calls by (operation, region, parameters): the inventory's own cache key, seen from the server."""
    return Counter(f"{c.name} {c.region} {json.dumps(c.params, sort_keys=True)}" for c in server.calls)


def test_two_workers_match_serial_and_read_each_target_once(preflight, aws: Aws, counted: LatencyServer,
                                                            pytester: pytest.Pytester, comparable: Any) -> None:
    aws.client("ec2", "eu-west-1").create_key_pair(KeyName="ml-batch-key")
    counted.clear()
    serial, serial_report = preflight.run(CONFIG, "--mlbatch-fail-on", "high")
    serial_calls = per_query(counted)

    counted.clear()
    junit = pytester.path / "compliance.xml"
    parallel, parallel_report = preflight.run(CONFIG, "--mlbatch-fail-on", "high", "-n", "2",
                                              "--mlbatch-junit", str(junit))
    parallel_calls = per_query(counted)

    parallel.stdout.fnmatch_lines(["*mlbatch: xdist --dist loadgroup*", "*2 workers*"])
    assert comparable(parallel_report) == comparable(serial_report)
    assert parallel_report["summary"] == serial_report["summary"]
    assert parallel_report["targets"] == serial_report["targets"]
    assert len(parallel_report["results"]) == len(serial_report["results"]) == 3 * 5
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
    assert xml.count("<testcase ") == 15
    assert "mlbatch ap-south-1 KEY" in xml


def test_sandbox_under_xdist_uses_the_controllers_server(pytester: pytest.Pytester) -> None:
    """Workers get the sandbox's endpoint and seeded config through workerinput, so they see its problems."""
    report = pytester.path / "r.json"
    parallel = pytester.runpytest("--mlbatch-sandbox", "-n", "2", "--mlbatch-json", str(report))
    data = json.loads(report.read_text())
    outcomes = {r["check_id"]: (r["outcome"], r["message"]) for r in data["results"]}
    assert outcomes["ENV001"] == ("passed", "account 123456789012 as arn:aws:sts::123456789012:user/moto")
    assert outcomes["KEY001"] == ("failed", "key pair 'ml-batch-key' does not exist in us-east-1")
    assert parallel.ret == 1
    parallel.stdout.fnmatch_lines(["*2 workers*"])
