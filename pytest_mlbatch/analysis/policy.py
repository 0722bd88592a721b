"""IAM policy evaluation as pure functions: match actions and resources, conditions, Deny precedence and
boundaries, giving allowed / denied / unknown with the statement that decided, and a summary of many decisions."""

from __future__ import annotations

import functools
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
@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def match_action(pattern: str, action: str) -> bool:
    """IAM action matching: `service:Action` with `*`/`?` wildcards, case-insensitive."""
    return bool(_glob(pattern, True).match(action))


_VAR = re.compile(r"\$\{([^}]*)\}")
_LITERAL_VARS = {"*": r"\*", "?": r"\?", "$": r"\$"}


def _translate(part: str, variables: Sequence[str]) -> str:
    out = []
    for ch in part:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif 0xE000 <= ord(ch) < 0xE000 + len(variables):
            inner = variables[ord(ch) - 0xE000]
            out.append(_LITERAL_VARS.get(inner, ".*"))
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


def match_resource(pattern: str, resource: str) -> bool | None:
    """IAM resource matching: case-sensitive; each of an ARN's first five colon-separated parts is matched
    separately, the rest as one. None: the pattern holds a policy variable (e.g. ${aws:username}) and could match."""
    if pattern == "*":
        return True
    variables: list[str] = []

    def hide(m: re.Match[str]) -> str:
        variables.append(m.group(1))
        return chr(0xE000 + len(variables) - 1)

    pat = _VAR.sub(hide, pattern)
    p_parts, r_parts = pat.split(":", 5), resource.split(":", 5)
    if len(r_parts) == 6 and len(p_parts) != 6 and pat.startswith("arn:"):
        return False  # a malformed ARN pattern (fewer than six parts) matches no ARN: never a false allow
    whole = len(p_parts) != 6 or len(r_parts) != 6
    pairs = [(pat, resource)] if whole else list(zip(p_parts, r_parts, strict=True))
    for p, r in pairs:
        if not re.match(_translate(p, variables), r, re.DOTALL):
            return False
    return None if any(v not in _LITERAL_VARS for v in variables) else True


# -- conditions --------------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _operator(op: str, expected: list[str], actual: list[str]) -> bool | None:
    def any_of(test: Any) -> bool:
        return any(test(e, a) for e in expected for a in actual)

    if op == "StringEquals":
        return any_of(lambda e, a: e == a)
    if op == "StringNotEquals":
        return not any_of(lambda e, a: e == a)
    if op == "StringEqualsIgnoreCase":
        return any_of(lambda e, a: e.lower() == a.lower())
    if op == "StringNotEqualsIgnoreCase":
        return not any_of(lambda e, a: e.lower() == a.lower())
    if op in ("StringLike", "ArnLike", "ArnEquals"):
        return any_of(lambda e, a: bool(_glob(e, False).match(a)))
    if op in ("StringNotLike", "ArnNotLike", "ArnNotEquals"):
        return not any_of(lambda e, a: bool(_glob(e, False).match(a)))
    if op == "Bool":
        return any_of(lambda e, a: e.lower() == a.lower())
    return None  # an operator this evaluator does not know: the answer is unknown


def evaluate_condition(condition: Mapping[str, Any], context: Mapping[str, Sequence[str]]) -> bool | None:
    """True/False when every key of the condition is in `context` (keys lower-case) and every operator is
    known; None (unknown) otherwise. Set operators (ForAnyValue:/ForAllValues:) are unknown."""
    for op, block in condition.items():
        if not isinstance(block, Mapping) or ":" in op:
            return None
        if_exists = op.endswith("IfExists")
        base = op[: -len("IfExists")] if if_exists else op
        for key, expected in block.items():
            actual = context.get(str(key).lower())
            if actual is None:
                if if_exists:
                    continue
                return None
            result = _operator(base, [str(e) for e in as_list(expected)], [str(a) for a in actual])
            if result is None:
                return None
            if not result:
                return False
    return True


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


def statement_applies(stmt: Mapping[str, Any], req: Request, principals: Sequence[str] | None) -> bool | None:
    """Does a statement cover this request? None: it might (condition, policy variable, NotPrincipal)."""
    maybe = False
    if "NotAction" in stmt:
        if any(match_action(str(p), req.action) for p in as_list(stmt["NotAction"])):
            return False
    elif not any(match_action(str(p), req.action) for p in as_list(stmt.get("Action"))):
        return False
    for key, negate in (("Resource", False), ("NotResource", True)):
        if key not in stmt:
            continue
        results = [match_resource(str(p), req.resource) for p in as_list(stmt[key])]
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
    if "Condition" in stmt and isinstance(stmt["Condition"], Mapping):
        result = evaluate_condition(stmt["Condition"], req.context_map)
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
        for i, stmt in enumerate(statements(doc.document)):
            applies = statement_applies(stmt, req, principals)
            if applies is False:
                continue
            effect = str(stmt.get("Effect", "")).lower()
            if effect not in ("allow", "deny"):
                continue  # not a valid statement: it grants nothing
            name = _statement_name(stmt, i, doc.source)
            deny = effect == "deny"
            if deny and applies:
                return Decision(req, "denied", method, name, "explicit deny")
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
