"""The vocabulary shared by checks, the engine and the plugin: severities, outcomes, findings, resources."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# C0 and C1 controls (newline and ESC included), DEL, line/paragraph separators, bidi overrides and isolates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def printable(text: object) -> str:
    """Text that cannot start a line, move the cursor or recolour a terminal: every control character is shown
    escaped (\\n, \\x1b, \\u202e). Applied wherever text reaches a terminal, a CI log, Markdown or JUnit, so
    a name or message from AWS or a config can never forge an output line or a GitHub annotation."""
    return _UNPRINTABLE.sub(lambda m: _NAMED.get(m.group(), m.group().encode("unicode_escape").decode()), str(text))


# Credentials as botocore, urllib3 and registries print them: headers (a repr, a canonical request, a query string),
# XML and JSON bodies (STS, ECR, Secrets Manager).
_SECRETS = [
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*(?:(?-i:b)?['\"])?)[^'\"\s&,;}]+"),
    re.compile(r"(?i)(x-amz-signature['\"]?\s*[:=]\s*(?:(?-i:b)?['\"])?)[^'\"\s&,;}]+"),
    re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*(?:(?-i:b)?['\"])?)[^'\"\r\n]+"),
    re.compile(r"(?i)(<(?:SessionToken|SecretAccessKey|Password)>)[^<]*"),
    re.compile(r"(\b(?:Basic|Bearer) )[A-Za-z0-9+/._~-]{12,}=*"),  # an HTTP credential quoted anywhere
    re.compile(r"(?i)(['\"](?:sessionToken|secretAccessKey|authorizationToken|password|token|access_token|"
               r"SecretString)['\"]\s*:\s*(?-i:b)?['\"])[^'\"]*"),
]


def redact(text: str) -> str:
    """`text` with every credential it holds replaced by <redacted> (session tokens, Authorization headers,
    signatures, registry tokens and passwords): applied to every log record while the plugin is active and to
    every message a result carries, so no log, report or terminal line holds one."""
    for rx in _SECRETS:
        text = rx.sub(r"\1<redacted>", text)
    return text


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Higher is worse: critical=4 ... low=1."""
        return {"critical": 4, "high": 3, "medium": 2, "low": 1}[self.value]


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    FIXED = "fixed"


AREAS: dict[str, str] = {
    "JOB": "submitted jobs",
    "ENV": "account and local tooling",
    "IMG": "container image",
    "KEY": "EC2 key pair",
    "SG": "security groups",
    "NET": "VPC and subnets",
    "IAM": "roles and policies",
    "BAT": "AWS Batch",
}


@dataclass(frozen=True)
class Finding:
    """What a check concluded about one resource."""

    outcome: Outcome
    message: str
    # Worse than the check's default severity for this finding (a named resource that does not exist: the job
    # cannot even be submitted). The config's checks.severity still wins.
    severity: Severity | None = None
    # What to do about this finding, when the check's remediation does not fit it (an `error`: how to get it
    # evaluated, not how to fix a failure nobody saw).
    remediation: str | None = None


def passed(message: str = "ok") -> Finding:
    return Finding(Outcome.PASSED, message)


def failed(message: str) -> Finding:
    return Finding(Outcome.FAILED, message)


def missing(message: str) -> Finding:
    """A failure because a resource the config names (or the job needs) does not exist: always critical."""
    return Finding(Outcome.FAILED, message, severity=Severity.CRITICAL)


def skipped(reason: str) -> Finding:
    return Finding(Outcome.SKIPPED, reason)


def error(reason: str) -> Finding:
    return Finding(Outcome.ERROR, reason)


class NotEvaluable(Exception):
    """Raised by a check (or the layers under it) when it cannot decide: the outcome is `error`, never `passed`."""


class NotApplicable(Exception):
    """Raised by a check when it does not apply to this resource: the outcome is `skipped` with the reason."""


@dataclass(frozen=True)
class Resource:
    """One thing a check runs on: its kind, a stable id for node ids and reports, and the data behind it."""

    kind: str
    id: str
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)
