"""moto's server behind one WSGI middleware that logs every AWS call, adds latency and injects per-operation faults.

Used by the reliability, scale and targets tests and by bench/. `MotoMiddleware` serves
`pytest_mlbatch.sandbox.motoserver.app()` (moto's own app: the same in-process backends as every moto server of this
process, so `aws.reset()` and `aws.client(...)` arrange scenarios for it too) with werkzeug in a thread, and in front:

- every AWS request is logged as a `Call`: service (the signing name, as IAM actions and the plugin's messages name
  it) and operation from botocore's models (X-Amz-Target, the query's Action, or the REST path), region, parameters,
  access key, user agent, start/end time, status and the fault injected;
- `latency` seconds are added to every AWS call before moto answers;
- `Fault`s answer chosen operations (fnmatch on "ec2:DescribeKeyPairs", "iam:*") with an error in the protocol's
  own wire format (`WIRE`: throttle, fault, unavailable, denied), delay them (`slow`) or drop the connection
  (`drop`), on every attempt or on the first n attempts of each distinct request.

    with MotoMiddleware(latency=0.05) as srv:
        srv.set(Fault("denied", "sts:AssumeRole"))
        ... AWS_ENDPOINT_URL=srv.endpoint ...
        srv.counts()          # Counter({"ec2:DescribeSubnets": 1, ...})
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs

from pytest_mlbatch.sandbox.motoserver import MotoServer, app

# protocol -> kind -> (HTTP status, error code), as the real services answer
WIRE: dict[str, dict[str, tuple[int, str]]] = {
    "ec2": {"throttle": (503, "RequestLimitExceeded"), "fault": (500, "InternalError"),
            "unavailable": (503, "Unavailable"), "denied": (403, "UnauthorizedOperation")},
    "query": {"throttle": (400, "Throttling"), "fault": (500, "ServiceFailure"),
              "unavailable": (503, "ServiceUnavailable"), "denied": (403, "AccessDenied")},
    "json": {"throttle": (400, "ThrottlingException"), "fault": (500, "InternalFailure"),
             "unavailable": (503, "ServiceUnavailableException"), "denied": (400, "AccessDeniedException")},
    "rest-json": {"throttle": (429, "TooManyRequestsException"), "fault": (500, "ServerException"),
                  "unavailable": (503, "ServiceUnavailableException"), "denied": (403, "AccessDeniedException")},
    "rest-xml": {"throttle": (503, "SlowDown"), "fault": (500, "InternalError"),
                 "unavailable": (503, "ServiceUnavailable"), "denied": (403, "AccessDenied")},
}
ERROR_KINDS = ("throttle", "fault", "unavailable", "denied")
KINDS = (*ERROR_KINDS, "slow", "drop")
DEFAULT_MESSAGE = "injected by tests/wsgi_backend.py"
REASONS = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}

# Services whose models name operations (found by signing name, as the Authorization header carries it).
SERVICES = ("ec2", "iam", "sts", "ecr", "batch", "service-quotas", "secretsmanager", "ssm", "logs", "ecs",
            "autoscaling", "s3", "elbv2", "kms", "ecr-public", "organizations")

_CREDENTIAL = re.compile(r"Credential=([^/]*)/\d{8}/([^/]+)/([^/]+)/aws4_request")


# -- which AWS operation a request is --------------------------------------------------------------------------------
@dataclass
class _Service:
    protocol: str
    routes: list[tuple[str, re.Pattern[str], str]] = field(default_factory=list)  # REST: (method, path regex, op)

    def route(self, method: str, path: str) -> str:
        return next((op for m, rx, op in self.routes if m == method and rx.match(path)), "?")


@cache
def _services() -> dict[str, _Service]:
    """botocore's models of SERVICES by signing name, loaded once per process."""
    import botocore.session

    session = botocore.session.get_session()
    out: dict[str, _Service] = {}
    for name in SERVICES:
        try:
            model = session.get_service_model(name)
        except Exception:  # pragma: no cover - a botocore without this service
            continue
        info = _Service(model.protocol)
        if model.protocol.startswith("rest"):
            for op_name in model.operation_names:
                http = model.operation_model(op_name).http
                rx = re.escape(str(http.get("requestUri", "/")).split("?")[0])
                rx = re.sub(r"\\\{[^}]*?\\\+\\\}", ".+", rx)  # {Key+}
                rx = re.sub(r"\\\{[^}]*\\\}", "[^/]+", rx)    # {Name}
                info.routes.append((str(http.get("method", "POST")), re.compile(f"^{rx}/?$"), op_name))
            # literal paths first, then the most specific templates
            info.routes.sort(key=lambda r: (r[1].pattern.count("[^/]+") + r[1].pattern.count(".+"),
                                            -len(r[1].pattern)))
        out.setdefault(model.signing_name, info)
    return out


def protocol_of(service: str) -> str:
    info = _services().get(service)
    return info.protocol if info is not None and info.protocol in WIRE else "json"


@dataclass
class Call:
    """One AWS request seen by the middleware."""

    service: str            # the signing name (ec2, iam, sts, ecr, batch, servicequotas, ...); "?" if unsigned
    operation: str          # botocore's operation name (DescribeSubnets); "?" if not found
    region: str
    params: dict[str, str]  # query-protocol form fields or the JSON body's top-level values (as strings)
    access_key: str
    user_agent: str
    start: float
    end: float = 0.0
    status: int = 0         # HTTP status answered; -1: connection dropped
    injected: str | None = None  # the kind of fault injected, if any
    attempt: int = 1        # botocore's attempt number of this request (amz-sdk-request: attempt=N; max=M)
    invocation: str = ""    # botocore's amz-sdk-invocation-id: one per API call, shared by its retries

    @property
    def retry(self) -> bool:
        """A retry by the SDK's retry policy (after a timeout, a throttle, a 5xx), not a new read of the caller."""
        return self.attempt > 1

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    @property
    def from_plugin(self) -> bool:
        return "pytest-mlbatch" in self.user_agent


def _json_params(body: bytes) -> dict[str, str]:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}


def identify(environ: dict[str, Any], body: bytes) -> Call:
    """The request as a Call: signing name and region from the Authorization header, the operation from the
    X-Amz-Target header, the REST path, or the query's Action field (form body or query string)."""
    found = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    access_key, region, service = found.groups() if found else ("", "?", "?")
    info = _services().get(service)
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        operation, params = target.rsplit(".", 1)[-1], _json_params(body)
    elif info is not None and info.protocol.startswith("rest"):
        operation = info.route(str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("PATH_INFO", "")) or "/")
        params = _json_params(body) if body.startswith(b"{") else {}
    else:
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        params = {k: v[0] for k, v in (form or parse_qs(str(environ.get("QUERY_STRING", "")))).items()}
        operation = params.get("Action", "?")
    attempt = _ATTEMPT.search(str(environ.get("HTTP_AMZ_SDK_REQUEST", "")))
    return Call(service, operation, region, params, access_key, str(environ.get("HTTP_USER_AGENT", "")),
                time.perf_counter(), attempt=int(attempt.group(1)) if attempt else 1,
                invocation=str(environ.get("HTTP_AMZ_SDK_INVOCATION_ID", "")))


_ATTEMPT = re.compile(r"attempt=(\d+)")


# -- injected answers ----------------------------------------------------------------------------------------------
def error_response(protocol: str, kind: str,
                   message: str = DEFAULT_MESSAGE) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of an injected error in the protocol's own wire format."""
    status, code = WIRE[protocol][kind]
    rid = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", rid), ("x-amz-request-id", rid)]
    if protocol == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
        headers.append(("Content-Type", "text/xml;charset=UTF-8"))
    elif protocol == "query":
        sender = "Receiver" if status >= 500 else "Sender"
        body = (f"<ErrorResponse><Error><Type>{sender}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{rid}</RequestId></ErrorResponse>")
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
    return f"{status} {REASONS[status]}", headers, data


@dataclass
class Fault:
    """Inject `kind` (see KINDS) on calls whose "service:Operation" matches `operation` (fnmatch).

    `times=None`: on every attempt. `times=n`: on the first n attempts of each distinct request (retries of one
    request carry the same method, path and body, so `times=1` means "every call fails once, then its retry
    works", whatever the concurrency). `delay`: the wait of a `slow` fault; `message`: the error's message."""

    kind: str
    operation: str = "*"
    times: int | None = None
    delay: float = 0.0
    message: str = DEFAULT_MESSAGE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: one of {KINDS}")

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.operation)


def _request_key(call: Call, environ: dict[str, Any], body: bytes) -> str:
    """What the retries of one request have in common (not the signature, which carries the time): operation,
    region, credentials, method, path, query and body (two JSON operations may well send the same body)."""
    parts = [call.name, call.region, call.access_key,
             *(str(environ.get(k, "")) for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING"))]
    return hashlib.sha256(b"|".join([*(p.encode() for p in parts), body])).hexdigest()


# -- the middleware and its server ------------------------------------------------------------------------------------
class MotoMiddleware:
    """The WSGI middleware around moto's app, served by werkzeug on a free loopback port in a daemon thread
    (bound at construction: `endpoint` is known before `start()`). Thread-safe."""

    def __init__(self, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app()
        self.latency = latency
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._attempts: Counter[tuple[int, str]] = Counter()
        self._lock = threading.Lock()
        self._server = MotoServer(wsgi_app=self, host=host, port=port)
        self.endpoint = self._server.endpoint

    # -- serving ---------------------------------------------------------------------------------------------------
    def start(self) -> MotoMiddleware:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MotoMiddleware:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests and benchmarks ----------------------------------------------------------------------------------
    def set(self, *faults: Fault) -> None:
        """Replace the faults (none: answer everything) and forget how often each request was faulted."""
        with self._lock:
            self.faults = list(faults)
            self._attempts.clear()

    def clear(self) -> None:
        """Forget faults and logged calls (not moto's state: reset() does that; not the latency)."""
        self.set()
        with self._lock:
            self.calls.clear()
            self.max_in_flight = 0

    def reset(self) -> None:
        """Reset moto's state (shared by every moto server of this process), then clear()."""
        from backends import reset_moto

        reset_moto()
        self.clear()

    def counts(self, pattern: str = "*") -> Counter[str]:
        """Calls per "service:Operation" matching `pattern`."""
        with self._lock:
            return Counter(c.name for c in self.calls if fnmatch.fnmatchcase(c.name, pattern))

    def operations(self, *, plugin_only: bool = True) -> list[str]:
        """The "service:Operation" of each call in order (by default only the plugin's, not the test's own)."""
        with self._lock:
            return [c.name for c in self.calls if c.from_plugin or not plugin_only]

    # -- the WSGI app ----------------------------------------------------------------------------------------------
    def _choose(self, call: Call, key: str) -> Fault | None:
        if call.service == "?":  # not signed: not an AWS call
            return None
        for i, fault in enumerate(self.faults):
            if fault.matches(call.name):
                self._attempts[(i, key)] += 1
                if fault.times is None or self._attempts[(i, key)] <= fault.times:
                    return fault
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        call = identify(environ, body)
        with self._lock:
            fault = self._choose(call, _request_key(call, environ, body))
            call.injected = fault.kind if fault is not None else None
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.latency + (fault.delay if fault is not None and fault.kind == "slow" else 0.0)
            if delay:
                time.sleep(delay)
            if fault is None or fault.kind == "slow":

                def recording_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                    call.status = int(status.split()[0])
                    return start_response(status, headers, *args)

                return self.app(environ, recording_start)  # type: ignore[no-any-return]
            if fault.kind == "drop":
                sock = environ.get("werkzeug.socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                call.status = -1
                start_response("500 Internal Server Error", [("Content-Length", "0")])
                return [b""]
            status, headers, data = error_response(protocol_of(call.service), fault.kind, fault.message)
            call.status = int(status.split()[0])
            start_response(status, headers)
            return [data]
        finally:
            with self._lock:
                self.in_flight -= 1
                call.end = time.perf_counter()


def concurrency(calls: list[Call]) -> float:
    """Average number of calls in flight while any call was in flight (busy time weighted)."""
    spans = sorted((c.start, c.end) for c in calls if c.end)
    if not spans:
        return 0.0
    busy, cur_start, cur_end = 0.0, spans[0][0], spans[0][1]
    for s, e in spans[1:]:
        if s > cur_end:
            busy += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    busy += cur_end - cur_start
    total = sum(e - s for s, e in spans)
    return total / busy if busy else 0.0


def round_trips(calls: list[Call]) -> tuple[int, list[Call]]:
    """The sequential round trips on the critical path: the longest chain of calls in which each one started
    after the one before it had answered (an upper bound on the chain of reads that waited for one another),
    and that chain."""
    done = sorted((c for c in calls if c.end), key=lambda c: c.start)
    depth: dict[int, int] = {}
    before: dict[int, Call | None] = {}
    for c in done:
        prior = [d for d in done if d.end <= c.start and id(d) in depth]
        parent = max(prior, key=lambda d: depth[id(d)], default=None)
        depth[id(c)] = 1 + (depth[id(parent)] if parent is not None else 0)
        before[id(c)] = parent
    if not done:
        return 0, []
    last: Call | None = max(done, key=lambda c: depth[id(c)])
    chain: list[Call] = []
    while last is not None:
        chain.append(last)
        last = before[id(last)]
    return len(chain), chain[::-1]


__all__ = ["KINDS", "WIRE", "Call", "Fault", "MotoMiddleware", "concurrency", "error_response", "identify",
           "round_trips"]
