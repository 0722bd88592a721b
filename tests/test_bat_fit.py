"""Resource fit (pytest_mlbatch/analysis/fit.py) on instance-type documents as DescribeInstanceTypes returns them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_mlbatch.analysis.fit import (
    FARGATE_SIZES,
    Capacity,
    conservative_memory,
    ec2_fit,
    fargate_fit,
    usable_memory,
)
from pytest_mlbatch.aws import batchinfo as bi
from pytest_mlbatch.aws.world import instance_type
from pytest_mlbatch.config import JobSize


def info(name: str, vcpus: int, memory: int, gpus: int = 0) -> dict:
    doc: dict = {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": vcpus}, "MemoryInfo": {"SizeInMiB": memory}}
    if gpus:
        doc["GpuInfo"] = {"Gpus": [{"Name": "T4", "Manufacturer": "NVIDIA", "Count": gpus}]}
    return doc


def cap(name: str, vcpus: int, memory: int, gpus: int = 0, registered: int | None = None) -> Capacity:
    """The capacity of a DescribeInstanceTypes entry, read as the model reads it (aws/world.py)."""
    t = instance_type(info(name, vcpus, memory, gpus))
    return Capacity.build(t.name, t.vcpus, t.memory_mib, t.gpus, registered)


M5_LARGE = cap("m5.large", 2, 8192)
M5_XLARGE = cap("m5.xlarge", 4, 16384)
G4DN = cap("g4dn.xlarge", 4, 16384, gpus=1)


def test_usable_memory_follows_the_documented_m4_large_example() -> None:
    # AWS Batch memory-management guide: an m4.large (8192 MiB) shows 7985 MiB to the OS; 32 MiB is reserved.
    assert usable_memory(8192) == 7985 - 32
    assert usable_memory(16384) == 15970 - 32
    assert usable_memory(0) == 0


def test_memory_band_and_registered_memory() -> None:
    """Without registered instances a type's usable memory is a band; a job inside it 'may not fit' (never fits);
    what ECS registered for the type replaces the band."""
    assert conservative_memory(8192) == 7700 - 32
    inside = ec2_fit(JobSize(2, 7800), [M5_LARGE], 16)
    assert not inside.fits and inside.uncertain
    assert inside.message == ("may not fit: job asks 7800 MiB; m5.large (8192 MiB installed) registers between 7668 "
                              "and 7953 MiB with ECS, and no allowed type surely holds the job; ask at most 7668 MiB, "
                              "or allow a larger type")
    measured = cap("m5.large", 2, 8192, registered=7820)
    assert ec2_fit(JobSize(2, 7800), [measured], 16).message == (
        "fits m5.large (2 vCPU, 7820 MiB registered with ECS); 1 of 1 allowed types fit")
    over = ec2_fit(JobSize(2, 7900), [measured], 16)
    assert not over.fits and not over.uncertain
    assert over.message == ("job asks 7900 MiB; largest usable memory in m5.large is 7820 MiB registered with ECS, "
                            "80 MiB over")


def test_ec2_fit_messages() -> None:
    assert ec2_fit(JobSize(2, 4096), [M5_XLARGE, M5_LARGE], 16).message == (
        "fits m5.large (2 vCPU, 7668-7953 MiB usable of 8192); 2 of 2 allowed types fit")
    ok = ec2_fit(JobSize(2, 8000), [M5_LARGE, M5_XLARGE], 16)
    assert ok.fits and ok.message == ("fits m5.xlarge (4 vCPU, 15368-15938 MiB usable of 16384); 1 of 2 allowed "
                                      "types fit")
    over = ec2_fit(JobSize(2, 16384), [M5_LARGE, M5_XLARGE], 16)
    assert not over.fits
    assert over.message == ("job asks 16384 MiB; largest usable memory in m5.xlarge is 15938 MiB (16384 MiB "
                            "installed less ECS overhead), 446 MiB over")
    together = ec2_fit(JobSize(4, 4096, 1), [M5_XLARGE, cap("g4dn.small", 2, 8192, 1)], None)
    assert together.message == "no single allowed type has 4 vCPU, 4096 MiB, 1 GPU together"
    assert ec2_fit(JobSize(4, 4096, 1), [M5_XLARGE, G4DN], 2).message == "job asks 4 vCPUs; maxvCpus is 2"
    assert ec2_fit(JobSize(2, 1024, 2), [G4DN], None).message == (
        "job asks 2 GPUs; most GPUs in one type: g4dn.xlarge with 1")
    # a multi-node parallel job needs maxvCpus for all its nodes at once (moto's DescribeJobDefinitions drops
    # nodeProperties, so this is tested here and not on moto)
    assert ec2_fit(JobSize(8, 4096), [M5_XLARGE, cap("m5.2xlarge", 8, 32768)], 16, nodes=3).message \
        == "job asks 8 vCPUs x 3 nodes = 24; maxvCpus is 16"
    assert ec2_fit(JobSize(1, 512), [], 4).message == "no allowed instance type could be described"


def test_fargate_sizes() -> None:
    assert fargate_fit(JobSize(0.25, 512), 4).fits
    assert fargate_fit(JobSize(16, 122880), 16).fits
    assert fargate_fit(JobSize(3, 8192), None).message == (
        "Fargate has no 3 vCPU size (valid: 0.25, 0.5, 1, 2, 4, 8, 16)")
    assert fargate_fit(JobSize(8, 18432), None).message == (
        "Fargate 8 vCPU takes memory 16384-61440 MiB in 4096 MiB steps; job asks 18432")
    assert fargate_fit(JobSize(0.5, 512), None).message == (
        "Fargate 0.5 vCPU takes memory 1024-4096 MiB in 1024 MiB steps; job asks 512")
    assert fargate_fit(JobSize(1, 2048, 1), 4).message == "job asks 1 GPUs; Fargate has no GPUs"
    assert fargate_fit(JobSize(4, 8192), 2).message == "job asks 4 vCPUs; maxvCpus is 2"
    assert fargate_fit(JobSize(None, 2048), 2).message == (
        "a Fargate job needs both VCPU and MEMORY resource requirements")


def test_fargate_table_matches_the_api_reference_text() -> None:
    """FARGATE_SIZES is the table in botocore's documentation of ResourceRequirement.value (VCPU section)."""
    import re

    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("batch", "service-2")
    doc = re.sub(r"<[^>]+>", " ", model["shapes"]["ResourceRequirement"]["members"]["value"]["documentation"])
    section = doc[doc.index('type="VCPU"'):]
    for vcpu, sizes in FARGATE_SIZES.items():
        match = re.search(rf"value = {vcpu:g}\s+MEMORY\s+= ([\d, or]+)", section)
        assert match, vcpu
        documented = [int(x) for x in re.findall(r"\d+", match.group(1))]
        assert documented == list(sizes), vcpu


types = st.builds(lambda n, v, m, g: cap(f"t{n}.x", v, m, g), st.integers(0, 99),
                  st.integers(1, 192), st.integers(512, 1_000_000), st.integers(0, 8))
jobs = st.builds(JobSize, st.one_of(st.none(), st.integers(1, 200).map(float)),
                 st.one_of(st.none(), st.integers(4, 1_000_000)), st.one_of(st.none(), st.integers(0, 8)))


@given(st.lists(types, max_size=6), jobs, st.one_of(st.none(), st.integers(0, 512)))
def test_fits_exactly_when_one_type_holds_the_job(caps: list[Capacity], job: JobSize, max_vcpus: int | None) -> None:
    verdict = ec2_fit(job, caps, max_vcpus)
    within_max = max_vcpus is None or not job.vcpus or job.vcpus <= max_vcpus
    expected = within_max and any(
        (job.vcpus or 0) <= c.vcpus and (job.memory or 0) <= c.low and (job.gpus or 0) <= c.gpus for c in caps)
    assert verdict.fits == expected
    assert verdict.message


def test_instance_type_patterns_and_names() -> None:
    assert bi.instance_type_patterns(["m5", "c5.large"]) == ["c5.large", "m5.*"]
    assert "m6i.*" in bi.instance_type_patterns(["optimal"]) and "m5.*" in bi.instance_type_patterns(["optimal"])
    assert bi.instance_type_patterns(["default_arm64"]) == ["c6g.*", "c7g.*", "m6g.*", "r6g.*"]
    assert bi.unresolved(["m5", "p3.2xlarge", "optimal"], ["m5.large", "c5.xlarge"]) == ["p3.2xlarge"]
    assert bi.arn_name("arn:aws:iam::123456789012:role/service-role/AWSBatchServiceRole") == "AWSBatchServiceRole"
    assert bi.arn_path("arn:aws:iam::123456789012:role/service-role/X") == "/service-role/"
    assert bi.arn_path("X") == "/"
    assert bi.same_name("ml-ce-profile", "arn:aws:iam::123456789012:instance-profile/ml-ce-profile")
    jd = {"nodeProperties": {"mainNode": 0, "nodeRangeProperties": [
        {"targetNodes": "0:", "container": {"image": "a", "resourceRequirements": [
            {"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "2048"}, {"type": "GPU", "value": "1"}]}}]}}
    assert bi.container(jd)["image"] == "a"
    assert bi.job_size(jd) == JobSize(4.0, 2048, 1)
    assert bi.job_size({"containerProperties": {"vcpus": 2, "memory": 1024}}) == JobSize(2.0, 1024, None)
