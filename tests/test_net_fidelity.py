"""Issue 14 on moto: what the network must let through for this job, hop by hop: DHCP options and DNS (NET006),
network ACLs on every hop (NET005), the job's own destinations (NET003), endpoint policies (NET007), and HTTPS
egress over the union of a compute environment's groups (SG004)."""

from __future__ import annotations

import pytest
from backends import Aws
from net_fixtures import Net, run_checks


@pytest.fixture
def net(aws: Aws) -> Net:
    return Net(aws)


def test_dhcp_options_with_custom_dns_are_not_passed(net: Net, tmp_path) -> None:
    ec2 = net.ec2
    amazon = net.vpc("10.0.0.0/16", hostnames=True)
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers",
                                                        "Values": ["AmazonProvidedDNS"]}])
    ec2.associate_dhcp_options(DhcpOptionsId=dopt["DhcpOptions"]["DhcpOptionsId"], VpcId=amazon)
    custom = net.vpc("10.1.0.0/16", hostnames=True)
    corp = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers",
                                                        "Values": ["10.1.0.53", "10.1.0.54"]}])
    corp_id = corp["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=corp_id, VpcId=custom)

    run = run_checks({"network": {"vpc_id": amazon}}, tmp_path, prefixes=("NET006",))
    assert run.outcome(f"NET006[{amazon}]") == "passed"
    assert "uses the VPC resolver (AmazonProvidedDNS)" in run.message(f"NET006[{amazon}]")

    run = run_checks({"network": {"vpc_id": custom}}, tmp_path, prefixes=("NET006",))
    assert run.outcome(f"NET006[{custom}]") == "error"
    assert run.message(f"NET006[{custom}]").startswith(
        f"{custom}'s DHCP option set {corp_id} names custom DNS servers 10.1.0.53, 10.1.0.54: whether they forward")
