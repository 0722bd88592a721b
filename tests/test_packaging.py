"""The wheel installs checks/ and schemas/ inside pytest_mlbatch (no stray top-level modules); editable works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return next(out.glob("pytest_mlbatch-*.whl"))


def test_wheel_layout(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"pytest_mlbatch", next(t for t in top if t.endswith(".dist-info"))}, top
    assert "pytest_mlbatch/checks/__init__.py" in names
    assert "pytest_mlbatch/checks/key.py" in names
    assert "pytest_mlbatch/schemas/config.schema.json" in names
    assert "pytest_mlbatch/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "mlbatch = pytest_mlbatch.plugin" in text


def test_every_source_file_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in (("pytest_mlbatch", "pytest_mlbatch"), ("checks", "pytest_mlbatch/checks"),
                            ("schemas", "pytest_mlbatch/schemas")):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                assert f"{package}/{path.relative_to(ROOT / folder).as_posix()}" in names


def test_editable_install_maps_checks_and_schemas(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
                   check=True, capture_output=True)
    code = ("import pytest_mlbatch.checks as c, pytest_mlbatch.schemas as s, importlib.util as u;"
            "print(c.__file__); print(s.__file__); print(u.find_spec('checks'), u.find_spec('schemas'))")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    lines = out.splitlines()
    assert lines[0] == str(ROOT / "checks" / "__init__.py")
    assert lines[1] == str(ROOT / "schemas" / "__init__.py")
    assert lines[2] == "None None"  # no stray top-level module
