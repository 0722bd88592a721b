"""Helpers for the report tests: validate a JSON report against schemas/report.schema.json, a JUnit file against
the Jenkins JUnit XSD (tests/data/junit-10.xsd), and read a JUnit file back."""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

JUNIT_XSD = Path(__file__).parent / "data" / "junit-10.xsd"


@functools.cache
def report_schema() -> dict[str, Any]:
    text = resources.files("pytest_mlbatch.schemas").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def report_errors(report: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema(), format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(report)]


def validate_report(report: dict[str, Any]) -> None:
    assert report, "no JSON report was written"
    errors = report_errors(report)
    assert not errors, "the JSON report does not match schemas/report.schema.json:\n" + "\n".join(errors)


@functools.cache
def junit_schema() -> Any:
    import xmlschema

    return xmlschema.XMLSchema(str(JUNIT_XSD))


def junit_errors(xml: str | Path) -> list[str]:
    return [f"{e.path}: {e.reason}" for e in junit_schema().iter_errors(str(xml))]


def validate_junit(path: Path) -> ET.Element:
    """Validate against the XSD and return the parsed root."""
    errors = junit_errors(path)
    assert not errors, f"{path} is not valid against {JUNIT_XSD.name}:\n" + "\n".join(errors)
    return ET.parse(path).getroot()


def junit_cases(root: ET.Element) -> dict[tuple[str, str], tuple[ET.Element, ET.Element]]:
    """{(suite name, testcase name): (suite, testcase)}."""
    return {(suite.get("name", ""), case.get("name", "")): (suite, case)
            for suite in root.iter("testsuite") for case in suite.iter("testcase")}


def case_outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"
