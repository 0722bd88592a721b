"""schemas/job-definition.schema.json is current with botocore's model, and BAT003 validates local job-definition
files with it before they are registered."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import botocore
import jsonschema
import pytest
from backends import Aws
from bat_fixtures import IMAGE, base_config, run_check, runtime_for

ROOT = Path(__file__).resolve().parents[1]


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_job_definition_schema",
                                                  ROOT / "scripts" / "gen_job_definition_schema.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned(package: str) -> str:
    """The version constraints.txt pins (the test toolchain README and .ci/run install)."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name.lower() == package:
            return version
    raise AssertionError(f"constraints.txt does not pin {package}")


def test_schema_is_generated_from_the_pinned_botocore() -> None:
    """The committed schema names the botocore it came from; that is the pinned one (moving the pin means
    regenerating the schema)."""
    committed = json.loads((ROOT / "schemas" / "job-definition.schema.json").read_text("utf-8"))
    assert f"from botocore {pinned('botocore')} " in committed["$comment"]


def test_schema_is_current_with_the_pinned_botocore() -> None:
    """Regenerating with the pinned botocore gives the committed file byte for byte. Another botocore (an install
    without constraints.txt) has another model: that is no fault of the schema, so this is skipped, saying so."""
    if botocore.__version__ != pinned("botocore"):
        pytest.skip(f"botocore {botocore.__version__} is installed, the schema is generated from the pinned "
                    f"{pinned('botocore')} (pip install -c constraints.txt -e '.[test]')")
    committed = (ROOT / "schemas" / "job-definition.schema.json").read_text("utf-8")
    assert generator().render() == committed, (
        f"schemas/job-definition.schema.json differs from what botocore {botocore.__version__} gives: run "
        "python scripts/gen_job_definition_schema.py")


def test_schema_is_valid_and_installed() -> None:
    from pytest_mlbatch.checks.bat import job_definition_schema as installed

    schema = installed()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["containerProperties"]["$ref"] == "#/$defs/ContainerProperties"
    assert schema["$defs"]["ContainerProperties"]["properties"]["memory"]["deprecated"] is True


GOOD = {
    "jobDefinitionName": "ml-train", "type": "container",
    "containerProperties": {"image": IMAGE, "command": ["python", "train.py"],
                            "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                     {"type": "MEMORY", "value": "4096"}],
                            "linuxParameters": {"sharedMemorySize": 1024}},
}


def check_file(tmp_path: Path, doc: Any, extra: dict | None = None) -> tuple[str, str]:
    path = tmp_path / "jobdef.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    config = {**base_config(job_definition_file="jobdef.json"), **(extra or {})}
    result = run_check("BAT003", config, tmp_path, "jobdef.json")
    return result.outcome, result.message.replace(str(tmp_path) + "/", "")


def test_valid_file(aws: Aws, tmp_path: Path) -> None:
    assert check_file(tmp_path, GOOD) == (
        "passed", f"job definition file jobdef.json is valid against the RegisterJobDefinition model, runs {IMAGE}, "
                  "asks 2 vCPU / 4096 MiB")


def test_invalid_files(aws: Aws, tmp_path: Path) -> None:
    bad = json.loads(json.dumps(GOOD))
    bad["containerProperties"]["resourceRequirements"][0]["type"] = "CPU"
    bad["containerProperties"]["memory"] = 4096
    bad["retry"] = 3
    del bad["containerProperties"]["image"]
    state, message = check_file(tmp_path, bad)
    assert state == "failed"
    assert message == (
        "job definition file jobdef.json: schema: (top level): unknown key retry; schema: containerProperties: "
        "'image' is a required property; schema: containerProperties.resourceRequirements[0].type: 'CPU' is not one "
        "of ['GPU', 'VCPU', 'MEMORY']; containerProperties uses deprecated memory: move them to resourceRequirements "
        "(overrides in resourceRequirements are rejected next to the deprecated keys); containerProperties."
        "resourceRequirements has no VCPU")


def test_fargate_file_needs_an_execution_role(aws: Aws, tmp_path: Path) -> None:
    doc = {**GOOD, "platformCapabilities": ["FARGATE"]}
    state, message = check_file(tmp_path, doc)
    assert (state, message) == ("failed", "job definition file jobdef.json: schema: containerProperties: "
                                          "'executionRoleArn' is a required property")


def test_file_runs_another_image(aws: Aws, tmp_path: Path) -> None:
    assert check_file(tmp_path, GOOD, {"image": {"uri": "example.com/other:1"}}) == (
        "failed", f"job definition file jobdef.json: it runs {IMAGE}, but image.uri is example.com/other:1")


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "job definition file jobdef.json is not valid JSON: "),
    ("[1, 2]", "job definition file jobdef.json: the top level must be an object"),
])
def test_unreadable_file_is_an_error(aws: Aws, tmp_path: Path, text: str, reason: str) -> None:
    state, message = check_file(tmp_path, text)
    assert state == "error" and message.startswith(reason)


def test_named_and_file_job_definitions_are_both_checked(aws: Aws, tmp_path: Path) -> None:
    from pytest_mlbatch.model.resources import resources_for

    (tmp_path / "jobdef.json").write_text(json.dumps(GOOD))
    runtime = runtime_for(base_config(job_definition="ml-train", job_definition_file="jobdef.json"), tmp_path)
    found = resources_for("job_definition", runtime.targets[0].scope(), "t")
    assert not isinstance(found, str)
    assert [(r.id, dict(r.data)) for r in found] == [("ml-train", {}), ("jobdef.json", {"file": "jobdef.json"})]


def test_retry_actions_are_case_insensitive_as_the_api_says(aws: Aws, tmp_path: Path) -> None:
    """EvaluateOnExit.action: "the values aren't case sensitive" (moto and Terraform store them lower-cased)."""
    retry = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "retry"},
                                               {"onReason": "*", "action": "Exit"}]}
    aws.client("batch").register_job_definition(jobDefinitionName="ml-spot", type="container",
                                                containerProperties=GOOD["containerProperties"], retryStrategy=retry)
    result = run_check("BAT003", base_config(job_definition="ml-spot"), tmp_path, "ml-spot")
    assert result.outcome == "passed", result.message
    assert check_file(tmp_path, {**GOOD, "retryStrategy": retry})[0] == "passed"
    state, message = check_file(tmp_path, {**GOOD, "retryStrategy": {"attempts": 3, "evaluateOnExit": [
        {"onReason": "*", "action": "retry-later"}]}})
    assert state == "failed"
    assert "schema: retryStrategy.evaluateOnExit[0].action: 'retry-later' is not one of ['RETRY', 'EXIT']" in message
