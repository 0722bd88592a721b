"""IAM policy evaluation as pure functions: match actions and resources, conditions, Deny precedence and
boundaries, giving allowed / denied / unknown with the statement that decided, and a summary of many decisions."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_mlbatch.findings import Finding, NotEvaluable, failed, passed

Verdict = Literal["allowed", "denied", "unknown"]
LOCAL = "local evaluation"

# Why a library does not do this: policyuniverse and parliament (the well-kept IAM policy libraries on PyPI)
# parse and lint policies but neither decides "is action A on resource R allowed": parliament's glob matching
# compares two patterns ("*" on either side matches), policyuniverse turns NotResource into "*", and
# neither evaluates Deny precedence or conditions. IAM's wildcards are only `*` and `?` (no [] classes, so
# not fnmatch either): a small regex translation below, verified by tests/test_policy.py.


# -- matching ----------------------------------------------------------------------------------------------
def match_action(pattern: str, action: str) -> bool:
    """IAM action matching: `service:Action` with `*`/`?` wildcards, case-insensitive."""
    return bool(_text_regex(pattern, True).match(action))


# Policy language versions: under 2012-10-17 `${...}` is a policy variable; under 2008-10-17 (also what a
# document without Version means) it is literal text (IAM User Guide, "IAM JSON policy elements: Version").
CURRENT_VERSION = "2012-10-17"
_VAR = re.compile(r"\$\{([^}]*)\}")
_SPECIAL_VARS = {"*": "*", "?": "?", "$": "$"}  # ${*} ${?} ${$}: the literal character
_UNRESOLVED = "\ue000"  # stands for a variable the evaluator cannot resolve, inside a translated pattern


def variables_apply(version: str | None) -> bool:
    return str(version or "") == CURRENT_VERSION


def _resolve_variable(inner: str, context: Mapping[str, Sequence[str]]) -> str | None:
    """The text a policy variable stands for, or None when the request context does not tell.
    `${key, 'default'}` gives the default when the key is known to be absent."""
    if inner in _SPECIAL_VARS:
        return _SPECIAL_VARS[inner]
    key, _, default = inner.partition(",")
    values = context.get(key.strip().lower())
    if values is None:
        return None
    if len(values) == 1:
        return str(values[0])
    if not values and default.strip().startswith("'") and default.strip().endswith("'"):
        return default.strip()[1:-1]
    return None


def _substitute(text: str, context: Mapping[str, Sequence[str]], version: str | None) -> tuple[str, bool]:
    """Replace policy variables by their values; (text, True) when every one was resolved. A resolved value is
    literal text: its own `*` or `?` are escaped as ${*} / ${?} would be (returned with NUL markers)."""
    if not variables_apply(version) or "${" not in text:
        return text, True
    complete = True

    def repl(m: re.Match[str]) -> str:
        nonlocal complete
        value = _resolve_variable(m.group(1), context)
        if value is None:
            complete = False
            return _UNRESOLVED
        return "".join("\0" + ch if ch in "*?" else ch for ch in value)

    return _VAR.sub(repl, text), complete


def _translate(pattern: str, arn: bool) -> str:
    """A policy pattern as a regular expression. `arn`: ARN matching (IAM User Guide, "IAM JSON policy elements:
    Resource"), where `*` and `?` match within one colon-separated segment, except that a `*` that is the last
    character of a segment expands across later colons; otherwise StringLike matching, where `*` is any run of
    characters (colons too) and `?` one character. An unresolved policy variable may stand for anything; NUL
    before a character makes it literal."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\0" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == _UNRESOLVED:
            out.append(".*")
        elif ch == "*":
            within_segment = arn and i + 1 < len(pattern) and pattern[i + 1] != ":"
            out.append("[^:]*" if within_segment else ".*")
        elif ch == "?":
            out.append("[^:]" if arn else ".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _arn_regex(pattern: str) -> re.Pattern[str]:
    """ARN matching of a Resource element or an Arn* condition (see _translate)."""
    return re.compile("^" + _translate(pattern, True) + "$", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def _text_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """StringLike (and action) matching (see _translate)."""
    return re.compile("^" + _translate(pattern, False) + "$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def match_resource(pattern: str, resource: str, *, version: str | None = CURRENT_VERSION,
                   context: Mapping[str, Sequence[str]] | None = None) -> bool | None:
    """IAM resource matching, case-sensitive. An ARN pattern matches segment by segment, a `*` that ends a
    segment across later colons (`arn:aws:ecr:*` matches every ECR ARN). None: the pattern holds a policy
    variable the context does not resolve (e.g. ${aws:username}) and could match."""
    if pattern == "*":
        return True
    text, complete = _substitute(pattern, context or {}, version)
    regex = _arn_regex(text) if text.startswith("arn:") else _text_regex(text)
    if not regex.match(resource):
        return False
    return True if complete else None


# -- conditions --------------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
            "NumericNotEquals", "NotIpAddress", "DateNotEquals", "BinaryNotEquals"}
_POSITIVE_OF = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
                "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
                "NumericNotEquals": "NumericEquals", "NotIpAddress": "IpAddress"}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# A request value known only up to a prefix (say the task ARN ECS sends as aws:SourceArn: its account and region are
# known, the rest is not) ends with this marker; see open_ended().
_OPEN_END = "\ue001"


def open_ended(prefix: str) -> str:
    """A context value of which only the beginning is known (the rest may be anything)."""
    return prefix + _OPEN_END


def _segment_matches(pattern: str, value: str) -> bool:
    return bool(re.fullmatch(_translate(pattern, True).replace(".*", "[^:]*"), value, re.DOTALL))


def _match_open(op: str, expected: str, prefix: str) -> bool | None:
    """A policy value against a value known up to `prefix`: True if every completion matches, False if none can,
    None if some may (ARN conditions compare the six colon-separated components one by one)."""
    if op in ("StringEquals", "StringEqualsIgnoreCase"):
        exact, have = expected.replace("\0", ""), prefix
        if op == "StringEqualsIgnoreCase":
            exact, have = exact.lower(), have.lower()
        return None if exact.startswith(have) else False
    if op not in ("StringLike", "ArnLike", "ArnEquals"):
        return None
    arn = op != "StringLike" and expected.startswith("arn:")
    if expected.endswith("*") and not expected.endswith("\0*"):
        head = re.compile("^" + _translate(expected[:-1], arn) + "$", re.DOTALL)
        if any(head.match(prefix[:k]) for k in range(len(prefix) + 1)):
            return True
    literal = re.split(r"[*?\0\ue000]", expected, maxsplit=1)[0]  # what every matching value starts with
    if not (literal.startswith(prefix) or prefix.startswith(literal)):
        return False
    if arn:
        wanted, known = expected.split(":", 5), prefix.split(":")[:-1]  # the last part of the prefix is partial
        if len(wanted) == 6 and any(not _segment_matches(w, k) for w, k in zip(wanted[:5], known[:5], strict=False)):
            return False
    return None


def _match_one(op: str, expected: str, actual: str) -> bool | None:
    """Does one request value match one policy value under a positive operator? None: not modelled."""
    if actual.endswith(_OPEN_END):
        return _match_open(op, expected, actual[: -len(_OPEN_END)])
    if op == "StringEquals":
        return expected.replace("\0", "") == actual
    if op == "StringEqualsIgnoreCase":
        return expected.replace("\0", "").lower() == actual.lower()
    if op == "StringLike":
        return bool(_text_regex(expected).match(actual))
    if op in ("ArnLike", "ArnEquals"):
        if expected.startswith("arn:"):
            return bool(_arn_regex(expected).match(actual))
        return bool(_text_regex(expected).match(actual))
    if op == "Bool":
        return expected.lower() == actual.lower()
    if op.startswith("Numeric"):
        e, a = _number(expected), _number(actual)
        if e is None or a is None:
            return None
        return {"NumericEquals": a == e, "NumericLessThan": a < e, "NumericLessThanEquals": a <= e,
                "NumericGreaterThan": a > e, "NumericGreaterThanEquals": a >= e}.get(op)
    if op == "IpAddress":
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return None
    return None  # Date*, Binary*, anything else: not modelled


def _key_result(op: str, qualifier: str, if_exists: bool, expected: Sequence[str],
                actual: Sequence[str] | None) -> bool | None:
    """One condition key under one operator (IAM User Guide, "Condition operators" and "Set operators for
    multivalued context keys"). `actual` None: the evaluator does not know the key; () : known to be absent."""
    if actual is None:
        return None  # whether the key is there, and what it holds, is not known: undecidable (…IfExists too)
    if op == "Null":
        want_absent = [e.lower() == "true" for e in expected]
        return (not actual) in want_absent
    negated = op in _NEGATED
    positive = _POSITIVE_OF.get(op, op)
    if not actual:
        if if_exists:
            return True  # …IfExists: an absent key makes the condition true
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated  # absent key: a positive operator is false, a negated one true

    def value_matches(a: str) -> bool | None:
        results = [_match_one(positive, e, a) for e in expected]
        if True in results:
            hit: bool | None = True
        elif None in results:
            hit = None
        else:
            hit = False
        if hit is None:
            return None
        return not hit if negated else hit

    per_value = [value_matches(str(a)) for a in actual]
    if qualifier == "ForAllValues":
        return False if False in per_value else (None if None in per_value else True)
    if qualifier == "ForAnyValue" or len(per_value) == 1:
        return True if True in per_value else (None if None in per_value else False)
    return None  # a single-valued operator on several values: not modelled


def evaluate_condition(condition: Mapping[str, Any], context: Mapping[str, Sequence[str]],
                       version: str | None = CURRENT_VERSION) -> bool | None:
    """True/False when the condition can be decided from `context` (keys lower-case; a key mapped to () is known
    to be absent from the request); None (unknown) otherwise. Every operator and every key must hold (AND), any
    value of a key may match (OR); a decided False wins over an undecided part."""
    results: list[bool | None] = []
    for raw_op, block in condition.items():
        if not isinstance(block, Mapping):
            return None
        qualifier, _, op = str(raw_op).rpartition(":")
        if qualifier not in ("", "ForAllValues", "ForAnyValue"):
            results.append(None)
            continue
        if_exists = op.endswith("IfExists") and op != "IfExists"
        base = op[: -len("IfExists")] if if_exists else op
        for key, expected in block.items():
            actual = context.get(str(key).lower())
            values: list[str] = []
            resolved = True
            for e in as_list(expected):
                text, ok = _substitute(str(e), context, version)
                resolved = resolved and ok
                values.append(text)
            if not resolved:
                results.append(None)  # a policy variable the request context does not resolve
                continue
            results.append(_key_result(base, qualifier, if_exists, values, actual))
    if False in results:
        return False
    return None if None in results else True


# -- documents and requests --------------------------------------------------------------------------------
def parse_document(value: Any) -> dict[str, Any]:
    """A policy document as a dict: botocore decodes IAM documents already; strings may be URL-encoded JSON."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = json.loads(urllib.parse.unquote(text))
    if not isinstance(parsed, dict):
        raise ValueError("a policy document must be a JSON object")
    return parsed


def document_version(document: Mapping[str, Any]) -> str | None:
    """The policy language version; None (no Version element) means 2008-10-17."""
    version = document.get("Version")
    return str(version) if version else None


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return [dict(s) for s in as_list(found) if isinstance(s, Mapping)]


@dataclass(frozen=True)
class Document:
    """One policy document and where it came from (e.g. 'managed policy arn:...', 'inline policy x')."""

    source: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """One question: may the principal do `action` on `resource`, given what is known of the request context."""

    action: str
    resource: str = "*"
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def context_map(self) -> dict[str, tuple[str, ...]]:
        return {k.lower(): v for k, v in self.context}

    def __str__(self) -> str:
        text = self.action if self.resource == "*" else f"{self.action} on {self.resource}"
        if self.context:
            text += " (" + ", ".join(f"{k}={'|'.join(v)}" for k, v in self.context) + ")"
        return text


@dataclass(frozen=True)
class Decision:
    """The answer to one request, the method that answered, and the statement (or reason) that decided."""

    request: Request
    verdict: Verdict
    method: str
    statement: str | None = None
    reason: str = ""

    def describe(self) -> str:
        why = self.statement or self.reason
        if self.verdict == "unknown" and self.statement and self.reason:
            why = f"{self.statement}: {self.reason}"
        return f"{self.request}: {self.verdict}" + (f" ({why})" if why else "")


# Request-context keys whose value is known for the request this tool models (everything else is unknown).
REQUESTED_REGION = "aws:RequestedRegion"
PRINCIPAL_ACCOUNT = "aws:PrincipalAccount"
SOURCE_ACCOUNT = "aws:SourceAccount"
SOURCE_ARN = "aws:SourceArn"
PASSED_TO_SERVICE = "iam:PassedToService"


def arn_account(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[4] or None if len(parts) == 6 and parts[0] == "arn" else None


def with_known_context(req: Request, *, region: str | None = None, principal_account: str | None = None,
                       source_account: str | None = None, source_arn: str | None = None) -> Request:
    """The request with the context keys whose value is known: aws:RequestedRegion (the resource ARN's region,
    else `region`, where the call is made), aws:PrincipalAccount, aws:SourceAccount, aws:SourceArn (which may be
    open_ended()). Keys the request already names keep their value."""
    have = {k.lower() for k, _ in req.context}
    extra: list[tuple[str, tuple[str, ...]]] = []
    if region and REQUESTED_REGION.lower() not in have:
        parts = req.resource.split(":", 5)
        where = parts[3] if len(parts) == 6 and parts[0] == "arn" and parts[3] and "*" not in parts[3] else region
        extra.append((REQUESTED_REGION, (where,)))
    if principal_account and PRINCIPAL_ACCOUNT.lower() not in have:
        extra.append((PRINCIPAL_ACCOUNT, (principal_account,)))
    if source_account and SOURCE_ACCOUNT.lower() not in have:
        extra.append((SOURCE_ACCOUNT, (source_account,)))
    if source_arn and SOURCE_ARN.lower() not in have:
        extra.append((SOURCE_ARN, (source_arn,)))
    return Request(req.action, req.resource, req.context + tuple(extra)) if extra else req


def _statement_name(stmt: Mapping[str, Any], index: int, source: str) -> str:
    sid = stmt.get("Sid")
    label = f"statement {sid!r}" if sid else f"statement #{index + 1}"
    return f"{stmt.get('Effect', '?')} {label} of {source}"


def _principal_matches(stmt: Mapping[str, Any], principals: Sequence[str]) -> bool | None:
    """For resource and trust policies: does Principal name one of `principals` (ARNs, account ids, services)?"""
    if "NotPrincipal" in stmt:
        return None
    principal = stmt.get("Principal")
    if principal is None:
        return True
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return None
    for values in principal.values():
        for v in as_list(values):
            if v == "*" or v in principals:
                return True
    return False


def statement_applies(stmt: Mapping[str, Any], req: Request, principals: Sequence[str] | None,
                      version: str | None = CURRENT_VERSION) -> bool | None:
    """Does a statement cover this request? None: it might (condition, policy variable, NotPrincipal).
    `version` is the document's Version: policy variables exist only under 2012-10-17."""
    maybe = False
    if "NotAction" in stmt:
        if any(match_action(str(p), req.action) for p in as_list(stmt["NotAction"])):
            return False
    elif not any(match_action(str(p), req.action) for p in as_list(stmt.get("Action"))):
        return False
    context = req.context_map
    for key, negate in (("Resource", False), ("NotResource", True)):
        if key not in stmt:
            continue
        results = [match_resource(str(p), req.resource, version=version, context=context)
                   for p in as_list(stmt[key])]
        hit = True in results
        if negate:
            if hit:
                return False
            maybe = maybe or None in results
        elif not hit:
            if None not in results:
                return False
            maybe = True
    if principals is not None:
        who = _principal_matches(stmt, principals)
        if who is False:
            return False
        maybe = maybe or who is None
    if "Condition" in stmt:
        if not isinstance(stmt["Condition"], Mapping):
            return None
        result = evaluate_condition(stmt["Condition"], context, version)
        if result is False:
            return False
        maybe = maybe or result is None
    return None if maybe else True


def evaluate(documents: Iterable[Document], req: Request, *, principals: Sequence[str] | None = None,
             method: str = LOCAL) -> Decision:
    """IAM's rule for one set of policies: an explicit Deny wins, then an Allow, else the implicit deny.
    A statement that might apply (condition, policy variable) makes the answer unknown where it could change it."""
    allow: str | None = None
    maybe_allow: str | None = None
    maybe_deny: str | None = None
    for doc in documents:
        version = document_version(doc.document)
        for i, stmt in enumerate(statements(doc.document)):
            applies = statement_applies(stmt, req, principals, version)
            if applies is False:
                continue
            effect = str(stmt.get("Effect", "")).lower()
            if effect not in ("allow", "deny"):
                continue  # not a valid statement: it grants nothing
            name = _statement_name(stmt, i, doc.source)
            deny = effect == "deny"
            if deny and applies:
                return Decision(req, "denied", method, name, "explicit deny")
            if not applies and isinstance(stmt.get("Condition"), Mapping):
                keys = undecided_keys(stmt["Condition"], req.context_map, version)
                name += f" (undecided: {', '.join(keys)})" if keys else ""
            if deny:
                maybe_deny = maybe_deny or name
            elif applies:
                allow = allow or name
            else:
                maybe_allow = maybe_allow or name
    if allow and maybe_deny:
        return Decision(req, "unknown", method, maybe_deny, "a Deny with a condition or variable may apply")
    if allow:
        return Decision(req, "allowed", method, allow)
    if maybe_allow:
        return Decision(req, "unknown", method, maybe_allow, "only an Allow with a condition or variable applies")
    return Decision(req, "denied", method, None, "no statement allows it (implicit deny)")


def evaluate_with_boundary(identity: Sequence[Document], boundary: Sequence[Document] | None,
                           req: Request, method: str = LOCAL) -> Decision:
    """Identity policies and, when the principal has one, its permissions boundary: both must allow."""
    first = evaluate(identity, req, method=method)
    if boundary is None or (first.verdict == "denied" and first.statement):
        return first
    second = evaluate(boundary, req, method=method)
    if second.verdict == "denied":
        reason = "explicit deny" if second.statement else "the permissions boundary does not allow it"
        return Decision(req, "denied", method, second.statement, reason)
    if first.verdict == "denied":
        return first
    if second.verdict == "unknown":
        return Decision(req, "unknown", method, second.statement, f"permissions boundary: {second.reason}")
    return first


# -- trust policies ----------------------------------------------------------------------------------------------
# The confused-deputy keys a service sends when it assumes a role for a resource (IAM User Guide, "The confused
# deputy problem"): aws:SourceAccount is the account of the resource it acts for (the role's own account here);
# aws:SourceArn is that resource. Batch assumes its service role for a compute environment; ECS assumes the
# execution and job roles for a task of the account's clusters (its ARN is known up to arn:P:ecs:REGION:ACCOUNT:).
# Other services' aws:SourceArn is not modelled: a condition on it stays undecided.
def source_arns(service: str, partition: str, region: str | None, account: str | None,
                compute_environments: Sequence[str] = ()) -> list[str]:
    """The aws:SourceArn values `service` sends when it assumes a role for the job (open_ended() where only the
    beginning is known); [] when the value is not modelled for the service."""
    if not region or not account:
        return []
    if service == "batch.amazonaws.com":
        return list(compute_environments) or [
            open_ended(f"arn:{partition}:batch:{region}:{account}:compute-environment/")]
    if service == "ecs-tasks.amazonaws.com":
        return [open_ended(f"arn:{partition}:ecs:{region}:{account}:")]
    return []


def undecided_keys(condition: Mapping[str, Any], context: Mapping[str, Sequence[str]],
                   version: str | None = CURRENT_VERSION) -> list[str]:
    """The condition keys (operator and key) a condition cannot be decided on from `context`."""
    out: list[str] = []
    for op, block in condition.items():
        if not isinstance(block, Mapping):
            out.append(str(op))
            continue
        for key, expected in block.items():
            if evaluate_condition({op: {key: expected}}, context, version) is None:
                out.append(f"{op} {key}")
    return out


@dataclass(frozen=True)
class TrustDecision:
    verdict: Verdict
    message: str


def _trust_one(doc: Mapping[str, Any], name: str, service: str, req: Request) -> TrustDecision:
    version = document_version(doc)
    allow = maybe = None
    for i, stmt in enumerate(statements(doc)):
        applies = statement_applies(stmt, req, [service], version)
        if applies is False:
            continue
        label = f"statement {stmt.get('Sid')!r}" if stmt.get("Sid") else f"statement #{i + 1}"
        keys = undecided_keys(stmt["Condition"], req.context_map, version) \
            if isinstance(stmt.get("Condition"), Mapping) else []
        why = f" (condition {', '.join(keys)} not understood or not known for {service})" if keys else ""
        if str(stmt.get("Effect", "")).lower() == "deny":
            if applies:
                return TrustDecision("denied", f"the trust policy of {name} denies {service} sts:AssumeRole "
                                               f"({label})")
            maybe = maybe or f"a Deny {label} with a condition or NotPrincipal may apply{why}"
        elif applies:
            allow = allow or label
        else:
            maybe = maybe or f"the Allow {label} has a condition{why}"
    if maybe:
        return TrustDecision("unknown", f"cannot tell whether {name} trusts {service}: {maybe}")
    if allow:
        return TrustDecision("allowed", f"{name} trusts {service} ({allow})")
    services = sorted({str(s) for stmt in statements(doc) if isinstance(stmt.get("Principal"), Mapping)
                       for s in as_list(stmt["Principal"].get("Service"))})
    found = f"; it trusts {', '.join(services)}" if services else ""
    if req.context and _trust_one(doc, name, service, Request(req.action, req.resource)).verdict != "denied":
        return TrustDecision("denied", f"the trust policy of {name} lets {service} assume it only under a condition "
                                       f"the job does not meet ({_context_text(req)})")
    return TrustDecision("denied", f"the trust policy of {name} does not let {service} assume it{found}")


def _context_text(req: Request) -> str:
    return ", ".join(f"{k} is {' or '.join(_shown(v) for v in vs)}" for k, vs in req.context)


def _shown(value: str) -> str:
    return value[: -len(_OPEN_END)] + "..." if value.endswith(_OPEN_END) else value


def trust(role: Mapping[str, Any], service: str, *, source_arns: Sequence[str] = ()) -> TrustDecision:
    """May `service` (e.g. ec2.amazonaws.com) call sts:AssumeRole on this role (RoleName, Arn,
    AssumeRolePolicyDocument), per its trust policy? An Allow naming the service and no Deny: allowed. Conditions
    on aws:SourceAccount (the role's account) and, given `source_arns` (see source_arns()), aws:SourceArn are
    decided; a condition on anything else makes the answer unknown, naming the key. Each source ARN must pass."""
    name = str(role.get("RoleName", "?"))
    try:
        doc = parse_document(role.get("AssumeRolePolicyDocument") or {})
    except ValueError as exc:
        return TrustDecision("unknown", f"the trust policy of {name} cannot be read: {exc}")
    account = arn_account(str(role.get("Arn", "")))
    base = Request("sts:AssumeRole", str(role.get("Arn", "*")))
    arns: list[str | None] = list(source_arns) or [None]
    requests = [with_known_context(base, source_account=account, source_arn=a) for a in arns]
    results = [_trust_one(doc, name, service, req) for req in requests]
    for verdict in ("denied", "unknown"):
        for r in results:
            if r.verdict == verdict:
                return r
    return results[0]


# -- reference policies ("grants AWSBatchServiceRole's actions") ---------------------------------------------
EXACT_OPERATORS = ("StringEquals", "StringEqualsIgnoreCase", "ArnEquals")


@functools.lru_cache(maxsize=64)
def _operations(prefix: str) -> tuple[str, ...]:
    """API operation names of a service from botocore's bundled models (to expand e.g. ecs:Submit*)."""
    import botocore.session

    session = botocore.session.get_session()
    try:
        names = session.get_available_services()
        service = prefix if prefix in names else None
        if service is None:
            return ()
        return tuple(session.get_service_model(service).operation_names)
    except Exception:
        return ()


def expand_action(action: str) -> list[str]:
    """`svc:Prefix*` -> the service's matching operations (botocore's model), else the action unchanged."""
    if "*" not in action and "?" not in action:
        return [action]
    prefix, _, name = action.partition(":")
    if not name or prefix == "*":
        return [action]
    found = [f"{prefix}:{op}" for op in _operations(prefix.lower()) if match_action(name, op)]
    return found or [action]


def reference_requests(document: Mapping[str, Any]) -> list[Request]:
    """Every (action, resource) that a reference policy's Allow statements grant, as requests; an exact-valued
    condition (e.g. iam:PassedToService) becomes the request context, one request per value."""
    out: list[Request] = []
    seen: set[Request] = set()
    for stmt in statements(document):
        if str(stmt.get("Effect")).lower() != "allow" or "NotAction" in stmt:
            continue
        resources = [str(r) for r in as_list(stmt.get("Resource", "*"))] if "NotResource" not in stmt else ["*"]
        contexts: list[tuple[tuple[str, tuple[str, ...]], ...]] = [()]
        cond = stmt.get("Condition")
        if isinstance(cond, Mapping):
            keys: list[list[tuple[str, tuple[str, ...]]]] = []
            for op, block in cond.items():
                if op in EXACT_OPERATORS and isinstance(block, Mapping):
                    for key, values in block.items():
                        keys.append([(str(key), (str(v),)) for v in as_list(values)])
            contexts = [tuple(combo) for combo in itertools.product(*keys)] if keys else [()]
        for action in as_list(stmt.get("Action")):
            for concrete in expand_action(str(action)):
                for resource in resources:
                    for context in contexts:
                        req = Request(concrete, resource, context)
                        if req not in seen:
                            seen.add(req)
                            out.append(req)
    return out


SAMPLE = "pytest-mlbatch"


def concrete(resource: str, region: str | None, account: str | None) -> str:
    """A representative resource for a pattern from a reference policy (arn:aws:ecs:*:*:task/*_Batch_* ->
    arn:aws:ecs:REGION:ACCOUNT:task/pytest-mlbatch_Batch_pytest-mlbatch), so the simulator gets a real ARN and
    the local evaluation asks about a resource, not about a pattern. "*" stays "*"."""
    if resource == "*" or not resource.startswith("arn:"):
        return resource
    parts = resource.split(":", 5)
    if len(parts) != 6:
        return resource
    if parts[3] == "*":
        parts[3] = region or "us-east-1"
    if parts[4] == "*":
        parts[4] = account or "123456789012"
    return ":".join(p.replace("*", SAMPLE).replace("?", "x") for p in parts)


@dataclass(frozen=True)
class Summary:
    """Many decisions turned into one check outcome: 'passed' | 'failed' | 'unknown', and a message."""

    outcome: Literal["passed", "failed", "unknown"]
    message: str


def summarize(decisions: Sequence[Decision], what: str, limit: int = 6) -> Summary:
    """'what' names the principal and the purpose, e.g. 'role ecsInstanceRole for AmazonEC2...'."""
    methods = sorted({d.method for d in decisions})
    how = "; ".join(methods) if methods else LOCAL
    denied = [d for d in decisions if d.verdict == "denied"]
    unknown = [d for d in decisions if d.verdict == "unknown"]

    def listing(items: Sequence[Decision]) -> str:
        shown = "; ".join(d.describe() for d in items[:limit])
        return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")

    if denied:
        return Summary("failed", f"{what}: {len(denied)} of {len(decisions)} not allowed: {listing(denied)} "
                                 f"[answered by {how}]")
    if unknown:
        return Summary("unknown", f"{what}: cannot tell whether {len(unknown)} of {len(decisions)} are allowed: "
                                  f"{listing(unknown)} [answered by {how}]")
    return Summary("passed", f"{what}: all {len(decisions)} allowed [answered by {how}]")


def finding(decisions: Sequence[Decision], what: str, prefix: str = "") -> Finding:
    """Decisions as a check's finding: any denied -> failed; any unknown -> NotEvaluable (the outcome `error`,
    never a pass); else passed. `prefix` is put before a passing message."""
    summary = summarize(decisions, what)
    if summary.outcome == "failed":
        return failed(summary.message)
    if summary.outcome == "unknown":
        raise NotEvaluable(summary.message)
    return passed(prefix + summary.message)
