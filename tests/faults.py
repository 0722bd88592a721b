"""Fault injection for tests: a WSGI middleware around moto's server answering AWS errors per operation.

`FaultServer` serves moto's `DomainDispatcherApplication` (the same in-process backends as the session's moto
server, so `aws.reset()` and `aws.client(...)` arrange scenarios for both) behind `FaultInjector`, which can, per
operation (`"ec2:DescribeKeyPairs"`, fnmatch patterns such as `"iam:*"` allowed):

- `throttle`: answer throttling in the protocol's own wire format (EC2: 503 RequestLimitExceeded XML; IAM/STS
  query: 400 Throttling XML; JSON (ECR, ...): 400 ThrottlingException; REST-JSON (Batch): 429
  TooManyRequestsException; REST-XML (S3): 503 SlowDown),
- `fault`: a 5xx in that format (InternalError / InternalFailure / ServerException),
- `denied`: access denied in that format (UnauthorizedOperation / AccessDenied / AccessDeniedException),
- `slow`: wait `delay` seconds before answering (past the client's read timeout),
- `drop`: close the connection without an answer.

`times=None` makes a fault persistent; `times=n` injects it on the first n attempts of each distinct request
(retries of one request carry the same body, so `times=1` means "every call fails once, then its retry works",
whatever the concurrency). Every request is logged as (operation, user agent, injected kind).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

KINDS = ("throttle", "fault", "denied", "slow", "drop")

# (status, code) per protocol and kind, as the real services answer.
WIRE: dict[str, dict[str, tuple[int, str]]] = {
    "ec2": {"throttle": (503, "RequestLimitExceeded"), "fault": (500, "InternalError"),
            "denied": (403, "UnauthorizedOperation")},
    "query": {"throttle": (400, "Throttling"), "fault": (500, "ServiceFailure"), "denied": (403, "AccessDenied")},
    "json": {"throttle": (400, "ThrottlingException"), "fault": (500, "InternalFailure"),
             "denied": (400, "AccessDeniedException")},
    "rest-json": {"throttle": (429, "TooManyRequestsException"), "fault": (500, "ServerException"),
                  "denied": (403, "AccessDeniedException")},
    "rest-xml": {"throttle": (503, "SlowDown"), "fault": (500, "InternalError"), "denied": (403, "AccessDenied")},
}
MESSAGES = {"throttle": "Rate exceeded (injected)", "fault": "We encountered an internal error (injected)",
            "denied": "You are not authorized to perform this operation (injected)"}

# Services whose models we load to name operations (by signing name, as the Authorization header carries it).
SERVICES = ("ec2", "iam", "sts", "ecr", "batch", "service-quotas", "secretsmanager", "ssm", "logs", "ecs",
            "autoscaling", "s3", "elbv2", "kms", "ecr-public", "organizations")


@dataclass
class ServiceInfo:
    name: str
    signing_name: str
    protocol: str
    target_prefix: str | None
    routes: list[tuple[str, re.Pattern[str], str]] = field(default_factory=list)  # (method, path regex, op)


@cache
def _services() -> dict[str, ServiceInfo]:
    import botocore.session

    session = botocore.session.get_session()
    out: dict[str, ServiceInfo] = {}
    for name in SERVICES:
        try:
            model = session.get_service_model(name)
        except Exception:  # pragma: no cover - a botocore without this service
            continue
        info = ServiceInfo(name, model.signing_name, model.protocol, model.metadata.get("targetPrefix"))
        if model.protocol.startswith("rest"):
            for op_name in model.operation_names:
                http = model.operation_model(op_name).http
                uri = str(http.get("requestUri", "/")).split("?")[0]
                rx = re.escape(uri)
                rx = re.sub(r"\\\{[^}]*?\\\+\\\}", ".+", rx)  # {Key+}
                rx = re.sub(r"\\\{[^}]*\\\}", "[^/]+", rx)    # {Name}
                info.routes.append((str(http.get("method", "POST")), re.compile(f"^{rx}/?$"), op_name))
            # Literal paths first, then the most specific templates.
            info.routes.sort(key=lambda r: (r[1].pattern.count("[^/]+") + r[1].pattern.count(".+"),
                                            -len(r[1].pattern)))
        out.setdefault(info.signing_name, info)
    return out


def signing_name(environ: dict[str, Any]) -> str | None:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    m = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", auth)
    return m.group(1) if m else None


def identify(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
    """(signing name, operation name) of a request: Action field, X-Amz-Target header, or REST path."""
    service = signing_name(environ) or "?"
    info = _services().get(service)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, str(target).rsplit(".", 1)[-1]
    ctype = str(environ.get("CONTENT_TYPE", ""))
    if environ.get("REQUEST_METHOD") == "POST" and (ctype.startswith("application/x-www-form-urlencoded")
                                                      or (info is not None and info.protocol in ("ec2", "query"))):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return service, action[0]
    query_action = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
    if query_action:
        return service, query_action[0]
    if info is not None:
        path = str(environ.get("PATH_INFO", "/")) or "/"
        method = str(environ.get("REQUEST_METHOD", "GET"))
        for route_method, rx, op in info.routes:
            if route_method == method and rx.match(path):
                return service, op
    return service, "?"


def protocol_of(service: str) -> str:
    info = _services().get(service)
    return info.protocol if info is not None else "json"


def error_response(protocol: str, kind: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of an injected error in the protocol's own wire format."""
    status, code = WIRE[protocol][kind]
    message = MESSAGES[kind]
    rid = str(uuid.uuid4())
    reason = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
              503: "Service Unavailable"}[status]
    headers = [("x-amzn-RequestId", rid), ("x-amz-request-id", rid)]
    if protocol == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
        headers.append(("Content-Type", "text/xml;charset=UTF-8"))
    elif protocol == "query":
        body = (f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{rid}</RequestId>"
                "</ErrorResponse>")
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "json":
        body = json.dumps({"__type": code, "message": message})
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    elif protocol == "rest-json":
        body = json.dumps({"message": message})
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", f"{code}:")]
    else:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{rid}</RequestId></Error>"
        headers.append(("Content-Type", "application/xml"))
    data = body.encode()
    headers.append(("Content-Length", str(len(data))))
    return f"{status} {reason}", headers, data


@dataclass
class Fault:
    """Inject `kind` on operations matching `operation` (fnmatch), the first `times` attempts of each request
    (None: always). `delay` is the wait of a `slow` fault."""

    kind: str
    operation: str = "*"
    times: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def matches(self, operation: str) -> bool:
        return fnmatch.fnmatchcase(operation, self.operation)


@dataclass(frozen=True)
class Seen:
    operation: str
    user_agent: str
    injected: str | None

    @property
    def from_plugin(self) -> bool:
        return "pytest-mlbatch" in self.user_agent


class FaultInjector:
    """The WSGI middleware. Thread-safe; `set()` replaces the faults and clears the attempt counters."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def set(self, *faults: Fault) -> None:
        with self._lock:
            self.faults = list(faults)
            self._attempts.clear()

    def clear(self) -> None:
        self.set()
        with self._lock:
            self.seen.clear()

    def operations(self, *, plugin_only: bool = True) -> list[str]:
        with self._lock:
            return [s.operation for s in self.seen if s.from_plugin or not plugin_only]

    def _choose(self, operation: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(operation):
                    attempt_key = f"{fault.kind}|{operation}|{key}"
                    self._attempts[attempt_key] += 1
                    if fault.times is None or self._attempts[attempt_key] <= fault.times:
                        return fault
                    return None
            return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, op = identify(environ, body)
        operation = f"{service}:{op}"
        key = hashlib.sha256(b"|".join([str(environ.get("REQUEST_METHOD", "")).encode(),
                                        str(environ.get("PATH_INFO", "")).encode(),
                                        str(environ.get("QUERY_STRING", "")).encode(), body])).hexdigest()
        fault = self._choose(operation, key) if service != "?" else None
        with self._lock:
            self.seen.append(Seen(operation, str(environ.get("HTTP_USER_AGENT", "")),
                                  fault.kind if fault else None))
        if fault is None:
            return self.app(environ, start_response)
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return self.app(environ, start_response)
        if fault.kind == "drop":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        status, headers, data = error_response(protocol_of(service), fault.kind)
        start_response(status, headers)
        return [data]


class FaultServer:
    """moto's in-process backends behind a FaultInjector, served by werkzeug on a loopback port in a thread."""

    def __init__(self) -> None:
        from pytest_mlbatch.motoserver import app

        self.injector = FaultInjector(app())
        self.endpoint = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        self._server = make_server("127.0.0.1", 0, self.injector, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


OUTSIDE = "(outside a check)"


@dataclass
class CallLog:
    """Which AWS operations each (check, resource) read through the inventory, cache hits included."""

    needs: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, set[str]] = field(default_factory=dict)
    local: threading.local = field(default_factory=threading.local)

    def current(self) -> str:
        return str(getattr(self.local, "key", OUTSIDE))

    def note(self, op: str, ok: bool) -> None:
        """A read by the current check; a read made while computing a memoized value is also remembered for
        that value."""
        (self.needs if ok else self.failed).setdefault(self.current(), set()).add(op)
        if ok:
            for collector in getattr(self.local, "collectors", []):
                collector.add(op)

    def reset(self) -> None:
        self.needs.clear()
        self.failed.clear()

    def ops(self) -> set[str]:
        return set().union(*self.needs.values()) if self.needs else set()


def result_key(check_id: str, target: str | None, resource: str) -> str:
    return f"{check_id}[{target}/{resource}]"


def seed_catalog_scenario(aws: Any, state_dir: Path) -> dict[str, Any]:
    """The sandbox's sample ML batch environment (with its real problems) on the test's moto server: a scenario
    in which as many checks of the catalog as possible have data to read."""
    from pytest_mlbatch import sandbox

    raw = sandbox.seed(aws.endpoint, state_dir)
    return raw


# API operations whose IAM action has another name.
ACTION_OF = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadBucket": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}


def iam_actions(kind: str) -> set[str]:
    """The actions of docs/iam-policy-<kind>.json (readonly or fix)."""
    import json

    doc = json.loads((Path(__file__).resolve().parent.parent / "docs" / f"iam-policy-{kind}.json").read_text())
    return {a for st in doc["Statement"] for a in st["Action"]}


def uncovered(ops: set[str] | list[str], kind: str) -> list[str]:
    """Operations the documented policy does not grant."""
    granted = iam_actions(kind) | (iam_actions("readonly") if kind == "fix" else set())
    return sorted({op for op in ops if ACTION_OF.get(op, op) not in granted})
