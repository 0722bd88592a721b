"""The shared permission evaluator: table-driven local evaluation, trust policies, reference policies, and the
SimulatePrincipalPolicy path (moto does not implement it: botocore's Stubber, validated against IAM's model)."""

from __future__ import annotations

import fnmatch
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlbatch.analysis import policy
from pytest_mlbatch.analysis.policy import Document, Request
from pytest_mlbatch.aws import principals, roles
from pytest_mlbatch.aws.inventory import Inventory

BUCKET = "arn:aws:s3:::ml-data"


def doc(*stmts: dict[str, Any]) -> Document:
    return Document("test policy", {"Version": "2012-10-17", "Statement": list(stmts)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# (name, statements, request, expected verdict, a substring of the deciding statement or reason)
CASES: list[tuple[str, list[dict[str, Any]], Request, str, str]] = [
    ("plain allow", [allow("s3:GetObject", f"{BUCKET}/*")], Request("s3:GetObject", f"{BUCKET}/x"),
     "allowed", "statement #1"),
    ("nothing applies: implicit deny", [allow("s3:PutObject")], Request("s3:GetObject", f"{BUCKET}/x"),
     "denied", "implicit deny"),
    ("explicit deny wins over allow", [allow("s3:*"), {**deny("s3:GetObject", f"{BUCKET}/*"), "Sid": "NoRead"}],
     Request("s3:GetObject", f"{BUCKET}/x"), "denied", "'NoRead'"),
    ("deny order does not matter", [deny("s3:Get*"), allow("s3:GetObject")], Request("s3:GetObject"),
     "denied", "Deny statement #1"),
    ("actions are case-insensitive", [allow("S3:getobject")], Request("s3:GetObject"), "allowed", ""),
    ("resources are case-sensitive", [allow("s3:GetObject", f"{BUCKET}/Data/*")],
     Request("s3:GetObject", f"{BUCKET}/data/x"), "denied", "implicit"),
    ("wildcard in the middle of an action", [allow("ecr:Get*Layer")], Request("ecr:GetDownloadUrlForLayer"),
     "allowed", ""),
    ("? matches exactly one character", [allow("ec2:Describe?pc*")], Request("ec2:DescribeVpcs"), "allowed", ""),
    ("? does not match two", [allow("ec2:Describe?cs")], Request("ec2:DescribeVpcs"), "denied", "implicit"),
    ("brackets are literal, not a class", [allow("s3:GetObject", f"{BUCKET}/[ab]")],
     Request("s3:GetObject", f"{BUCKET}/a"), "denied", "implicit"),
    ("service wildcard", [allow("*")], Request("batch:SubmitJob", "arn:aws:batch:us-east-1:1:job-queue/q"),
     "allowed", ""),
    ("NotAction allows everything else", [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
     Request("ecr:BatchGetImage"), "allowed", ""),
    ("NotAction excludes", [{"Effect": "Allow", "NotAction": ["iam:*", "ecr:*"], "Resource": "*"}],
     Request("ecr:BatchGetImage"), "denied", "implicit"),
    ("Deny with NotAction denies the rest", [allow("*"), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}],
     Request("ecr:BatchGetImage"), "denied", "explicit"),
    ("NotResource", [{"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/secret/*"}],
     Request("s3:GetObject", f"{BUCKET}/public/x"), "allowed", ""),
    ("NotResource excludes", [{"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/secret/*"}],
     Request("s3:GetObject", f"{BUCKET}/secret/x"), "denied", "implicit"),
    ("ARN parts match separately", [allow("ecr:BatchGetImage", "arn:aws:ecr:*:123456789012:repository/ml*")],
     Request("ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/mlmodel"), "allowed", ""),
    ("a * that ends an ARN segment matches across later colons",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:*:repository/ml*")],
     Request("ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/mlmodel"), "allowed", ""),
    ("a * inside an ARN segment does not cross a colon", [allow("ecr:BatchGetImage", "arn:aws:ecr:eu-*1:repository/*")],
     Request("ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/mlmodel"), "denied", "implicit"),
    ("other account's ARN", [allow("ecr:BatchGetImage", "arn:aws:ecr:*:111111111111:repository/*")],
     Request("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:123456789012:repository/m"), "denied", "implicit"),
    ("list of resources",
     [allow(["ecr:BatchGetImage"], ["arn:aws:ecr:*:*:repository/a", "arn:aws:ecr:*:*:repository/m"])],
     Request("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:1:repository/m"), "allowed", ""),
    ("condition with an unknown key -> unknown",
     [allow("s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})],
     Request("s3:GetObject", f"{BUCKET}/x"), "unknown", "condition"),
    ("conditional deny next to an allow -> unknown",
     [allow("s3:*"), deny("s3:GetObject", "*", Condition={"Bool": {"aws:SecureTransport": "false"}})],
     Request("s3:GetObject"), "unknown", "Deny"),
    ("conditional deny without an allow is still a deny",
     [deny("s3:GetObject", "*", Condition={"Bool": {"aws:SecureTransport": "false"}})],
     Request("s3:GetObject"), "denied", "implicit"),
    ("condition met by the request context",
     [allow("iam:PassRole", "*", Condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}})],
     Request("iam:PassRole", "*", (("iam:PassedToService", ("ecs-tasks.amazonaws.com",)),)), "allowed", ""),
    ("condition not met by the request context",
     [allow("iam:PassRole", "*", Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})],
     Request("iam:PassRole", "*", (("iam:PassedToService", ("ecs-tasks.amazonaws.com",)),)), "denied", "implicit"),
    ("condition key names are case-insensitive",
     [allow("iam:PassRole", "*", Condition={"StringLike": {"IAM:passedtoservice": "ecs-*"}})],
     Request("iam:PassRole", "*", (("iam:PassedToService", ("ecs-tasks.amazonaws.com",)),)), "allowed", ""),
    ("set operators on a known key",
     [allow("iam:PassRole", "*", Condition={"ForAnyValue:StringEquals": {"iam:PassedToService": "x"}})],
     Request("iam:PassRole", "*", (("iam:PassedToService", ("x",)),)), "allowed", ""),
    ("an operator not modelled (Date*) -> unknown",
     [allow("s3:GetObject", "*", Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})],
     Request("s3:GetObject", "*", (("aws:CurrentTime", ("2026-01-01T00:00:00Z",)),)), "unknown", "condition"),
    ("policy variable -> unknown", [allow("s3:GetObject", "arn:aws:s3:::home/${aws:username}/*")],
     Request("s3:GetObject", "arn:aws:s3:::home/alice/x"), "unknown", "variable"),
    ("policy variable that cannot match", [allow("s3:GetObject", "arn:aws:s3:::home/${aws:username}/*")],
     Request("s3:GetObject", "arn:aws:s3:::other/alice/x"), "denied", "implicit"),
    ("escaped literal star", [allow("s3:GetObject", "arn:aws:s3:::b/${*}")],
     Request("s3:GetObject", "arn:aws:s3:::b/x"), "denied", "implicit"),
    ("no statements at all", [], Request("s3:GetObject"), "denied", "implicit"),
]


# -- documented cases: each row names the rule of the IAM User Guide it checks ----------------------------------
# PEL: "Policy evaluation logic"; COND: "IAM JSON policy elements: Condition operators"; RES: "IAM JSON policy
# elements: Resource" (wildcards in resource ARNs); VAR: "IAM policy elements: Variables and tags"; VER: "IAM JSON
# policy elements: Version". A context key mapped to () is known to be absent from the request; a key not in the
# context is one the evaluator does not know.
US = (("aws:RequestedRegion", ("us-east-1",)),)
EU = (("aws:RequestedRegion", ("eu-west-1",)),)
ACCT = (("aws:PrincipalAccount", ("123456789012",)),)
NO_TAG: tuple[tuple[str, tuple[str, ...]], ...] = (("aws:PrincipalTag/svc", ()),)
GUARDRAIL = {"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*",
             "Condition": {"StringNotEqualsIfExists": {"aws:RequestedRegion": ["us-east-1"]}}}
REPO = "arn:aws:ecr:us-east-1:123456789012:repository/ml"
STREAM = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/batch/job:log-stream:x/default/1"

# (rule, version, statements, request, verdict)
DOCUMENTED: list[tuple[str, str | None, list[dict[str, Any]], Request, str]] = [
    ("PEL: an explicit Deny in any policy overrides any Allow", "2012-10-17",
     [allow("s3:*"), deny("s3:GetObject")], Request("s3:GetObject"), "denied"),
    ("PEL: without an applicable Allow the request is implicitly denied", "2012-10-17",
     [allow("s3:PutObject")], Request("s3:GetObject"), "denied"),
    ("COND: a key absent from the request makes a positive operator false", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"aws:PrincipalTag/svc": "ml"}})],
     Request("s3:GetObject", "*", NO_TAG), "denied"),
    ("COND: a key absent from the request makes a negated operator (StringNotLike) true", "2012-10-17",
     [allow("s3:*"), deny("s3:*", Condition={"StringNotLike": {"aws:PrincipalTag/svc": "ml*"}})],
     Request("s3:GetObject", "*", NO_TAG), "denied"),
    ("COND: ...IfExists is true when the key is absent", "2012-10-17",
     [allow("s3:*", Condition={"StringEqualsIfExists": {"aws:PrincipalTag/svc": "ml"}})],
     Request("s3:GetObject", "*", NO_TAG), "allowed"),
    ("COND: ...IfExists compares a present key (false allow in another region gone)", "2012-10-17",
     [allow("s3:*", Condition={"StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}})],
     Request("s3:GetObject", "*", US), "denied"),
    ("COND: ...IfExists on a key the evaluator does not know is undecidable, not absent", "2012-10-17",
     [allow("s3:*", Condition={"StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}})],
     Request("s3:GetObject"), "unknown"),
    ("COND: region guardrail (Deny StringNotEqualsIfExists) lets the allowed region through", "2012-10-17",
     [allow("*"), GUARDRAIL], Request("ecr:BatchGetImage", REPO, US), "allowed"),
    ("COND: region guardrail denies another region", "2012-10-17",
     [allow("*"), GUARDRAIL], Request("ecr:BatchGetImage", REPO, EU), "denied"),
    ("COND: region guardrail with the region not known is undecidable", "2012-10-17",
     [allow("*"), GUARDRAIL], Request("ecr:BatchGetImage", REPO), "unknown"),
    ("COND: Null true holds when the key is absent", "2012-10-17",
     [allow("s3:*", Condition={"Null": {"aws:PrincipalTag/svc": "true"}})], Request("s3:GetObject", "*", NO_TAG),
     "allowed"),
    ("COND: Null false does not hold when the key is absent", "2012-10-17",
     [allow("s3:*", Condition={"Null": {"aws:PrincipalTag/svc": "false"}})], Request("s3:GetObject", "*", NO_TAG),
     "denied"),
    ("COND: several values of one key are ORed", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}})],
     Request("s3:GetObject", "*", US), "allowed"),
    ("COND: several keys of one operator are ANDed", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1",
                                                "aws:PrincipalAccount": "111111111111"}})],
     Request("s3:GetObject", "*", US + ACCT), "denied"),
    ("COND: several operators are ANDed; a false one decides even next to an unknown one", "2012-10-17",
     [allow("s3:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                               "StringEquals": {"aws:RequestedRegion": "eu-west-1"}})],
     Request("s3:GetObject", "*", US), "denied"),
    ("COND: StringEquals is case-sensitive", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"aws:RequestedRegion": "US-EAST-1"}})],
     Request("s3:GetObject", "*", US), "denied"),
    ("COND: StringEqualsIgnoreCase ignores case", "2012-10-17",
     [allow("s3:*", Condition={"StringEqualsIgnoreCase": {"aws:RequestedRegion": "US-EAST-1"}})],
     Request("s3:GetObject", "*", US), "allowed"),
    ("COND: condition key names are case-insensitive", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"AWS:requestedregion": "us-east-1"}})],
     Request("s3:GetObject", "*", US), "allowed"),
    ("COND: ForAllValues is true when the key is absent", "2012-10-17",
     [allow("s3:*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}})],
     Request("s3:GetObject", "*", (("aws:TagKeys", ()),)), "allowed"),
    ("COND: ForAnyValue is false when the key is absent", "2012-10-17",
     [allow("s3:*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}})],
     Request("s3:GetObject", "*", (("aws:TagKeys", ()),)), "denied"),
    ("COND: ForAllValues needs every request value in the set", "2012-10-17",
     [allow("s3:*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}})],
     Request("s3:GetObject", "*", (("aws:TagKeys", ("a", "c")),)), "denied"),
    ("COND: NumericLessThan compares numbers", "2012-10-17",
     [allow("s3:*", Condition={"NumericLessThan": {"s3:max-keys": "10"}})],
     Request("s3:ListBucket", "*", (("s3:max-keys", ("9",)),)), "allowed"),
    ("COND: aws:PrincipalAccount is known and compared", "2012-10-17",
     [allow("s3:*", Condition={"StringEquals": {"aws:PrincipalAccount": "123456789012"}})],
     Request("s3:GetObject", "*", ACCT), "allowed"),
    ("COND: iam:PassedToService is compared with the service the role is passed to", "2012-10-17",
     [allow("iam:PassRole", Condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}})],
     Request("iam:PassRole", "*", (("iam:PassedToService", ("batch.amazonaws.com",)),)), "denied"),
    ("RES: a * that is the last character of a segment expands across colons (arn:aws:ecr:*)", "2012-10-17",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:*")], Request("ecr:BatchGetImage", REPO), "allowed"),
    ("RES: arn:aws:logs:* matches every log stream", "2012-10-17",
     [allow("logs:PutLogEvents", "arn:aws:logs:*")], Request("logs:PutLogEvents", STREAM), "allowed"),
    ("RES: a * inside a segment matches within that segment only", "2012-10-17",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:us-*-1:repository/ml")], Request("ecr:BatchGetImage", REPO), "denied"),
    ("RES: ? matches one character of a segment", "2012-10-17",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:us-east-?:123456789012:repository/m?")],
     Request("ecr:BatchGetImage", REPO), "allowed"),
    ("RES: an ARN without a wildcard matches only itself", "2012-10-17",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:us-east-1")], Request("ecr:BatchGetImage", REPO), "denied"),
    ("VAR: under 2012-10-17 a variable the evaluator cannot resolve is undecidable", "2012-10-17",
     [allow("s3:*"), deny("s3:*", Condition={"StringNotLike": {"aws:RequestedRegion": "${aws:PrincipalTag/svc}"}})],
     Request("s3:GetObject", "*", US), "unknown"),
    ("VAR: a resolvable variable is replaced by its value", "2012-10-17",
     [allow("ecr:BatchGetImage", "arn:aws:ecr:*:${aws:PrincipalAccount}:repository/*")],
     Request("ecr:BatchGetImage", REPO, ACCT), "allowed"),
    ("VAR: a resolved value is literal text (its * is no wildcard)", "2012-10-17",
     [allow("s3:*", "arn:aws:s3:::b/${aws:PrincipalTag/svc}")],
     Request("s3:GetObject", "arn:aws:s3:::b/ml", (("aws:PrincipalTag/svc", ("*",)),)), "denied"),
    ("VAR: a default value applies when the key is absent", "2012-10-17",
     [allow("s3:*", "arn:aws:s3:::b/${aws:PrincipalTag/svc, 'shared'}/*")],
     Request("s3:GetObject", "arn:aws:s3:::b/shared/x", NO_TAG), "allowed"),
    ("VAR: ${*} is a literal *", "2012-10-17",
     [allow("s3:*", "arn:aws:s3:::b/${*}")], Request("s3:GetObject", "arn:aws:s3:::b/x"), "denied"),
    ("VER: without Version (2008-10-17) ${...} is literal text in a condition", None,
     [allow("s3:*"), deny("s3:*", Condition={"StringNotLike": {"aws:RequestedRegion": "${aws:PrincipalTag/svc}"}})],
     Request("s3:GetObject", "*", US), "denied"),
    ("VER: under 2008-10-17 ${...} is literal text in a resource", "2008-10-17",
     [allow("s3:*", "arn:aws:s3:::home/${aws:username}/*")],
     Request("s3:GetObject", "arn:aws:s3:::home/${aws:username}/x"), "allowed"),
]


@pytest.mark.parametrize(("rule", "version", "stmts", "req", "verdict"), DOCUMENTED,
                         ids=[c[0] for c in DOCUMENTED])
def test_documented_rule(rule: str, version: str | None, stmts: list[dict[str, Any]], req: Request,
                         verdict: str) -> None:
    document: dict[str, Any] = {"Statement": stmts}
    if version:
        document["Version"] = version
    decision = policy.evaluate([Document("policy", document)], req)
    assert decision.verdict == verdict, f"{rule}: {decision.describe()}"


@pytest.mark.parametrize(("name", "stmts", "req", "verdict", "why"), CASES, ids=[c[0] for c in CASES])
def test_local_evaluation(name: str, stmts: list[dict[str, Any]], req: Request, verdict: str, why: str) -> None:
    decision = policy.evaluate([doc(*stmts)], req)
    assert decision.verdict == verdict, decision.describe()
    assert why in f"{decision.statement} {decision.reason}"
    assert decision.method == policy.LOCAL


def test_single_statement_object_and_several_documents() -> None:
    single = Document("inline a", {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}})
    other = Document("managed b", {"Statement": [deny("s3:GetObject")]})
    assert policy.evaluate([single], Request("s3:GetObject")).verdict == "allowed"
    decided = policy.evaluate([single, other], Request("s3:GetObject"))
    assert (decided.verdict, decided.statement) == ("denied", "Deny statement #1 of managed b")


def test_permissions_boundary_limits_the_identity_policies() -> None:
    identity = [doc(allow("*"))]
    boundary = [Document("boundary", {"Statement": [allow("s3:*")]})]
    assert policy.evaluate_with_boundary(identity, boundary, Request("s3:GetObject")).verdict == "allowed"
    outside = policy.evaluate_with_boundary(identity, boundary, Request("ecr:BatchGetImage"))
    assert outside.verdict == "denied" and "permissions boundary" in outside.reason
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    cond = [Document("boundary", {"Statement": [allow("*", Condition=mfa)]})]
    assert policy.evaluate_with_boundary(identity, cond, Request("s3:GetObject")).verdict == "unknown"


def test_reference_requests_expand_wildcards_and_conditions() -> None:
    reqs = policy.reference_requests({"Statement": [
        allow(["ecs:Submit*", "ecr:BatchGetImage"]),
        allow("iam:PassRole", "*", Condition={"StringEquals": {"iam:PassedToService": ["a.com", "b.com"]}}),
        deny("*"),
    ]})
    actions = [r.action for r in reqs]
    # ecs:Submit* is expanded from botocore's ECS model into the real operations
    assert "ecs:SubmitTaskStateChange" in actions and "ecs:Submit*" not in actions
    passrole = [r for r in reqs if r.action == "iam:PassRole"]
    assert [r.context_map for r in passrole] == [{"iam:passedtoservice": ("a.com",)},
                                                 {"iam:passedtoservice": ("b.com",)}]


def test_an_equivalent_custom_policy_grants_the_reference() -> None:
    reference = {"Statement": [allow(["ecr:GetAuthorizationToken", "logs:PutLogEvents"]),
                               allow("ecs:TagResource", "arn:aws:ecs:*:*:task/*_Batch_*")]}
    custom = [doc(allow(["ecr:*", "logs:*"]), allow("ecs:TagResource", "arn:aws:ecs:*:*:task/*"))]
    decisions = [policy.evaluate(custom, r) for r in policy.reference_requests(reference)]
    assert {d.verdict for d in decisions} == {"allowed"}
    narrower = [doc(allow(["ecr:*", "logs:*"]), allow("ecs:TagResource", "arn:aws:ecs:*:*:task/x"))]
    decisions = [policy.evaluate(narrower, r) for r in policy.reference_requests(reference)]
    assert [d.request.action for d in decisions if d.verdict == "denied"] == ["ecs:TagResource"]


def test_summary_outcomes_and_method_in_message() -> None:
    ok = policy.evaluate([doc(allow("*"))], Request("s3:GetObject"))
    no = policy.evaluate([doc(allow("s3:Put*"))], Request("s3:GetObject"))
    maybe = policy.evaluate([doc(allow("*", Condition={"Bool": {"aws:X": "true"}}))], Request("s3:GetObject"))
    assert policy.summarize([ok], "role r").outcome == "passed"
    failed = policy.summarize([ok, no], "role r")
    assert failed.outcome == "failed"
    assert "1 of 2 not allowed: s3:GetObject: denied (no statement allows it" in failed.message
    assert "[answered by local evaluation]" in failed.message
    assert policy.summarize([ok, maybe], "role r").outcome == "unknown"


# -- trust policies --------------------------------------------------------------------------------------------
def role(trust: dict[str, Any]) -> dict[str, Any]:
    return {"RoleName": "r", "Arn": "arn:aws:iam::123456789012:role/r", "AssumeRolePolicyDocument": trust}


TRUST_CASES = [
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]}, "allowed"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["batch.amazonaws.com", "ec2.amazonaws.com"]},
                     "Action": ["sts:AssumeRole"]}]}, "allowed"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]}, "denied"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:TagSession"}]},
     "denied"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
                    {"Effect": "Deny", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:*"}]}, "denied"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
                     "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]}, "allowed"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
                     "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}}}]}, "denied"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
                     "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:123456789012:*"}}}]}, "unknown"),
    ('{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, '
     '"Action": "sts:AssumeRole"}]}', "allowed"),
    ("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws"
     ".com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D", "allowed"),
]


@pytest.mark.parametrize(("trust", "verdict"), TRUST_CASES)
def test_trust_policy(trust: Any, verdict: str) -> None:
    decision = roles.trust(role(trust), "ec2.amazonaws.com")
    assert decision.verdict == verdict, decision.message


def test_trust_message_names_what_it_trusts_instead() -> None:
    decision = roles.trust(role(TRUST_CASES[2][0]), "ec2.amazonaws.com")  # type: ignore[arg-type]
    assert "does not let ec2.amazonaws.com assume it; it trusts ecs-tasks.amazonaws.com" in decision.message


@pytest.mark.parametrize(("value", "name", "path", "slr"), [
    ("AWSBatchServiceRole", "AWSBatchServiceRole", None, False),
    ("arn:aws:iam::123456789012:role/service-role/AWSBatchServiceRole", "AWSBatchServiceRole", "/service-role/", False),
    ("arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch",
     "AWSServiceRoleForBatch", "/aws-service-role/batch.amazonaws.com/", True),
    ("service-linked", "AWSServiceRoleForBatch", "/aws-service-role/batch.amazonaws.com/", True),
    ("AWSServiceRoleForBatch", "AWSServiceRoleForBatch", "/aws-service-role/batch.amazonaws.com/", True),
    ("aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch", "AWSServiceRoleForBatch",
     "/aws-service-role/batch.amazonaws.com/", True),
    ("arn:aws:iam::123456789012:role/r", "r", "/", False),
])
def test_parse_role(value: str, name: str, path: str | None, slr: bool) -> None:
    ref = roles.parse_role(value)
    assert (ref.name, ref.path, ref.service_linked) == (name, path, slr)


def test_parse_role_refuses_other_arns() -> None:
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        roles.parse_role("arn:aws:iam::123456789012:instance-profile/p")


# -- SimulatePrincipalPolicy: moto does not implement it, so these tests use botocore's Stubber, which checks
# -- every stubbed request and response against IAM's service model -------------------------------------------
ROLE_ARN = "arn:aws:iam::123456789012:role/ecsInstanceRole"


def stubbed_inventory() -> tuple[Inventory, Stubber]:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    inv = Inventory(session, "us-east-1")
    stub = Stubber(inv.client("iam"))
    stub.activate()
    return inv, stub


def known(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    """ContextEntries as decide() sends them: the request's own, then aws:RequestedRegion and aws:PrincipalAccount."""
    pairs = [*entries, ("aws:RequestedRegion", "us-east-1"), ("aws:PrincipalAccount", "123456789012")]
    return [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "stringList"} for k, v in pairs]


def result(action: str, decision: str, **extra: Any) -> dict[str, Any]:
    return {"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision, **extra}


def test_simulation_answers_and_is_named() -> None:
    inv, stub = stubbed_inventory()
    principal = principals.Principal("role", "ecsInstanceRole", ROLE_ARN)
    stub.add_response("simulate_principal_policy", {"EvaluationResults": [
        result("ecs:RegisterContainerInstance", "allowed", MatchedStatements=[
            {"SourcePolicyId": "AmazonEC2ContainerServiceforEC2Role", "SourcePolicyType": "aws-managed"}]),
        result("ecr:GetAuthorizationToken", "implicitDeny"),
        result("logs:PutLogEvents", "explicitDeny", MatchedStatements=[{"SourcePolicyId": "deny-logs",
                                                                          "SourcePolicyType": "IAM Policy"}]),
        result("s3:GetObject", "implicitDeny", MissingContextValues=["aws:SourceVpc"]),
    ], "IsTruncated": False}, {"PolicySourceArn": ROLE_ARN, "ActionNames": sorted(
        ["ecs:RegisterContainerInstance", "ecr:GetAuthorizationToken", "logs:PutLogEvents", "s3:GetObject"]),
        "ContextEntries": known()})
    requests = [Request(a) for a in ("ecs:RegisterContainerInstance", "ecr:GetAuthorizationToken",
                                     "logs:PutLogEvents", "s3:GetObject")]
    decisions = principals.decide(inv, principal, requests)
    assert [d.verdict for d in decisions] == ["allowed", "denied", "denied", "unknown"]
    assert {d.method for d in decisions} == {principals.SIMULATION}
    assert decisions[0].statement == "aws-managed AmazonEC2ContainerServiceforEC2Role"
    assert decisions[2].reason == "explicit deny"
    assert "aws:SourceVpc" in decisions[3].reason
    assert "[answered by iam:SimulatePrincipalPolicy]" in policy.summarize(decisions, "role").message
    stub.assert_no_pending_responses()


def test_simulation_sends_resource_and_context() -> None:
    inv, stub = stubbed_inventory()
    principal = principals.Principal("role", "r", ROLE_ARN)
    repo = "arn:aws:ecr:us-east-1:123456789012:repository/m"
    ctx = (("iam:PassedToService", ("ecs-tasks.amazonaws.com",)),)
    stub.add_response("simulate_principal_policy",
                      {"EvaluationResults": [result("ecr:BatchGetImage", "allowed")], "IsTruncated": False},
                      {"PolicySourceArn": ROLE_ARN, "ActionNames": ["ecr:BatchGetImage"], "ResourceArns": [repo],
                       "ContextEntries": known()})
    stub.add_response("simulate_principal_policy",
                      {"EvaluationResults": [result("iam:PassRole", "allowed")], "IsTruncated": False},
                      {"PolicySourceArn": ROLE_ARN, "ActionNames": ["iam:PassRole"],
                       "ContextEntries": known(("iam:PassedToService", "ecs-tasks.amazonaws.com"))})
    requests = [Request("ecr:BatchGetImage", repo), Request("iam:PassRole", "*", ctx)]
    decisions = principals.decide(inv, principal, requests)
    assert [d.verdict for d in decisions] == ["allowed", "allowed"]
    stub.assert_no_pending_responses()


def test_simulation_refused_falls_back_to_local_once() -> None:
    inv, stub = stubbed_inventory()
    principal = principals.Principal("role", "r", ROLE_ARN)
    stub.add_client_error("simulate_principal_policy", "AccessDenied", "not allowed to simulate", 403)

    def local_reads() -> None:
        stub.add_response("list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False},
                          {"RoleName": "r"})
        stub.add_response("list_role_policies", {"PolicyNames": ["p"], "IsTruncated": False}, {"RoleName": "r"})
        stub.add_response("get_role_policy", {"RoleName": "r", "PolicyName": "p", "PolicyDocument":
                                              '{"Statement": [{"Effect": "Allow", "Action": "ecr:*", '
                                              '"Resource": "*"}]}'}, {"RoleName": "r", "PolicyName": "p"})

    local_reads()
    decisions = principals.decide(inv, principal, [Request("ecr:BatchGetImage"), Request("s3:GetObject")])
    assert [d.verdict for d in decisions] == ["allowed", "denied"]
    assert decisions[0].method == ("local evaluation of identity policies (organization SCPs not visible); "
                                   "iam:SimulatePrincipalPolicy not available: AccessDenied")
    assert decisions[0].statement == "Allow statement #1 of inline policy p"
    # the next question goes straight to local evaluation: no second simulate call is queued (the Stubber
    # would fail on one); the role's policies are already cached by the inventory
    again = principals.decide(inv, principal, [Request("ecr:GetAuthorizationToken")])
    assert again[0].verdict == "allowed"
    stub.assert_no_pending_responses()


def test_concrete_resource_for_a_reference_pattern() -> None:
    assert policy.concrete("arn:aws:ecs:*:*:task/*_Batch_*", "eu-west-1", "111122223333") == \
        "arn:aws:ecs:eu-west-1:111122223333:task/pytest-mlbatch_Batch_pytest-mlbatch"
    assert policy.concrete("*", "eu-west-1", "1") == "*"
    assert policy.concrete("arn:aws:s3:::bucket/?", None, None) == "arn:aws:s3:::bucket/x"


def test_unknown_names_statement_and_reason() -> None:
    decision = policy.evaluate([doc(allow("s3:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))],
                               Request("s3:GetObject"))
    assert decision.describe() == ("s3:GetObject: unknown (Allow statement #1 of test policy (undecided: IpAddress "
                                   "aws:SourceIp): only an Allow with a condition or variable applies)")


def test_statement_without_a_valid_effect_grants_nothing() -> None:
    assert policy.evaluate([doc({"Action": "*", "Resource": "*"})], Request("s3:GetObject")).verdict == "denied"


# -- the wildcard translation checked against an independent implementation (fnmatch, which treats * and ? the
# -- same way; patterns here have no [ so its character classes never come into play) ----------------------
WILDCARD_TEXT = st.text(alphabet="ab:/*?-", max_size=12)
PLAIN_TEXT = st.text(alphabet="abAB:/-", max_size=12)


@given(pattern=WILDCARD_TEXT, value=PLAIN_TEXT)
def test_action_matching_agrees_with_fnmatch(pattern: str, value: str) -> None:
    assert policy.match_action(pattern, value) == fnmatch.fnmatchcase(value.lower(), pattern.lower())


@given(pattern=WILDCARD_TEXT, value=PLAIN_TEXT)
def test_resource_matching_is_never_looser_than_fnmatch(pattern: str, value: str) -> None:
    result = policy.match_resource(pattern, value)
    if result:
        assert fnmatch.fnmatchcase(value, pattern)
    if value.count(":") < 5 and pattern.count(":") < 5 and not pattern.startswith("arn:"):
        assert bool(result) == fnmatch.fnmatchcase(value, pattern)


@pytest.mark.parametrize(("value", "name", "arn"), [
    ("ecsInstanceRole", "ecsInstanceRole", None),
    ("arn:aws:iam::123456789012:instance-profile/batch/ml-profile", "ml-profile",
     "arn:aws:iam::123456789012:instance-profile/batch/ml-profile"),
    ("arn:aws:iam::123456789012:role/ecsInstanceRole", "ecsInstanceRole", None),  # a role ARN: IAM003 says so
])
def test_parse_profile(value: str, name: str, arn: str | None) -> None:
    ref = roles.parse_profile(value)
    assert (ref.name, ref.arn) == (name, arn)


def test_parse_profile_refuses_other_arns() -> None:
    with pytest.raises(ValueError, match="not an instance profile ARN"):
        roles.parse_profile("arn:aws:s3:::bucket")
