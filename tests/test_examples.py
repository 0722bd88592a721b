"""examples/: the configs validate against schemas/config.schema.json (through pytest_mlbatch.config), the CI
files parse as YAML and run the preflight with the JUnit report wired to the CI system, and that command works."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from backends import Aws
from report_helpers import validate_junit, validate_report

from pytest_mlbatch import config as cfg

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_yaml(name: str) -> Any:
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


def pytest_args(script: str) -> list[str]:
    """The arguments of the one `pytest --mlbatch ...` command in a CI script."""
    commands = [shlex.split(line) for line in script.splitlines() if line.strip().startswith("pytest ")]
    assert len(commands) == 1, script
    return commands[0][1:]


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def github_pytest_step(workflow: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    runs = [s for s in steps if "pytest --mlbatch" in s.get("run", "")]
    assert len(runs) == 1
    return pytest_args(runs[0]["run"]), steps


def test_minimal_config_leaves_the_rest_to_discovery() -> None:
    settings = cfg.load(EXAMPLES, str(EXAMPLES / "mlbatch.minimal.yaml"))
    assert (settings.region, settings.job_queue, settings.job_definition) == ("us-east-1", "ml-queue", "ml-train")
    assert set(settings.raw) == {"version", "region", "batch"}
    assert settings.key_name is None and settings.subnet_ids == () and settings.instance_role is None


def test_full_config_declares_every_section() -> None:
    settings = cfg.load(EXAMPLES, str(EXAMPLES / "mlbatch.full.yaml"))
    assert set(settings.raw) == set(cfg.schema()["properties"])  # every top-level key of the schema is shown
    assert settings.security_group is not None and settings.job_role is not None and settings.job is not None
    assert [t.role_arn for t in settings.targets] == [None, "arn:aws:iam::210987654321:role/mlbatch-preflight"]
    (exemption,) = settings.exempt
    assert (exemption.check, exemption.resource, exemption.until.isoformat()) == \
        ("SG003", "sg-0123456789abcdef0", "2027-06-30")


def test_a_broken_example_would_be_caught(tmp_path: Path) -> None:
    broken = (EXAMPLES / "mlbatch.full.yaml").read_text().replace("  min_free_ips: 16", "  min_free_ip: 16")
    (tmp_path / "mlbatch.yaml").write_text(broken)
    with pytest.raises(cfg.ConfigError, match=r"network\.min_free_ip: unknown key"):
        cfg.load(tmp_path, None)


def test_github_workflow_gates_and_keeps_the_reports() -> None:
    workflow = load_yaml("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push"} <= set(triggers)
    assert workflow["permissions"]["id-token"] == "write"
    args, steps = github_pytest_step(workflow)
    assert args[0] == "--mlbatch" and option(args, "--mlbatch-fail-on") == "critical"
    junit, report = option(args, "--mlbatch-junit"), option(args, "--mlbatch-json")
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert all(p.startswith(upload["with"]["path"]) for p in (junit, report))
    creds = next(s for s in steps if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"))
    assert creds["with"]["role-to-assume"].startswith("arn:aws:iam::")


def test_gitlab_job_publishes_the_compliance_junit() -> None:
    ci = load_yaml("gitlab-ci.yml")
    job = ci["mlbatch-preflight"]
    args = pytest_args("\n".join(job["script"]))
    assert args[0] == "--mlbatch" and option(args, "--mlbatch-fail-on") == "critical"
    assert job["artifacts"]["reports"]["junit"] == option(args, "--mlbatch-junit")
    assert job["artifacts"]["when"] == "always"
    assert all(option(args, o).startswith(tuple(job["artifacts"]["paths"])) for o in ("--mlbatch-junit",
                                                                                        "--mlbatch-json"))
    args_github, _ = github_pytest_step(load_yaml("github-actions.yml"))
    assert args == args_github  # one command, documented once for both CI systems


def test_the_ci_command_runs(aws: Aws, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow's command, as written, against moto with the minimal config: reports land where CI looks."""
    shutil.copy(EXAMPLES / "mlbatch.minimal.yaml", pytester.path / "mlbatch.yaml")
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    args, _ = github_pytest_step(load_yaml("github-actions.yml"))
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    root = validate_junit(pytester.path / option(args, "--mlbatch-junit"))
    assert len(list(root.iter("testcase"))) > 0
    import json

    validate_report(json.loads((pytester.path / option(args, "--mlbatch-json")).read_text()))
    assert summary.read_text().startswith("### pytest-mlbatch preflight: ")


def test_the_extending_examples_run(preflight: Any, aws: Aws, pytester: pytest.Pytester) -> None:
    """examples/conftest.py (the team's own checks, with a fixer) and examples/test_ml_platform.py (tests over the
    model, a remediation) as docs/extending.md shows them, against a moto world; under --fix they repair it."""
    import json

    from bat_fixtures import make_env
    from iam_fixtures import policy_doc

    env = make_env(aws)
    env.compute_environment()
    env.queue()
    env.job_definition()  # its image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0
    aws.client("iam").put_role_policy(RoleName="ml-job-role", PolicyName="output", PolicyDocument=policy_doc(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::ml-out/*"}))
    aws.client("ecr").create_repository(repositoryName="mlmodel")
    aws.client("ecr").put_image(repositoryName="mlmodel", imageTag="1.0", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"digest": "sha256:" + "1" * 64, "size": 10,
                    "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}))
    for name in ("conftest.py", "test_ml_platform.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    config = {"version": 1, "region": "us-east-1", "batch": {"job_queue": "ml-queue", "job_definition": "ml-train"}}
    args = ("test_ml_platform.py", "-k", "TEAM or test_", "-rA")

    result, report = preflight.run(config, *args)
    validate_report(report)
    assert preflight.outcomes(report) == {"X-TEAM001[us-east-1]": "failed", "X-TEAM002[us-east-1]": "passed",
                                          "X-TEAM101[/aws/batch/ml-scratch]": "failed"}
    result.stdout.fnmatch_lines_random(["PASSED test_ml_platform.py::test_job_role_may_write_the_output_bucket*",
                                        "PASSED test_ml_platform.py::test_queue_subnets_span_two_zones*",
                                        "PASSED test_ml_platform.py::test_image_is_recent*",
                                        # a remediation's failure is shown once, in the preflight's summary
                                        "  medium   X-TEAM101 /aws/batch/ml-scratch — log group /aws/batch/ml-"
                                        "scratch does not exist → apply the plan*"])
    assert result.ret == 1 and result.parseoutcomes()["failed"] == 2

    result, report = preflight.run(config, *args, "--fix")
    assert preflight.outcomes(report) == {"X-TEAM001[us-east-1]": "fixed", "X-TEAM002[us-east-1]": "passed",
                                          "X-TEAM101[/aws/batch/ml-scratch]": "fixed"}
    assert result.ret == 0, result.stdout.str()
    groups = {g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert groups == {"/aws/batch/ml-team", "/aws/batch/ml-scratch"}
