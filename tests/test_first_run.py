"""The first ten minutes (issue 16): a gate that checked nothing never passes, config problems say where we looked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from backends import Aws

from pytest_mlbatch import config as cfg


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--mlbatch", "-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_no_config_is_a_usage_error_naming_where_it_looked(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--mlbatch-json", "r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "no preflight config found" in err
    for place in ("mlbatch.yaml", "mlbatch.yml", f"[tool.mlbatch] in {pytester.path / 'pyproject.toml'}"):
        assert place in err
    assert "--mlbatch-config" in err and "Traceback" not in err + result.stdout.str()
    assert not (pytester.path / "r.json").exists()


def test_pyproject_without_a_mlbatch_table_is_no_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    with pytest.raises(cfg.ConfigError, match=r"no preflight config found: looked for .*mlbatch\.yaml"):
        cfg.load(tmp_path, None)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: d.mkdir(), "is a directory, not a config file"),
    (lambda d: d.symlink_to(d.parent / "gone.yaml"), "is a link to .*gone.yaml, which does not exist"),
    (lambda d: d.write_text(""), "the config file is empty"),
    (lambda d: d.write_text("\n   \n"), "the config file is empty"),
    (lambda d: d.write_text("# only a comment\n"), "holds no settings"),
], ids=["directory", "dangling-link", "empty", "blank", "comments-only"])
def test_mlbatch_config_that_is_not_a_config_file(pytester: pytest.Pytester, make, expected: str) -> None:
    make(pytester.path / "cfg.yaml")
    with pytest.raises(cfg.ConfigError, match=expected):
        cfg.load(pytester.path, "cfg.yaml")
    result = run(pytester, "--mlbatch-config", "cfg.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cfg.yaml" in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_empty_default_config_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "mlbatch.yaml").write_text("")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {pytester.path / 'mlbatch.yaml'}: the config file is empty*"])


def test_a_run_that_checked_nothing_beyond_env_fails_unless_opted_in(preflight, aws: Aws) -> None:
    """Credentials and a region, nothing else configured or discoverable: ENV passes, every other check skips."""
    result, report = preflight.run({"version": 1, "region": "us-east-1"})
    assert report["summary"]["passed"] >= 1 and report["summary"]["failed"] == 0
    assert report["summary"]["error"] == 0
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["gate"] == "failed"
    result.stdout.fnmatch_lines(["*nothing at or above --mlbatch-fail-on low was checked beyond credentials and "
                                 "region*the run fails*--mlbatch-allow-unchecked*"])
    result, report = preflight.run(None, "--mlbatch-allow-unchecked")
    assert result.ret == pytest.ExitCode.OK and report["gate"] == "passed"
    result.stdout.fnmatch_lines(["*was checked beyond credentials and region*the run passes "
                                 "(--mlbatch-allow-unchecked)*"])


def test_checked_only_below_the_gate_fails_too(preflight, aws: Aws) -> None:
    """KEY001 (high) is evaluated, but the gate is critical: nothing at or above it was checked."""
    cfg_ = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"}}
    result, report = preflight.run(cfg_, "--mlbatch-fail-on", "critical")
    assert preflight.result(report, "KEY001")["outcome"] == "failed"
    assert result.ret == pytest.ExitCode.TESTS_FAILED and report["gate"] == "failed"
    result, report = preflight.run(cfg_, "--mlbatch-fail-on", "high")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # KEY001 itself fails the run at high
    aws.client("ec2").create_key_pair(KeyName="ml-batch-key")
    result, report = preflight.run(cfg_, "--mlbatch-fail-on", "high")
    assert preflight.result(report, "KEY001")["outcome"] == "passed"
    assert result.ret == pytest.ExitCode.OK and report["gate"] == "passed"


def test_allow_unchecked_from_ini(preflight, aws: Aws, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmlbatch_allow_unchecked = true\n")
    result, _ = preflight.run({"version": 1, "region": "us-east-1"})
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(("text", "shown"), [
    ("account_id: 012345670123\n", "account_id: 012345670123 must be a string (quote it in YAML)"),
    ("account_id: 0x1F\n", "account_id: 0x1F must be a string"),
    ("network:\n  subnet_ids: [subnet-1, 017]\n", "network.subnet_ids[1]: 017 must be a string"),
    ("region: 1.50\n", "region: 1.50 is not of type 'string'"),
])
def test_config_values_are_shown_as_written(tmp_path: Path, text: str, shown: str) -> None:
    (tmp_path / "mlbatch.yaml").write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(tmp_path, None)
    assert shown in str(info.value)


def test_written_numbers_keep_their_value(tmp_path: Path) -> None:
    (tmp_path / "mlbatch.yaml").write_text("network:\n  min_free_ips: 0x10\n"
                                           "batch:\n  job: {vcpus: 0.5, memory: 1024}\n")
    s = cfg.load(tmp_path, None)
    assert s.min_free_ips == 16 and s.job is not None and (s.job.vcpus, s.job.memory) == (0.5, 1024)
    assert os.fspath(tmp_path)  # the loader changed nothing on disk


# -- a region that is not a region; what an `error` tells you to do ----------------------------------------------
def test_a_region_that_is_not_a_region_stops_its_region_checks(preflight, aws: Aws) -> None:
    config = {"version": 1, "region": "zz-north-9", "key_pair": {"name": "ml-batch-key"},
              "batch": {"job_queue": "ml-queue", "job_definition": "ml-train"}}
    result, report = preflight.run(config)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    env002 = preflight.result(report, "ENV002")
    assert env002["outcome"] == "failed" and "'zz-north-9' (from config region) is not a known AWS region" in \
        env002["message"]
    others = [r for r in report["results"] if r["area"] != "ENV"]
    assert others and all(r["outcome"] == "skipped" for r in others), others
    assert all("'zz-north-9' is not an AWS region (see ENV002)" in r["message"] for r in others)
    for r in report["results"]:
        assert "<" not in r["message"] and len(r["message"]) < 400, r


def test_html_answers_are_named_not_embedded() -> None:
    from pytest_mlbatch.aws.inventory import AwsError, clean_detail

    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + "x" * 50_000 + "</body></html>"
    text = clean_detail(page)
    assert text.startswith("an HTML page titled '502 Bad Gateway' answered, not the AWS API") and "<" not in text
    err = AwsError("ec2:DescribeKeyPairs", "fault", "502", page)
    assert "<" not in str(err) and len(str(err)) < 400
    assert len(clean_detail("y" * 10_000)) == 300


def test_an_html_error_page_from_the_endpoint_becomes_a_short_error(tmp_path: Path, monkeypatch) -> None:
    """A proxy answering every request with an HTML page (a real HTTP server on loopback): the errors say what
    answered and how, and tell how to get the check evaluated, not the check's remedy for a failure."""
    import http.server
    import threading

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><head><title>Access blocked</title></head><body>" + b"policy " * 5000 + b"</body></html>"
            self.send_response(503)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        from bat_fixtures import run_check

        r = run_check("BAT003", {"version": 1, "region": "us-east-1", "batch": {"job_definition": "ml-train"}},
                      tmp_path)
    finally:
        server.shutdown()
    assert r.outcome == "error"
    assert "HTTP 503 from server 'BaseHTTP/" in r.message  # what answered, and how
    assert "<" not in r.message and len(r.message) < 500
    assert "resourceRequirements" not in r.remediation  # BAT003's remedy for a failure
    assert "run again" in r.remediation


def test_error_remediation_says_how_to_get_evaluated(tmp_path: Path, monkeypatch) -> None:
    """Connection refused (nothing listens on port 9): the remedy names the endpoint, not KEY001's remedy."""
    from bat_fixtures import run_check

    from pytest_mlbatch.aws.inventory import AwsError

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    r = run_check("KEY001", {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"}}, tmp_path)
    assert r.outcome == "error" and "127.0.0.1:9" in r.message
    assert "AWS_ENDPOINT_URL" in r.remediation and "import the key pair" not in r.remediation
    for kind, words in [("denied", "grant ec2:DescribeKeyPairs"), ("connection", "AWS_ENDPOINT_URL"),
                        ("timeout", "did not answer"), ("throttled", "--mlbatch-concurrency"),
                        ("credentials", "aws sso login")]:
        assert words in AwsError("ec2:DescribeKeyPairs", kind, "X", "y").remedy
