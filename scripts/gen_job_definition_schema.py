"""Generate schemas/job-definition.schema.json from botocore's AWS Batch service model (RegisterJobDefinition).

Run `python scripts/gen_job_definition_schema.py` after upgrading botocore; tests/test_bat_schema.py fails when
the committed schema differs from what this script generates with the installed botocore.

The translation is mechanical (structure -> object with additionalProperties false and the model's required
members; list -> array; map -> object; string enums -> enum; min/max -> length or item or value bounds;
deprecated members keep JSON Schema's `deprecated`). On top of it, a few rules the model states only in prose
(documentation of RegisterJobDefinition, ContainerProperties and ResourceRequirement) are added as OVERLAYS:
- a `container` job has containerProperties, ecsProperties or eksProperties; a `multinode` job has nodeProperties;
- containerProperties.image is required ("Required." in its documentation);
- a job definition name is 1-128 letters, digits, hyphens and underscores;
- a job whose platformCapabilities include FARGATE names an executionRoleArn ("For jobs that run on Fargate
  resources, you must provide an execution role").
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "schemas" / "job-definition.schema.json"
ROOT_SHAPE = "RegisterJobDefinitionRequest"


def _description(doc: str | None) -> str | None:
    if not doc:
        return None
    text = html.unescape(re.sub(r"<[^>]+>", " ", doc))
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return None
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first if len(first) <= 240 else first[:237].rstrip() + "..."


def _shape_schema(name: str, shape: dict[str, Any]) -> dict[str, Any]:
    kind = shape["type"]
    out: dict[str, Any]
    if kind == "structure":
        props: dict[str, Any] = {}
        for member, spec in shape.get("members", {}).items():
            prop: dict[str, Any] = {"$ref": f"#/$defs/{spec['shape']}"}
            desc = _description(spec.get("documentation"))
            if desc:
                prop["description"] = desc
            if spec.get("deprecated"):
                prop["deprecated"] = True
            props[member] = prop
        out = {"type": "object", "properties": props, "additionalProperties": False}
        if shape.get("required"):
            out["required"] = list(shape["required"])
    elif kind == "list":
        out = {"type": "array", "items": {"$ref": f"#/$defs/{shape['member']['shape']}"}}
        if "min" in shape:
            out["minItems"] = shape["min"]
        if "max" in shape:
            out["maxItems"] = shape["max"]
    elif kind == "map":
        out = {"type": "object", "propertyNames": {"$ref": f"#/$defs/{shape['key']['shape']}"},
               "additionalProperties": {"$ref": f"#/$defs/{shape['value']['shape']}"}}
        if "min" in shape:
            out["minProperties"] = shape["min"]
        if "max" in shape:
            out["maxProperties"] = shape["max"]
    elif kind == "string":
        out = {"type": "string"}
        if "enum" in shape:
            out["enum"] = list(shape["enum"])
        if "min" in shape:
            out["minLength"] = shape["min"]
        if "max" in shape:
            out["maxLength"] = shape["max"]
        if "pattern" in shape:
            out["pattern"] = shape["pattern"]
    elif kind in ("integer", "long"):
        out = {"type": "integer"}
        if "min" in shape:
            out["minimum"] = shape["min"]
        if "max" in shape:
            out["maximum"] = shape["max"]
    elif kind in ("float", "double"):
        out = {"type": "number"}
    elif kind == "boolean":
        out = {"type": "boolean"}
    elif kind == "timestamp":
        out = {"type": "string"}
    else:  # blob and anything new: accept a string rather than guess
        out = {"type": "string", "$comment": f"botocore type {kind}"}
    return out


def _reachable(shapes: dict[str, Any], root: str) -> list[str]:
    seen: list[str] = []
    stack = [root]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.append(name)
        shape = shapes[name]
        refs = [m["shape"] for m in shape.get("members", {}).values()]
        refs += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        stack.extend(reversed(refs))
    return sorted(seen)


OVERLAYS: list[dict[str, Any]] = [
    {"if": {"properties": {"type": {"const": "container"}}, "required": ["type"]},
     "then": {"anyOf": [{"required": ["containerProperties"]}, {"required": ["ecsProperties"]},
                        {"required": ["eksProperties"]}]}},
    {"if": {"properties": {"type": {"const": "multinode"}}, "required": ["type"]},
     "then": {"required": ["nodeProperties"]}},
    {"if": {"properties": {"platformCapabilities": {"contains": {"const": "FARGATE"}}},
            "required": ["platformCapabilities", "containerProperties"]},
     "then": {"properties": {"containerProperties": {"required": ["executionRoleArn"]}}}},
]


def build_schema() -> dict[str, Any]:
    model = botocore.loaders.Loader().load_service_model("batch", "service-2")
    shapes = model["shapes"]
    defs = {name: _shape_schema(name, shapes[name]) for name in _reachable(shapes, ROOT_SHAPE)}
    defs["ContainerProperties"]["required"] = ["image"]
    defs["JobDefinitionName"] = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}
    root = defs.pop(ROOT_SHAPE)
    root["properties"]["jobDefinitionName"]["$ref"] = "#/$defs/JobDefinitionName"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pytest-mlbatch.invalid/schemas/job-definition.schema.json",
        "title": "AWS Batch job definition (RegisterJobDefinition request)",
        "$comment": (f"Generated by scripts/gen_job_definition_schema.py from botocore {botocore.__version__} "
                     f"(batch {model['metadata']['apiVersion']}, shape {ROOT_SHAPE}); do not edit by hand."),
        **root,
        "allOf": OVERLAYS,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    return json.dumps(build_schema(), indent=1, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text("utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python scripts/gen_job_definition_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, "utf-8")
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
