"""Inventory speed: a target's independent calls overlap in the prefetch pool, each query is made once, and the
number of calls does not grow with the number of resources."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from backends import Aws
from wsgi_backend import MotoMiddleware

from pytest_mlbatch.plugin.options import DEFAULT_CONCURRENCY

pytest_plugins = ("scale_fixtures",)

# Synthetic checks, registered only inside the subprocess run (its conftest), never in this process's registry:
# each reads one independent listing, like the real catalog's checks do.
SYNTHETIC = '''
from pytest_mlbatch.findings import passed
from pytest_mlbatch.engine.registry import check

CALLS = [("ec2", "describe_vpcs", "Vpcs"), ("ec2", "describe_subnets", "Subnets"),
         ("ec2", "describe_security_groups", "SecurityGroups"), ("ec2", "describe_route_tables", "RouteTables"),
         ("ec2", "describe_internet_gateways", "InternetGateways"), ("iam", "list_roles", "Roles"),
         ("ecr", "describe_repositories", "repositories"), ("batch", "describe_job_queues", "jobQueues")]

for i, (service, method, key) in enumerate(CALLS):
    def evaluate(ctx, res, service=service, method=method, key=key):
        found = ctx.inventory.paginate(service, method, key)
        again = ctx.inventory.paginate(service, method, key)  # served from the cache
        assert found is again
        return passed(f"{len(found)} {key}")

    check(id=f"BAT9{i:02d}", slug=f"synthetic-{i}", title=f"synthetic {method}", severity="low",
          resource="target", permissions=[f"{service}:{method}"], rationale="r", remediation="r")(evaluate)
'''


def run_synthetic(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any], float]:
    report = pytester.path / "r.json"
    t0 = time.perf_counter()
    result = pytester.runpytest_subprocess("--mlbatch", "-p", "no:randomly", "-p", "no:cacheprovider",
                                           "--mlbatch-json", str(report), "-k", "BAT9", *args)
    return result, json.loads(report.read_text()), time.perf_counter() - t0


def test_independent_calls_overlap_and_each_is_made_once(pytester: pytest.Pytester, counted: MotoMiddleware,
                                                          comparable: Any) -> None:
    pytester.makeconftest(SYNTHETIC)
    pytester.makefile(".yaml", mlbatch="version: 1\nregion: us-east-1\n")
    counted.latency = 0.25

    result, concurrent_report, _ = run_synthetic(pytester)
    result.assert_outcomes(passed=8)
    overlapped = counted.max_in_flight
    calls = counted.counts()
    counted.clear()
    counted.latency = 0.25
    serial, serial_report, _ = run_synthetic(pytester, "--mlbatch-concurrency", "1")
    serial.assert_outcomes(passed=8)

    assert overlapped >= 4, f"only {overlapped} calls in flight at once"
    assert counted.max_in_flight == 1  # --mlbatch-concurrency 1: one at a time, as before
    assert comparable(concurrent_report) == comparable(serial_report)
    # each listing once, and the identity gate once, although eight checks asked for it at the same moment
    assert calls == counted.counts()
    assert set(calls.values()) == {1} and len(calls) == 9
    assert calls["sts:GetCallerIdentity"] == 1


def seed_network(aws: Aws, n: int) -> dict[str, Any]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24")["Subnet"]["SubnetId"] for i in range(n)]
    groups = [ec2.create_security_group(GroupName=f"ml-{i}", Description="ml", VpcId=vpc)["GroupId"]
              for i in range(n)]
    ec2.create_key_pair(KeyName="ml-batch-key")
    return {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"},
            "network": {"vpc_id": vpc, "subnet_ids": subnets, "security_group_ids": groups}}


def test_calls_do_not_grow_with_resources(preflight, aws: Aws, counted: MotoMiddleware) -> None:
    counts: dict[int, Counter[str]] = {}
    for n in (1, 12):
        aws.reset()
        config = seed_network(aws, n)
        counted.clear()
        _, report = preflight.run(config)
        assert report["results"], "the preflight ran"
        counts[n] = counted.counts()
    assert counts[1] == counts[12], f"1 resource: {dict(counts[1])}\n12 resources: {dict(counts[12])}"


CHAIN = '''
from pytest_mlbatch.findings import passed
from pytest_mlbatch.engine.registry import check

CALLS = [("ec2", "describe_vpcs", "Vpcs"), ("ec2", "describe_subnets", "Subnets"),
         ("ec2", "describe_security_groups", "SecurityGroups"), ("ec2", "describe_route_tables", "RouteTables"),
         ("iam", "list_roles", "Roles"), ("ecr", "describe_repositories", "repositories")]

@check(id="BAT990", slug="synthetic-chain", title="reads six listings one after the other", severity="low",
       resource="target", permissions=["ec2:DescribeVpcs"], rationale="r", remediation="r")
def chain(ctx, res):
    sizes = [len(ctx.inventory.paginate(service, method, key)) for service, method, key in CALLS]
    return passed(f"sizes {sizes}")
'''


def test_hints_of_the_previous_run_overlap_a_chain(pytester: pytest.Pytester, counted: MotoMiddleware,
                                                    comparable: Any) -> None:
    pytester.makeconftest(CHAIN)
    pytester.makefile(".yaml", mlbatch="version: 1\nregion: us-east-1\n")
    counted.latency = 0.25
    args = ("--mlbatch", "-p", "no:randomly", "-k", "BAT990", "--mlbatch-json")
    first = pytester.runpytest_subprocess(*args, "first.json")
    first.assert_outcomes(passed=1)
    first_calls, first_overlap = counted.counts(), counted.max_in_flight
    assert (pytester.path / ".pytest_cache").is_dir()
    counted.clear()
    counted.latency = 0.25
    second = pytester.runpytest_subprocess(*args, "second.json")
    second.assert_outcomes(passed=1)
    assert first_overlap <= 2  # the chain alone: one listing at a time (identity may overlap the first)
    assert counted.max_in_flight >= 4  # replayed hints: the chain's listings all at once
    assert counted.counts() == first_calls and set(first_calls.values()) == {1}
    reports = [json.loads((pytester.path / name).read_text()) for name in ("first.json", "second.json")]
    assert comparable(reports[0]) == comparable(reports[1])


def test_the_calls_in_flight_are_bounded_per_target(pytester: pytest.Pytester, counted: MotoMiddleware) -> None:
    pytester.makeconftest(SYNTHETIC)
    pytester.makefile(".yaml", mlbatch="version: 1\nregion: us-east-1\n")
    counted.latency = 0.2
    result, _, _ = run_synthetic(pytester, "--mlbatch-concurrency", "3")
    result.assert_outcomes(passed=8)
    # eight checks (and the identity gate) want their listing at once; three go out, the rest wait for a slot
    assert counted.max_in_flight == 3


def test_a_first_run_of_the_catalog_overlaps_its_reads(pytester: pytest.Pytester, aws: Aws, counted: MotoMiddleware,
                                                        comparable: Any) -> None:
    """No hints (no cache): the loaders' read-ahead and the evaluations side by side put several of the real
    catalog's reads in flight at once; the results and the calls are a serial run's."""
    from pytest_mlbatch import sandbox

    raw = sandbox.seed(aws.endpoint, pytester.path / "state")
    pytester.makefile(".yaml", mlbatch=json.dumps(raw))
    args = ("--mlbatch", "-p", "no:randomly", "-p", "no:cacheprovider", "--mlbatch-json")
    counted.latency = 0.1
    first = pytester.runpytest_subprocess(*args, "first.json")
    assert first.ret == 1, first.stdout.str()[-2000:]  # the sample environment has real problems
    overlap, calls = counted.max_in_flight, counted.counts()
    counted.clear()
    counted.latency = 0.1
    serial = pytester.runpytest_subprocess(*args, "serial.json", "--mlbatch-concurrency", "1")
    assert serial.ret == 1
    assert counted.max_in_flight == 1
    assert overlap >= 4, f"only {overlap} calls in flight at once"
    assert overlap <= DEFAULT_CONCURRENCY  # the default bound per target
    assert calls == counted.counts(), "read-ahead made calls a serial run does not make"
    reports = [json.loads((pytester.path / name).read_text()) for name in ("first.json", "serial.json")]
    assert comparable(reports[0]) == comparable(reports[1])


def test_a_loader_reads_its_independent_listings_side_by_side(pytester: pytest.Pytester, aws: Aws,
                                                               counted: MotoMiddleware) -> None:
    """NET003 alone, first run: its loader names the VPCs, groups, route tables, gateways and endpoints it is
    about to read, so they are in flight together (serially they are one after the other)."""
    from pytest_mlbatch import sandbox

    raw = sandbox.seed(aws.endpoint, pytester.path / "state")
    raw["network"]["subnet_ids"] = raw["network"]["subnet_ids"][-1:]  # the private one
    pytester.makefile(".yaml", mlbatch=json.dumps(raw))
    counted.latency = 0.2
    result = pytester.runpytest_subprocess("--mlbatch", "-p", "no:randomly", "-p", "no:cacheprovider",
                                           "-k", "NET003")
    result.assert_outcomes(failed=1)  # the sample's private subnet has no way out
    ec2 = [c for c in counted.calls if c.service == "ec2" and c.operation != "DescribeSubnets"]
    assert {c.operation for c in ec2} >= {"DescribeVpcs", "DescribeSecurityGroups", "DescribeRouteTables",
                                          "DescribeInternetGateways", "DescribeNatGateways", "DescribeVpcEndpoints"}
    first_end = min(c.end for c in ec2)
    started_together = [c for c in ec2 if c.start < first_end]
    assert len(started_together) >= 6, [(c.operation, round(c.start - ec2[0].start, 3)) for c in ec2]
