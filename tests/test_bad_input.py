"""Bad input never shows a traceback: exit code 4 (usage error), the key path named, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

VALID = "version: 1\nregion: us-east-1\nkey_pair: {name: ml-batch-key}\n"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--mlbatch", "-p", "no:cacheprovider", "--mlbatch-json", "report.json",
                              "--mlbatch-junit", "junit.xml", *args)


def assert_usage_error(pytester: pytest.Pytester, result: pytest.RunResult, *expected: str) -> None:
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "Traceback" not in out and 'File "' not in out, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    written = sorted(str(p.relative_to(pytester.path)) for p in Path(pytester.path).rglob("*")
                     if p.name in ("report.json", "junit.xml", "journal.jsonl") or ".mlbatch" in p.parts)
    assert written == [], f"a bad config must write nothing, found {written}"


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nnetwrk: {}\n", ["netwrk: unknown key"]),
    ("version: 1\nnetwork: {subnet_idz: [subnet-1]}\n", ["network.subnet_idz: unknown key"]),
    ("version: 1\nnetwork: {security_group: {name: g, ingress: [{protocol: tcp, port: 22, cidr: 1.2.3.4/32, "
     "colour: red}]}}\n", ["network.security_group.ingress[0].colour: unknown key"]),
    ("version: 1\nnetwork: {min_free_ips: many}\n", ["network.min_free_ips:"]),
    ("version: 1\naccount_id: 123456789012\n", ["account_id:", "must be a string"]),
    ("version: 1\nregion: 42\n", ["region:"]),
    ("version: 1\nchecks: {skip: [NOPE1]}\n", ["checks.skip[0]:"]),
    ("version: 1\nchecks: {exempt: [{check: SG003, resource: sg-1, until: 2026-02-30, reason: x}]}\n",
     ["checks.exempt[0].until:", "2026-02-30"]),
    ("version: 2\n", ["version:"]),
    ("- just\n- a list\n", ["top level must be a mapping"]),
    ("region: [us-east-1\n", ["not valid YAML", "line"]),
    ("region: us-east-1\n\tkey_pair: x\n", ["not valid YAML"]),
    ("key: !!python/object/apply:os.system ['echo pwned']\n", ["not valid YAML"]),
    ("\xff\xfe bad bytes", ["cannot read"]),
])
def test_bad_mlbatch_yaml(pytester: pytest.Pytester, text: str, expected: list[str]) -> None:
    (pytester.path / "mlbatch.yaml").write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    assert_usage_error(pytester, run(pytester), *expected)


@pytest.mark.parametrize(("text", "expected"), [
    ('[tool.mlbatch]\nversion = 1\nregion = 5\n', ["region:"]),
    ('[tool.mlbatch]\nversion = 1\n[tool.mlbatch.network]\nvpc = "vpc-1"\n', ["network.vpc: unknown key"]),
    ('[tool]\nmlbatch = "us-east-1"\n', ["[tool.mlbatch] must be a table"]),
    ('[tool.mlbatch\nregion = "us-east-1"\n', ["pyproject.toml", "line 1"]),  # pytest reads it first
])
def test_bad_pyproject_table(pytester: pytest.Pytester, text: str, expected: list[str]) -> None:
    (pytester.path / "pyproject.toml").write_text(text)
    assert_usage_error(pytester, run(pytester), *expected)


def test_missing_config_file(pytester: pytest.Pytester) -> None:
    assert_usage_error(pytester, run(pytester, "--mlbatch-config", "nowhere/mlbatch.yaml"),
                       "nowhere/mlbatch.yaml: config file not found")


def test_config_given_as_a_directory(pytester: pytest.Pytester) -> None:
    (pytester.path / "conf").mkdir()
    assert_usage_error(pytester, run(pytester, "--mlbatch-config", "conf"),
                        "conf is a directory, not a config file")


def test_bad_json_config(pytester: pytest.Pytester) -> None:
    (pytester.path / "mlbatch.json").write_text('{"version": 1, "region": ')
    assert_usage_error(pytester, run(pytester, "--mlbatch-config", "mlbatch.json"), "not valid JSON")


@pytest.mark.parametrize(("args", "expected"), [
    (["--fix", "--fix-dry-run"], "exclude each other"),
    (["--mlbatch-fail-on", "severe"], "invalid choice"),
])
def test_bad_options(pytester: pytest.Pytester, args: list[str], expected: str) -> None:
    (pytester.path / "mlbatch.yaml").write_text(VALID)
    assert_usage_error(pytester, run(pytester, *args), expected)


def test_bad_ini_fail_on(pytester: pytest.Pytester) -> None:
    (pytester.path / "mlbatch.yaml").write_text(VALID)
    pytester.makeini("[pytest]\nmlbatch_fail_on = severe\n")
    assert_usage_error(pytester, run(pytester), "mlbatch_fail_on", "severe")


def test_fix_without_mlbatch(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fix")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--fix needs --mlbatch" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_every_problem_listed_at_once(pytester: pytest.Pytester) -> None:
    (pytester.path / "mlbatch.yaml").write_text(
        "version: 1\nregion: Europe\nnetwork: {vpc_id: 12, colour: red}\nbatch: {job: {vcpus: -1}}\n")
    assert_usage_error(pytester, run(pytester), "region:", "network.vpc_id:", "network.colour: unknown key",
                       "batch.job.vcpus:")
