"""BAT009 vCPU quotas. moto's Service Quotas has no EC2 (or Fargate) quotas, so the Service Quotas answers come
from botocore's Stubber, which validates every stubbed request and response against the service model; the compute
environments, queue and everything else are real moto resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends import Aws
from bat_fixtures import BatchEnv, base_config, make_env, run_check, runtime_for, world_env
from botocore.stub import Stubber
from pytest_mlbatch.checks.bat import families, instance_class


def quota_world(aws: Aws) -> BatchEnv:
    env = make_env(aws)
    env.compute_environment("ml-ce")
    env.compute_environment("ce-gpu", instance_types=["g4dn.xlarge", "g5"], max_vcpus=64)
    env.compute_environment("ce-spot", kind="SPOT", instance_types=["m5", "p4d.24xlarge"], max_vcpus=96)
    env.compute_environment("ce-fargate", kind="FARGATE")
    return env


_STATE: dict[str, Any] = {}


@pytest.fixture
def env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> BatchEnv:
    return world_env(moto_endpoint, monkeypatch, _STATE, quota_world)


def quota(service: str, code: str, value: float) -> dict[str, Any]:
    return {"Quota": {"ServiceCode": service, "QuotaCode": code, "QuotaName": "stubbed", "Value": value,
                      "Unit": "None", "Adjustable": True, "GlobalQuota": False}}


def run_with_quotas(tmp_path: Path, ce: str, answers: list[tuple[str, dict[str, Any], Any]]) -> tuple[str, str]:
    """Run BAT009 on one compute environment; answers: (method, expected params, response dict or error code)."""
    runtime = runtime_for(base_config(compute_environment=ce), tmp_path)
    client = runtime.targets[0].inventory.client("service-quotas")
    with Stubber(client) as stub:
        for method, params, answer in answers:
            if isinstance(answer, str):
                stub.add_client_error(method, service_error_code=answer, service_message="stubbed",
                                      http_status_code=400, expected_params=params)
            else:
                stub.add_response(method, answer, params)
        result = run_check("BAT009", {}, tmp_path, ce, runtime=runtime)
        stub.assert_no_pending_responses()
    return result.outcome, result.message


def ask(service: str, code: str) -> dict[str, str]:
    return {"ServiceCode": service, "QuotaCode": code}


def test_standard_quota_covers_max_vcpus(env: BatchEnv, tmp_path: Path) -> None:
    got = run_with_quotas(tmp_path, "ml-ce", [("get_service_quota", ask("ec2", "L-1216C47A"),
                                               quota("ec2", "L-1216C47A", 256))])
    assert got == ("passed", "ml-ce maxvCpus 16 within Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) "
                             "instances quota L-1216C47A is 256 vCPUs")


def test_gpu_quota_at_zero(env: BatchEnv, tmp_path: Path) -> None:
    got = run_with_quotas(tmp_path, "ce-gpu", [("get_service_quota", ask("ec2", "L-DB2E81BA"),
                                                quota("ec2", "L-DB2E81BA", 0))])
    assert got == ("failed", "ce-gpu maxvCpus is 64, but Running On-Demand G and VT instances quota L-DB2E81BA is 0 "
                             "vCPUs")


def test_spot_classes_and_default_quota(env: BatchEnv, tmp_path: Path) -> None:
    """A Spot CE of m5 and p4d needs the Spot Standard and Spot P quotas; an unset quota falls back to AWS's
    default for the account (GetAWSDefaultServiceQuota)."""
    got = run_with_quotas(tmp_path, "ce-spot", [
        ("get_service_quota", ask("ec2", "L-7212CCBC"), "NoSuchResourceException"),
        ("get_aws_default_service_quota", ask("ec2", "L-7212CCBC"), quota("ec2", "L-7212CCBC", 64)),
        ("get_service_quota", ask("ec2", "L-34B43A08"), quota("ec2", "L-34B43A08", 640)),
    ])
    assert got == ("failed", "ce-spot maxvCpus is 96, but All P Spot Instance Requests quota L-7212CCBC is 64 vCPUs")


def test_fargate_quota(env: BatchEnv, tmp_path: Path) -> None:
    got = run_with_quotas(tmp_path, "ce-fargate", [("get_service_quota", ask("fargate", "L-3032A538"),
                                                    quota("fargate", "L-3032A538", 6))])
    assert got == ("failed", "ce-fargate maxvCpus is 16, but Fargate On-Demand vCPU quota L-3032A538 is 6 vCPUs")


def test_denied_is_an_error(env: BatchEnv, tmp_path: Path) -> None:
    state, message = run_with_quotas(tmp_path, "ml-ce", [("get_service_quota", ask("ec2", "L-1216C47A"),
                                                          "AccessDeniedException")])
    assert state == "error"
    assert message == ("servicequotas:GetServiceQuota was denied (AccessDeniedException): grant "
                       "servicequotas:GetServiceQuota to the caller")


def test_moto_has_no_ec2_quotas_so_it_is_an_error(env: BatchEnv, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The real moto server, no stub: it knows no EC2 quota, which must be an error, never a pass. (A sandbox run
    earlier in this process seeds quotas into moto's backend class, which every moto of the process shares: this
    test undoes that seeding for itself.)"""
    from moto.servicequotas.models import ServiceQuotasBackend

    seeded = ServiceQuotasBackend.get_service_quota
    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", getattr(seeded, "original", seeded))
    result = run_check("BAT009", base_config(compute_environment="ml-ce"), tmp_path)
    assert result.outcome == "error"
    assert result.message.startswith("Service Quotas has no ec2 quota L-1216C47A: GetServiceQuota answered "
                                     "NoSuchResourceException")


def test_instance_classes() -> None:
    assert [instance_class(f) for f in ("m5", "c7i", "i3", "inf2", "trn1", "dl1", "g4dn", "vt1", "p5", "f1",
                                        "x2idn", "r6g")] == [
        "standard", "standard", "standard", "inf", "trn", "dl", "g", "g", "p", "f", "x", "standard"]
    assert families(["optimal", "m5.large", "g5"]) == ["c4", "m4", "r4", "c5", "m5", "r5", "m6i", "c6i", "r6i",
                                                       "c7i", "g5"]
