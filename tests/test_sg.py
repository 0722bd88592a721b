"""SG001-SG004 on moto: existence in the VPC, declared rules, admin ports, HTTPS egress; their fixers."""

from __future__ import annotations

import pytest
from backends import Aws
from net_fixtures import Net, https, run_checks


@pytest.fixture
def net(aws: Aws) -> Net:
    return Net(aws)


def test_existence_admin_ports_and_egress(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    other = net.vpc("10.1.0.0/16")
    open_ssh = net.group(vpc, "open", ingress=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    tight = net.group(vpc, "tight", ingress=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                              "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}], egress=[])
    everything_v6 = net.group(vpc, "all-v6", ingress=[{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
                              egress=[https("0.0.0.0/0")])
    foreign = net.group(other, "foreign")
    missing = "sg-0123456789abcdef0"
    cfg = {"network": {"vpc_id": vpc, "security_group_ids": [open_ssh, tight, everything_v6, foreign, missing]}}
    run = run_checks(cfg, tmp_path, prefixes=("SG",))

    assert run.outcome(f"SG001[{open_ssh}]") == "passed"
    assert run.message(f"SG001[{open_ssh}]") == f"{open_ssh} (open) exists in {vpc}"
    assert run.message(f"SG001[{foreign}]") == (f"{foreign} was not found in {vpc}: it does not exist or belongs to "
                                                "another VPC")
    assert run.outcome(f"SG001[{missing}]") == "failed"

    assert run.message(f"SG003[{open_ssh}]") == f"{open_ssh} (open) opens SSH (tcp/22) from 0.0.0.0/0"
    assert run.outcome(f"SG003[{tight}]") == "passed"
    assert run.message(f"SG003[{everything_v6}]") == (f"{everything_v6} (all-v6) opens SSH (all traffic) from ::/0; "
                                                      "RDP (all traffic) from ::/0")
    assert run.outcome(f"SG003[{missing}]") == "skipped"

    assert run.message(f"SG004[{open_ssh}]") == f"{open_ssh} (open) allows tcp/443 to the internet (all traffic " \
                                                "0.0.0.0/0)"
    assert run.outcome(f"SG004[{everything_v6}]") == "passed"
    assert run.outcome(f"SG004[{tight}]") == "failed"
    assert run.message(f"SG004[{tight}]") == f"{tight} (tight) has no egress rule allowing tcp/443 to 0.0.0.0/0"


def test_https_egress_to_endpoints_on_the_endpoint_path(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.2.0.0/16", hostnames=True)
    sub = net.subnet(vpc, "10.2.1.0/24")
    rt = net.table(vpc, sub)
    ep_sg = net.endpoint_group(vpc, "10.2.0.0/16")
    eps = net.endpoints(vpc, [sub], [ep_sg], s3_tables=[rt])
    s3_list = next(r["DestinationPrefixListId"] for r in net.ec2.describe_route_tables(RouteTableIds=[rt])
                   ["RouteTables"][0]["Routes"] if r.get("GatewayId") == eps["s3"])
    both = net.group(vpc, "both", egress=[https(group=ep_sg), https(prefix_list=s3_list)])
    no_s3 = net.group(vpc, "no-s3", egress=[https(group=ep_sg)])
    cfg = {"network": {"vpc_id": vpc, "subnet_ids": [sub], "security_group_ids": [both, no_s3]}}
    run = run_checks(cfg, tmp_path, prefixes=("SG004", "NET003"))
    assert run.outcome(f"NET003[{sub}]") == "passed"
    assert run.outcome(f"SG004[{both}]") == "passed"
    assert "allows tcp/443 to the VPC endpoints and the S3 prefix list" in run.message(f"SG004[{both}]")
    assert run.outcome(f"SG004[{no_s3}]") == "failed"
    assert run.message(f"SG004[{no_s3}]") == (
        f"{no_s3} (no-s3) allows no tcp/443 to 0.0.0.0/0, and its subnets use VPC endpoints only: missing tcp/443 "
        f"to the S3 prefix list ({s3_list})")


def test_declared_group_created_and_rules_authorized_once(net: Net, aws: Aws, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    peer = net.group(vpc, "peer")
    declared = {"name": "ml-batch-sg", "description": "ML batch", "ingress": [
        {"protocol": "tcp", "port": 22, "cidr": "203.0.113.7/32"},
        {"protocol": "tcp", "port": 22, "cidr": "0.0.0.0/0"},  # never authorized
        {"protocol": "tcp", "from_port": 8000, "to_port": 8100, "source_security_group": peer},
        {"protocol": "udp", "port": 53, "cidr_ipv6": "2600:1f18::/32"}]}
    cfg = {"network": {"vpc_id": vpc, "security_group": declared}, "fix": {"tags": {"team": "ml"}}}

    run = run_checks(cfg, tmp_path, prefixes=("SG",))
    assert run.message("SG001[ml-batch-sg]") == f"security group 'ml-batch-sg' does not exist in {vpc}"
    assert run.outcome("SG002[ml-batch-sg]") == "skipped"

    dry = run_checks(cfg, tmp_path, prefixes=("SG",), dry_run=True)
    assert dry["SG001[ml-batch-sg]"].fix == {
        "check_id": "SG001", "resource": "ml-batch-sg", "action": f"create security group ml-batch-sg in {vpc}",
        "calls": ["ec2:CreateSecurityGroup"], "permissions": ["ec2:CreateSecurityGroup", "ec2:CreateTags"],
        "notes": ["a new group allows all outbound traffic and no inbound traffic; SG002 adds the declared rules"],
        "applied": False}
    assert dry.mutating_calls() == []

    fixed = run_checks(cfg, tmp_path, prefixes=("SG",), fix=True)
    assert fixed.outcome("SG001[ml-batch-sg]") == "fixed"
    row = fixed["SG002[ml-batch-sg]"]
    assert row.outcome == "failed"  # the world-open SSH rule stays missing: refused
    assert row.message.startswith(
        f"{group_id(net)} (ml-batch-sg) lacks 1 of 4 declared rules: ingress tcp/22 from 0.0.0.0/0 (--fix will not "
        "add it: tcp/22 from 0.0.0.0/0 would open SSH (port 22) to 0.0.0.0/0; allow it only from your own address) "
        "(after applying 'authorize on")
    assert row.fix is not None and row.fix["calls"] == ["ec2:AuthorizeSecurityGroupIngress"]
    assert row.fix["notes"] == ["refusing tcp/22 from 0.0.0.0/0 would open SSH (port 22) to 0.0.0.0/0; allow it "
                                "only from your own address"]
    assert fixed.outcome("SG004[ml-batch-sg]") == "passed"

    group = net.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["ml-batch-sg"]}])[
        "SecurityGroups"][0]
    assert group["VpcId"] == vpc and group["Description"] == "ML batch"
    assert {"Key": "team", "Value": "ml"} in group["Tags"]
    assert {"Key": "pytest-mlbatch:managed", "Value": "true"} in group["Tags"]
    rules = sorted((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"),
                    tuple(r["CidrIp"] for r in p.get("IpRanges", [])),
                    tuple(r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])),
                    tuple(g["GroupId"] for g in p.get("UserIdGroupPairs", []))) for p in group["IpPermissions"])
    assert rules == [("tcp", 22, 22, ("203.0.113.7/32",), (), ()), ("tcp", 8000, 8100, (), (), (peer,)),
                     ("udp", 53, 53, (), ("2600:1f18::/32",), ())]

    again = run_checks(cfg, tmp_path, prefixes=("SG",), fix=True)
    assert again.mutating_calls() == []
    assert again.outcome("SG002[ml-batch-sg]") == "failed"
    assert "(not fixed: refusing tcp/22 from 0.0.0.0/0 would open SSH" in again.message("SG002[ml-batch-sg]")


def group_id(net: Net, name: str = "ml-batch-sg") -> str:
    found = net.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return str(found[0]["GroupId"])


def test_https_egress_fix(net: Net, tmp_path) -> None:
    vpc = net.vpc("10.0.0.0/16")
    closed = net.group(vpc, "closed", egress=[])
    cfg = {"network": {"vpc_id": vpc, "security_group_ids": [closed]}}
    fixed = run_checks(cfg, tmp_path, prefixes=("SG004",), fix=True)
    assert fixed.outcome(f"SG004[{closed}]") == "fixed"
    assert fixed.calls["ec2:AuthorizeSecurityGroupEgress"] == 1
    egress = net.ec2.describe_security_groups(GroupIds=[closed])["SecurityGroups"][0]["IpPermissionsEgress"]
    assert [(p["IpProtocol"], p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in egress] == \
        [("tcp", 443, "0.0.0.0/0")]
    again = run_checks(cfg, tmp_path, prefixes=("SG004",), fix=True)
    assert again.outcome(f"SG004[{closed}]") == "passed"
    assert again.mutating_calls() == []
