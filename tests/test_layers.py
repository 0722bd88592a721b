"""The package's layers: no import cycle (imports inside functions and under TYPE_CHECKING count too), few modules
at the top, and each layer importing only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_mlbatch"
CHECKS = ROOT / "checks"


def _module_name(path: Path) -> str:
    if path.is_relative_to(CHECKS):
        parts = ["pytest_mlbatch", "checks", *path.relative_to(CHECKS).with_suffix("").parts]
    else:
        parts = ["pytest_mlbatch", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    files = [*PACKAGE.rglob("*.py"), *CHECKS.rglob("*.py")]
    return {_module_name(p): p for p in files}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            # the deepest project module the import names
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    edges = {name: _imports(name, path, known) for name, path in sources.items()}
    # importing a submodule imports its packages too; a package importing its own parent is not a cycle
    return {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in edges.items()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                return [*stack[stack.index(t):], t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle_counting_function_level_and_type_only_imports() -> None:
    cycle = _cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_at_most_a_dozen_modules_directly_in_the_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


# Each layer and the layers it may import (besides the top-level vocabulary and config modules).
LAYERS: dict[str, set[str]] = {
    "analysis": set(),
    "aws": {"analysis", "model"},
    "model": {"analysis"},
    "engine": {"analysis", "aws", "model"},
    "checks": {"analysis", "aws", "model", "engine"},
    "output": {"engine", "model"},
    "sandbox": set(),
    "plugin": {"analysis", "aws", "model", "engine", "output", "sandbox", "checks"},
}
TOP = {"pytest_mlbatch", "pytest_mlbatch.findings", "pytest_mlbatch.config", "pytest_mlbatch.oci",
       "pytest_mlbatch.dockerops"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = sorted(
        f"{src} imports {dst}"
        for src, dsts in graph().items() if _layer(src) == layer
        for dst in dsts
        if dst not in TOP and _layer(dst) not in (layer, *LAYERS[layer])
    )
    assert not wrong, "\n".join(wrong)


def test_every_module_is_mapped_in_the_developer_docs_with_a_one_line_purpose() -> None:
    text = (ROOT / "docs" / "developing.md").read_text()
    missing, undocumented = [], []
    for path in [*PACKAGE.rglob("*.py"), *CHECKS.rglob("*.py")]:
        if path.name == "__init__.py" and path.parent.name not in ("plugin", "sandbox"):
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        if not docstring:
            undocumented.append(str(path.relative_to(ROOT)))
        heading = "pytest_mlbatch" if path.parent == PACKAGE else str(path.parent.relative_to(ROOT))
        section = text.partition(f"### `{heading}/`")[2].partition("\n### ")[0]
        if f"- `{path.name}` — " not in section:
            missing.append(str(path.relative_to(ROOT)))
    assert not undocumented, f"modules without a docstring: {undocumented}"
    assert not missing, f"modules missing from docs/developing.md's layout: {missing}"


def _reads_aws(path: Path, imports: set[str]) -> list[str]:
    found = [f"imports {m}" for m in sorted(imports)
             if m == "pytest_mlbatch.aws" or m.startswith("pytest_mlbatch.aws.")]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "inventory":
            found.append(f"uses .inventory (line {node.lineno})")
    return found


def test_checks_decide_over_the_model_and_read_no_aws_themselves() -> None:
    sources = _sources()
    known = set(sources)
    wrong = {name: why for name, path in sources.items() if name.startswith("pytest_mlbatch.checks.")
             and (why := _reads_aws(path, _imports(name, path, known)))}
    assert not wrong, "\n".join(f"{n}: {', '.join(w)}" for n, w in sorted(wrong.items()))
