"""The NET003 fixer on moto: opt-in only, internet gateway or NAT gateway, never a replaced route, once."""

from __future__ import annotations

import pytest
from backends import Aws
from net_fixtures import Net, run_checks


@pytest.fixture
def net(aws: Aws) -> Net:
    return Net(aws)


def test_internet_gateway_fix_needs_opt_in_then_applies_once(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    sub = net.subnet(vpc, "10.0.1.0/24", public_ip=True)
    rt = net.table(vpc, sub)
    cfg: dict = {"network": {"vpc_id": vpc, "subnet_ids": [sub]}}
    key = f"NET003[{sub}]"

    dry = run_checks(cfg, tmp_path, prefixes=("NET003",), dry_run=True)
    assert dry[key].fix is not None
    assert dry[key].fix["calls"] == ["ec2:CreateInternetGateway", "ec2:AttachInternetGateway", "ec2:CreateRoute"]
    assert dry[key].plan is not None and "needs opt-in: fix.allow: [internet_gateway]" in dry[key].plan
    assert dry.mutating_calls() == []

    refused = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert refused.outcome(key) == "failed"
    assert refused.message(key).endswith("(not fixed: this fix needs fix.allow: [internet_gateway])")
    assert refused.mutating_calls() == []

    cfg["fix"] = {"allow": ["internet_gateway"], "tags": {"team": "ml"}}
    fixed = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert fixed.outcome(key) == "fixed", fixed.message(key)
    assert fixed.message(key).startswith(f"fixed: create an internet gateway, attach it to {vpc}, add route "
                                         f"0.0.0.0/0 -> it to {rt}")
    igws = net.ec2.describe_internet_gateways()["InternetGateways"]
    assert len(igws) == 1 and igws[0]["Attachments"][0]["VpcId"] == vpc
    assert {"Key": "pytest-mlbatch:managed", "Value": "true"} in igws[0]["Tags"]
    routes = net.ec2.describe_route_tables(RouteTableIds=[rt])["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igws[0]["InternetGatewayId"]}.items() <= \
        next(r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0").items()

    again = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert again.outcome(key) == "passed"
    assert again.mutating_calls() == []


def test_nat_gateway_fix_in_a_public_subnet_with_cost(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    igw = net.igw(vpc)
    pub = net.subnet(vpc, "10.0.1.0/24", "a", public_ip=True)
    net.default_route(net.table(vpc, pub), GatewayId=igw)
    bare = net.subnet(vpc, "10.0.2.0/24", "b")  # a non-public subnet must not host the NAT gateway
    priv = net.subnet(vpc, "10.0.3.0/24", "b")
    rt = net.table(vpc, priv, bare)
    cfg: dict = {"network": {"vpc_id": vpc, "subnet_ids": [priv]}, "fix": {"allow": ["nat_gateway"]}}
    key = f"NET003[{priv}]"

    dry = run_checks(cfg, tmp_path, prefixes=("NET003",), dry_run=True)
    fix = dry[key].fix
    assert fix is not None
    assert fix["calls"] == ["ec2:AllocateAddress", "ec2:CreateNatGateway",
                            "ec2:DescribeNatGateways", "ec2:CreateRoute"]
    assert f"create a NAT gateway in public subnet {pub}" in fix["action"]
    assert "about 33 USD/month" in fix["action"]
    assert any(n.startswith("cost: a NAT gateway costs about 32.85 USD a month") for n in fix["notes"])
    assert dry.mutating_calls() == []

    fixed = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert fixed.outcome(key) == "fixed", fixed.message(key)
    nats = net.ec2.describe_nat_gateways()["NatGateways"]
    assert len(nats) == 1 and nats[0]["SubnetId"] == pub
    assert {"Key": "pytest-mlbatch:managed", "Value": "true"} in nats[0]["Tags"]
    routes = net.ec2.describe_route_tables(RouteTableIds=[rt])["RouteTables"][0]["Routes"]
    assert [r.get("NatGatewayId") for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"] == \
        [nats[0]["NatGatewayId"]]
    addresses = net.ec2.describe_addresses()["Addresses"]
    assert {"Key": "pytest-mlbatch:managed", "Value": "true"} in addresses[0]["Tags"]
    again = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert again.outcome(key) == "passed"
    assert "private via NAT" in again.message(key)
    assert again.mutating_calls() == []


def test_nat_reuse_and_refusals(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    pub = net.subnet(vpc, "10.0.1.0/24", public_ip=True)
    net.default_route(net.table(vpc, pub), GatewayId=net.igw(vpc))
    nat = net.nat(pub)
    priv = net.subnet(vpc, "10.0.2.0/24")
    rt = net.table(vpc, priv)
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [priv]}, "fix": {"allow": ["nat_gateway"]}}
    fixed = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert fixed.outcome(f"NET003[{priv}]") == "fixed"
    assert fixed.mutating_calls() == ["ec2:CreateRoute"]
    assert f"add route 0.0.0.0/0 -> existing {nat} to {priv}'s route table {rt}" in fixed.message(f"NET003[{priv}]")

    vpc = net.vpc("10.0.0.0/16")
    pub = net.subnet(vpc, "10.0.1.0/24", public_ip=True)
    net.default_route(net.table(vpc, pub), GatewayId=net.igw(vpc))
    gone = net.nat(pub)
    broken = net.subnet(vpc, "10.0.2.0/24", public_ip=True)
    rt = net.table(vpc, broken)
    net.default_route(rt, NatGatewayId=gone)
    net.ec2.delete_nat_gateway(NatGatewayId=gone)
    on_main = net.subnet(vpc, "10.0.3.0/24", public_ip=True)
    main = net.main_table(vpc)
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [broken, on_main]},
           "fix": {"allow": ["internet_gateway", "nat_gateway"]}}
    run = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert run.outcome(f"NET003[{broken}]") == "failed"
    assert f"(not fixed: route table {rt} already has a 0.0.0.0/0 route (route table {rt} (explicitly associated) " \
           f"sends 0.0.0.0/0 to {gone}); pytest-mlbatch never replaces or deletes a route" in \
           run.message(f"NET003[{broken}]")
    assert run.outcome(f"NET003[{on_main}]") == "failed"
    assert f"(not fixed: {on_main} uses the VPC's main route table {main}" in run.message(f"NET003[{on_main}]")
    assert run.mutating_calls() == []

    # an internet gateway already attached: only the route is added (public IPs on, so the gateway is preferred)
    fresh = net.subnet(vpc, "10.0.4.0/24", public_ip=True)
    own = net.table(vpc, fresh)
    cfg["network"]["subnet_ids"] = [fresh]  # type: ignore[index]
    run = run_checks(cfg, tmp_path, prefixes=("NET003",), fix=True)
    assert run.outcome(f"NET003[{fresh}]") == "fixed"
    assert run.mutating_calls() == ["ec2:CreateRoute"]
    assert "add route 0.0.0.0/0 -> igw-" in run.message(f"NET003[{fresh}]")
    assert f"(already attached to {vpc}) to {fresh}'s route table {own}" in run.message(f"NET003[{fresh}]")


def test_dry_run_plan_printed_by_the_plugin(preflight, net: Net) -> None:
    vpc = net.vpc("10.0.0.0/16")
    sub = net.subnet(vpc, "10.0.1.0/24", public_ip=True)
    net.table(vpc, sub)
    result, report = preflight.run({"version": 1, "region": "us-east-1",
                                    "network": {"vpc_id": vpc, "subnet_ids": [sub]}}, "--fix-dry-run", "-k", "NET003")
    assert preflight.result(report, "NET003", sub)["outcome"] == "failed"
    assert report["fixes"][0]["calls"] == ["ec2:CreateInternetGateway", "ec2:AttachInternetGateway",
                                           "ec2:CreateRoute"]
    result.stdout.fnmatch_lines([f"NET003 {sub}: create an internet gateway*",
                                 "*calls: ec2:CreateInternetGateway, ec2:AttachInternetGateway, ec2:CreateRoute*",
                                 "*needs opt-in: fix.allow: [[]internet_gateway[]]*"])
    assert net.ec2.describe_internet_gateways()["InternetGateways"] == []
