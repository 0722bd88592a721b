"""IMG002/IMG003 fixers and IMG003/IMG004 with the private dockerd: scratch images built, pushed to a registry with
htpasswd auth holding moto's ECR token, pulled back, digests compared; the push is journaled and happens once."""

from __future__ import annotations

import json
from typing import Any

import docker
import pytest
from backends import Aws
from img_fixtures import TOKEN_PASSWORD, RegistryApi, auth_registry, build_scratch, ecr_config
from test_img import make_repo, row, run

from pytest_mlbatch.oci import Credentials, RegistryClient

__all__ = ["auth_registry"]


def test_push_fix_then_compare_then_repush(preflight: Any, aws: Aws, auth_registry: str, docker_env: str,
                                           pytester: pytest.Pytester) -> None:
    client = docker.DockerClient(base_url=docker_env)
    local_id = build_scratch(client, "mlmodel-local:1", "first build")
    cfg = ecr_config("pushed:1.0", auth_registry, local="mlmodel-local:1", pull=True)
    reg = RegistryClient(f"http://{auth_registry}", Credentials("AWS", TOKEN_PASSWORD))

    # dry run: the plan lists the calls, nothing is pushed
    result, report = run(preflight, cfg, "--fix-dry-run")
    assert row(preflight, report, "IMG001")["outcome"] == "failed"
    assert row(preflight, report, "IMG002")["outcome"] == "failed"
    assert [f["check_id"] for f in report["fixes"]] == ["IMG001", "IMG002"]
    plan = next(f for f in report["fixes"] if f["check_id"] == "IMG002")
    assert plan["calls"][:4] == ["ecr:GetAuthorizationToken", "docker:tag", "docker:push", "ecr:DescribeImages"]
    assert plan["applied"] is False
    result.stdout.fnmatch_lines(["*IMG002*tag local image mlmodel-local:1 as 127.0.0.1:*/pushed:1.0 and push it*"])
    assert reg.manifest("pushed", "1.0") is None
    assert aws.client("ecr").describe_repositories()["repositories"] == []

    # --fix: the repository is created, then the image pushed once and confirmed; ECR and the registry agree,
    # IMG003 then passes and IMG004 pulls for real
    result, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG001")["outcome"] == "fixed"
    assert row(preflight, report, "IMG002")["outcome"] == "fixed", row(preflight, report, "IMG002")
    served = reg.manifest("pushed", "1.0")
    assert served is not None and served.config_digest == local_id  # the pushed image is the configured local one
    listed = aws.client("ecr").describe_images(repositoryName="pushed")["imageDetails"]
    assert [d["imageDigest"] for d in listed] == [served.digest]
    r3 = row(preflight, report, "IMG003")
    assert r3["outcome"] == "passed" and served.digest in r3["message"], r3
    r4 = row(preflight, report, "IMG004")
    assert r4["outcome"] == "passed" and "docker pulled" in r4["message"], r4
    journal = pytester.path / ".mlbatch" / "journal.jsonl"
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    pushes = [e for e in entries if e.get("call") == "local:docker push"]
    assert len(pushes) == 1 and served.digest in pushes[0]["created"]["path"]
    assert TOKEN_PASSWORD not in journal.read_text()

    # a second --fix changes nothing
    before = journal.read_text()
    _, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG002")["outcome"] == "passed"
    assert row(preflight, report, "IMG003")["outcome"] == "passed"
    assert journal.read_text() == before

    # a new local build under the same name: IMG003 fails, its fixer moves the tag to the new build
    new_id = build_scratch(client, "mlmodel-local:1", "second build")
    assert new_id != local_id
    cfg["image"]["pull"] = False
    _, report = run(preflight, cfg)
    r3 = row(preflight, report, "IMG003")
    assert r3["outcome"] == "failed" and f"({new_id}) is not what" in r3["message"], r3
    _, report = run(preflight, cfg, "--fix")  # moving a tag overwrites what it names: only on opt-in
    r3 = row(preflight, report, "IMG003")
    assert r3["outcome"] == "failed" and "needs fix.allow: [move_tag]" in r3["message"], r3
    assert reg.manifest("pushed", "1.0").config_digest != new_id  # type: ignore[union-attr]
    cfg["fix"] = {"allow": ["move_tag"]}
    _, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG003")["outcome"] == "fixed"
    again = reg.manifest("pushed", "1.0")
    assert again is not None and again.config_digest == new_id
    assert reg.manifest("pushed", served.digest) is not None  # the previous image is still there by digest
    assert any(e.get("call") == "local:tag moves from" and served.digest in e["created"]["path"]
               for e in map(json.loads, journal.read_text().splitlines()))

    # and a second --fix after the move changes nothing either
    before = journal.read_text()
    _, report = run(preflight, cfg, "--fix")
    assert row(preflight, report, "IMG003")["outcome"] == "passed"
    assert journal.read_text() == before


def test_local_image_missing_and_remote_differs(preflight: Any, aws: Aws, auth_registry: str,
                                                docker_env: str) -> None:
    client = docker.DockerClient(base_url=docker_env)
    build_scratch(client, "other-local:1", "something else")
    make_repo(aws, "differs", imageTagMutability="IMMUTABLE")
    api = RegistryApi(auth_registry)
    digest, raw = api.image("differs", "1.0", "amd64")
    aws.client("ecr").put_image(repositoryName="differs", imageManifest=raw.decode(), imageTag="1.0",
                                imageDigest=digest)
    _, report = run(preflight, ecr_config("differs:1.0", auth_registry, local="nope:1"))
    r = row(preflight, report, "IMG003")
    assert r["outcome"] == "failed" and "local image nope:1 does not exist in Docker" in r["message"]
    _, report = run(preflight, ecr_config("differs:1.0", auth_registry, local="other-local:1", pull=True),
                    "--fix-dry-run")
    r = row(preflight, report, "IMG003")
    assert r["outcome"] == "failed" and f"manifest {digest}" in r["message"], r
    assert "not fixed: tags of differs are immutable" in r["message"]  # a tag is never moved in such a repository
    # the registry image has a fake layer: the real pull fails, naming the image
    r4 = row(preflight, report, "IMG004")
    assert r4["outcome"] == "failed" and "docker pull" in r4["message"], r4


def test_no_docker_daemon_is_an_error(preflight: Any, aws: Aws, auth_registry: str,
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    make_repo(aws, "nodocker")
    _, report = run(preflight, ecr_config("nodocker:1.0", auth_registry, local="x:1"), "--fix")
    r = row(preflight, report, "IMG003")
    assert r["outcome"] == "error" and "Docker daemon not reachable" in r["message"]
    r2 = row(preflight, report, "IMG002")  # the tag is missing: still a failure, and the fix says why it cannot run
    assert r2["outcome"] == "failed" and "(not fixed: Docker daemon not reachable" in r2["message"], r2
