"""The first ten minutes (issue 16): a gate that checked nothing never passes, config problems say where we looked."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from backends import Aws

from pytest_mlbatch import config as cfg

pytest_plugins = ("scale_fixtures",)


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


# -- output a person reads -----------------------------------------------------------------------------------------
def test_counts_read_as_english() -> None:
    from pytest_mlbatch.output.results import totals_text

    rows = [{"check_id": "NET001", "outcome": "error"}, {"check_id": "NET002", "outcome": "error"},
            {"check_id": "KEY001", "outcome": "failed"}]
    assert totals_text(rows) == "1 failed, 2 errors"
    assert totals_text(rows[:1]) == "1 error"


def test_each_finding_once_and_skips_point_at_the_check(preflight, aws: Aws) -> None:
    """A failure and an error: each finding's text appears once (the preflight summary), not also in pytest's
    FAILURES/ERRORS blocks and short test summary; skip reasons point at the check's source, not the plugin."""
    cfg_ = {"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"},
            "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:1.0"}}
    result, report = preflight.run(cfg_, "-rs")
    out = result.stdout.str()
    message = preflight.result(report, "KEY001")["message"]
    assert out.count(message) == 1, out
    assert "= FAILURES =" not in out and "short test summary" in out  # -rs: the skips only
    assert "FAILED mlbatch/" not in out
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("checks/" in line and "plugin/items.py" not in line for line in skips), skips
    assert "checks/key.py:" in out or "checks/img.py:" in out
    # --tb=short asks for pytest's blocks: they come back
    result, _ = preflight.run(None, "--tb=short")
    result.stdout.fnmatch_lines(["*KEY001 The EC2 key pair exists in the region [[]high[]] on ml-batch-key*FAILED",
                                 "  finding: key pair 'ml-batch-key' does not exist in us-east-1*"])


def test_fix_is_visible_without_v(preflight, aws: Aws) -> None:
    cfg_ = {"version": 1, "region": "us-east-1",
            "key_pair": {"name": "ml-batch-key", "private_key_file": "keys/ml.pem"}}
    result, report = preflight.run(cfg_, "--fix", "-k", "KEY001")
    assert preflight.result(report, "KEY001")["outcome"] == "fixed"
    key_id = aws.client("ec2").describe_key_pairs(KeyNames=["ml-batch-key"])["KeyPairs"][0]["KeyPairId"]
    result.stdout.fnmatch_lines(["mlbatch/us-east-1 +*",
                                 "fixed 1 (+), journal *journal.jsonl:",
                                 f"  + KEY001 ml-batch-key — generate*created*{key_id}*"])


# -- the sandbox ---------------------------------------------------------------------------------------------------
def documented_sandbox_problems() -> dict[str, str]:
    """{check: 'fixable' | 'needs a person'} from the sandbox's description."""
    import re

    import pytest_mlbatch.sandbox as sandbox

    doc = sandbox.__doc__ or ""
    return {m.group(1): ("fixable" if m.group(2).startswith("fixable") else "needs a person")
            for m in re.finditer(r"-> ([A-Z]{2,3}\d{3}) fails, (fixable|needs a person)", doc)}


def test_sandbox_decides_on_the_seeded_world_and_only_the_documented_problems_remain(
        pytester: pytest.Pytester) -> None:
    """Every check decides (no `error` from the emulator); the failures are exactly the documented ones; after --fix
    with every opt-in, only those that need a person remain; IAM003's fix makes BAT006 agree."""
    import json

    documented = documented_sandbox_problems()
    assert {"KEY001", "IAM003", "NET003", "SG003", "BAT004"} <= set(documented)
    args = ("--mlbatch-sandbox", "-p", "no:cacheprovider", "--mlbatch-json")
    result = pytester.runpytest_subprocess(*args, "before.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    before = json.loads((pytester.path / "before.json").read_text())
    rows = before["results"]
    assert before["summary"]["passed"] > 0
    assert [r for r in rows if r["outcome"] == "error"] == []
    assert {r["check_id"] for r in rows if r["outcome"] == "failed"} == set(documented)
    by_id = {r["check_id"]: r for r in rows}
    assert by_id["IAM006"]["outcome"] == "passed"
    assert "caller arn:aws:iam::123456789012:role/ml-engineer" in by_id["IAM006"]["message"]
    assert by_id["BAT009"]["outcome"] == "passed"
    assert by_id["BAT006"]["outcome"] == "passed"  # the missing profile is IAM003's finding, not also BAT006's

    (pytester.path / "optin.yaml").write_text("version: 1\nfix:\n  allow: [internet_gateway, nat_gateway, move_tag]\n")
    result = pytester.runpytest_subprocess(*args, "after.json", "--mlbatch-config", "optin.yaml", "--fix")
    rows = json.loads((pytester.path / "after.json").read_text())["results"]
    assert [r for r in rows if r["outcome"] == "error"] == []
    assert {r["check_id"] for r in rows if r["outcome"] == "fixed"} == {
        c for c, how in documented.items() if how == "fixable"}
    assert {r["check_id"] for r in rows if r["outcome"] == "failed"} == {
        c for c, how in documented.items() if how == "needs a person"}
    iam003 = next(r for r in rows if r["check_id"] == "IAM003")
    assert iam003["resource"] == "ecsInstanceRole"  # the profile the compute environment names is the one created
    assert next(r for r in rows if r["check_id"] == "BAT006")["outcome"] == "passed"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# -- progress --------------------------------------------------------------------------------------------------------
def test_slow_reads_are_named_while_the_run_waits(preflight, aws: Aws, counted) -> None:
    """A slow endpoint (a real HTTP delay in front of moto): collection says which discovery read it waits for and
    for how long, and so does an item waiting on its check's read; then the results come as usual."""
    from wsgi_backend import Fault

    # moto builds a service's backend on its first request (IAM's with its managed policies: seconds on a loaded
    # machine); build them now, so that the only slow reads of the run are the two slowed here
    aws.client("sts").get_caller_identity()
    aws.client("batch").describe_job_queues()
    aws.client("ec2").describe_key_pairs()
    counted.set(Fault("slow", "batch:DescribeJobQueues", delay=5), Fault("slow", "ec2:DescribeKeyPairs", delay=5))
    result, report = preflight.run({"version": 1, "region": "us-east-1", "key_pair": {"name": "ml-batch-key"},
                                    "batch": {"job_queue": "ml-queue"}}, "--mlbatch-allow-unchecked")
    out = result.stdout.str()
    collecting = out[:out.index("collected ")]
    # the reads in flight longest are named (two of them): the slowed one among them
    assert re.search(r"^mlbatch: discovering us-east-1: waiting \d+ s for (\S+ in us-east-1 \(\d+ s\), )?"
                     r"batch:DescribeJobQueues in us-east-1 \(\d+ s\)", collecting, re.M), out
    assert re.search(r"^mlbatch: KEY001 ml-batch-key: waiting \d+ s for (\S+ in us-east-1 \(\d+ s\), )?"
                     r"ec2:DescribeKeyPairs in us-east-1", out, re.M), out
    assert preflight.result(report, "KEY001")["outcome"] == "failed"


def test_a_line_names_its_resource_once() -> None:
    from pytest_mlbatch.output.results import problem_line

    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlmodel:latest"
    row = {"check_id": "IMG009", "resource": uri, "message": f"{uri} uses the mutable tag latest",
           "remediation": "pin it"}
    assert problem_line(row) == f"IMG009 {uri} — uses the mutable tag latest → pin it"
    row = {"check_id": "NET003", "resource": "subnet-0b", "message": "subnet-0b: private", "remediation": "r"}
    assert problem_line(row).count("subnet-0b") == 1
