"""Image reference parsing: every form a user or a job definition writes, and clear refusals of malformed ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlbatch.analysis.imageref import ImageRefError, is_digest, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "account", "region"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0", "123456789012.dkr.ecr.us-east-1.amazonaws.com",
         "mlmodel", "1.0", None, "123456789012", "us-east-1"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/ml/model", "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
         "team/ml/model", "latest", None, "123456789012", "eu-west-1"),
        (f"210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/m@{DIGEST}",
         "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn", "m", None, DIGEST, "210987654321", "cn-north-1"),
        (f"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/m:v2@{DIGEST}",
         "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "m", "v2", DIGEST, "123456789012", "us-gov-west-1"),
        ("python:3.11", "docker.io", "library/python", "3.11", None, None, None),
        ("python", "docker.io", "library/python", "latest", None, None, None),
        ("library/ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None, None, None),
        ("pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", "docker.io", "pytorch/pytorch",
         "2.3.0-cuda12.1-cudnn8-runtime", None, None, None),
        ("docker.io/python:3.11", "docker.io", "library/python", "3.11", None, None, None),
        ("index.docker.io/library/python", "docker.io", "library/python", "latest", None, None, None),
        ("127.0.0.1:5000/team/model:v1", "127.0.0.1:5000", "team/model", "v1", None, None, None),
        ("localhost/model", "localhost", "model", "latest", None, None, None),
        ("ghcr.io/org/img_x__y.z-1:tag_1.0", "ghcr.io", "org/img_x__y.z-1", "tag_1.0", None, None, None),
        (f"nvcr.io/nvidia/pytorch@{DIGEST}", "nvcr.io", "nvidia/pytorch", None, DIGEST, None, None),
    ],
)
def test_parses_every_form(text: str, registry: str, repository: str, tag: str | None, digest: str | None,
                           account: str | None, region: str | None) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert (ref.account, ref.region) == (account, region)
    assert ref.is_ecr is (account is not None)
    assert ref.reference == (digest or tag)


def test_forms_and_helpers() -> None:
    ref = parse("python:3.11")
    assert ref.is_docker_hub and ref.api_host == "registry-1.docker.io"
    assert str(ref) == "docker.io/library/python:3.11"
    assert not parse("python").explicit_tag and parse("python:latest").explicit_tag
    assert parse("127.0.0.1:5000/m").is_loopback and not parse("ghcr.io/m").is_loopback
    pinned = parse(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/m@{DIGEST}")
    assert pinned.image_id() == {"imageDigest": DIGEST}
    assert parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/m").image_id() == {"imageTag": "latest"}
    moved = pinned.with_registry("127.0.0.1:5000")
    assert moved.name == "127.0.0.1:5000/m" and moved.digest == DIGEST
    assert is_digest(DIGEST) and not is_digest("latest")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  python", "no spaces"),
        ("https://123456789012.dkr.ecr.us-east-1.amazonaws.com/m", "without a scheme"),
        ("MLModel:1.0", "must be lowercase"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/ML:1", "must be lowercase"),
        ("repo:bad tag", "no spaces"),
        ("repo:-bad", "not a valid tag"),
        ("repo:" + "t" * 129, "not a valid tag"),
        ("repo@sha256:1234", "not a digest"),
        ("repo@sha256:" + "G" * 64, "64 lowercase hex"),
        ("a//b", "empty path component"),
        ("a/b/", "empty path component"),
        ("12345.dkr.ecr.us-east-1.amazonaws.com/m", "looks like ECR"),
        ("123456789012.dkr.ecr.useast1.amazonaws.com/m", "looks like ECR"),
        ("host:99999/m", "out of range"),
        ("host_x.io/m", "not a valid registry"),
        ("re..po", "not a valid repository name component"),
        (":tag", "repository name is missing"),
        ("ghcr.io/" + "a" * 260, "longer than 255"),
    ],
)
def test_refuses_malformed(text: str, reason: str) -> None:
    with pytest.raises(ImageRefError, match=reason):
        parse(text)


_component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(account=st.from_regex(r"[0-9]{12}", fullmatch=True), region=st.sampled_from(["us-east-1", "eu-west-3",
                                                                                   "ap-southeast-2"]),
       path=st.lists(_component, min_size=1, max_size=3), tag=_tag)
def test_ecr_round_trip(account: str, region: str, path: list[str], tag: str) -> None:
    text = f"{account}.dkr.ecr.{region}.amazonaws.com/{'/'.join(path)}:{tag}"
    ref = parse(text)
    assert (ref.account, ref.region, ref.repository, ref.tag) == (account, region, "/".join(path), tag)
    assert str(ref) == text
    assert parse(str(ref)) == ref or parse(str(ref)).name == ref.name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_never_crashes(text: str) -> None:
    try:
        ref = parse(text)
    except ImageRefError as exc:
        assert str(exc)
    else:
        assert ref.repository and ref.registry
