"""A moto server behind a WSGI middleware that counts AWS calls, adds latency and injects per-operation faults.

Used by tests and by bench/. It serves moto's own app (DomainDispatcherApplication, the same in-process backends as
any other moto server in this process) with werkzeug in a thread, like moto's ThreadedMotoServer, and in front:

- every AWS request is recorded as a `Call` (service:Operation in botocore's names, request parameters for query
  protocols, start/end time, status), so tests can count calls per operation and measure calls in flight;
- `latency` seconds are added to every AWS call (before moto answers);
- `faults` answer chosen operations with an error in the protocol's own wire format (EC2 XML, IAM/STS query XML,
  JSON `__type`, REST-JSON `x-amzn-ErrorType`), or delay them (`slow`), or drop the connection (`drop`).

    with LatencyServer(latency=0.05) as srv:
        srv.add_fault("sts:AssumeRole", "denied", when=lambda c: "other" in c.params.get("RoleArn", ""))
        ... AWS_ENDPOINT_URL=srv.endpoint ...
        srv.counts()          # Counter({"ec2:DescribeSubnets": 1, ...})
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# kind -> per protocol family: (HTTP status, error code)
ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    "throttle": {"ec2": (503, "RequestLimitExceeded"), "query": (400, "Throttling"),
                 "json": (400, "ThrottlingException"), "rest-json": (429, "TooManyRequestsException"),
                 "rest-xml": (503, "SlowDown")},
    "fault": {"ec2": (500, "InternalError"), "query": (500, "InternalFailure"),
              "json": (500, "InternalFailure"), "rest-json": (500, "ServerException"),
              "rest-xml": (500, "InternalError")},
    "unavailable": {"ec2": (503, "Unavailable"), "query": (503, "ServiceUnavailable"),
                    "json": (503, "ServiceUnavailableException"), "rest-json": (503, "ServiceUnavailableException"),
                    "rest-xml": (503, "ServiceUnavailable")},
    "denied": {"ec2": (403, "UnauthorizedOperation"), "query": (403, "AccessDenied"),
               "json": (400, "AccessDeniedException"), "rest-json": (403, "AccessDeniedException"),
               "rest-xml": (403, "AccessDenied")},
}
KINDS = (*ERRORS, "slow", "drop")

_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")


@dataclass
class Call:
    """One AWS request seen by the middleware."""

    service: str          # botocore's service name (ec2, iam, sts, ecr, batch, service-quotas, ...)
    operation: str        # botocore's operation name (DescribeSubnets)
    region: str
    params: dict[str, str]  # query-protocol form fields or the JSON body's top-level values (as strings)
    access_key: str
    start: float
    end: float = 0.0
    status: int = 0
    fault: str | None = None

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class Fault:
    """Answer matching calls with `kind` (see KINDS). `times`: how many matching calls to affect (None: all)."""

    pattern: str                      # fnmatch on "service:Operation", e.g. "ec2:Describe*", "sts:AssumeRole"
    kind: str
    times: int | None = None
    when: Callable[[Call], bool] | None = None
    delay: float = 0.0                # for "slow": seconds added before moto answers
    message: str = "injected by tests/wsgi_backend.py"
    hits: int = 0

    def matches(self, call: Call) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if not fnmatch.fnmatchcase(call.name, self.pattern):
            return False
        return self.when is None or bool(self.when(call))


class _Models:
    """botocore service models, by signing name and by JSON target prefix, loaded once per process."""

    SERVICES = ("ec2", "iam", "sts", "ecr", "batch", "service-quotas", "secretsmanager", "ssm", "logs", "ecs",
                "autoscaling", "s3", "elbv2")
    _lock = threading.Lock()
    _loaded: dict[str, Any] | None = None

    @classmethod
    def get(cls) -> dict[str, Any]:
        with cls._lock:
            if cls._loaded is None:
                import botocore.session

                session = botocore.session.get_session()
                by_signing: dict[str, Any] = {}
                by_prefix: dict[str, Any] = {}
                for name in cls.SERVICES:
                    model = session.get_service_model(name)
                    by_signing.setdefault(model.signing_name, model)
                    prefix = model.metadata.get("targetPrefix")
                    if prefix:
                        by_prefix[prefix] = model
                rest: dict[str, list[tuple[str, re.Pattern[str], str]]] = {}
                for model in by_signing.values():
                    if model.protocol.startswith("rest"):
                        routes = []
                        for op in model.operation_names:
                            http = model.operation_model(op).http
                            path = http["requestUri"].split("?")[0]
                            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path).replace(r"\+", ""))
                            routes.append((http["method"], re.compile(f"^{regex}/?$"), op))
                        rest[model.signing_name] = routes
                cls._loaded = {"signing": by_signing, "prefix": by_prefix, "rest": rest}
            return cls._loaded


def _protocol_family(service_model: Any) -> str:
    if service_model is None:
        return "query"
    if service_model.service_name == "ec2":
        return "ec2"
    proto = str(service_model.protocol)
    return proto if proto in ("query", "json", "rest-json", "rest-xml") else "query"


class FaultyMoto:
    """The WSGI middleware: counting, latency and faults around moto's DomainDispatcherApplication."""

    def __init__(self, latency: float = 0.0) -> None:
        from pytest_mlbatch.motoserver import app

        self.app = app()
        self.latency = latency
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    # -- the WSGI app ------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        call, model = self._identify(environ, body)
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = next((f for f in self.faults if f.matches(call)), None)
            if fault is not None:
                fault.hits += 1
                call.fault = fault.kind
        try:
            delay = self.latency + (fault.delay if fault is not None and fault.kind == "slow" else 0.0)
            if delay:
                time.sleep(delay)
            if fault is not None and fault.kind == "drop":
                sock = environ.get("werkzeug.socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                call.status = -1
                start_response("500 Internal Server Error", [("Content-Length", "0")])
                return [b""]
            if fault is not None and fault.kind in ERRORS:
                return self._error(call, model, fault, start_response)

            def recording_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                call.status = int(status.split()[0])
                return start_response(status, headers, *args)

            return self.app(environ, recording_start)  # type: ignore[no-any-return]
        finally:
            with self._lock:
                self.in_flight -= 1
                call.end = time.perf_counter()

    def _identify(self, environ: dict[str, Any], body: bytes) -> tuple[Call, Any]:
        models = _Models.get()
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        region, signing = (match.group(1), match.group(2)) if match else ("?", "?")
        key_match = re.search(r"Credential=([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        access_key = key_match.group(1) if key_match else ""
        model = models["signing"].get(signing)
        params: dict[str, str] = {}
        operation = "?"
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            prefix, _, operation = target.rpartition(".")
            model = models["prefix"].get(prefix, model)
            try:
                decoded = json.loads(body or b"{}")
                params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
            except ValueError:
                pass
        elif model is not None and model.protocol.startswith("rest"):
            method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
            operation = next((op for m, rx, op in models["rest"].get(signing, []) if m == method and rx.match(path)),
                             f"{method} {path}")
            try:
                decoded = json.loads(body or b"{}") if body.startswith(b"{") else {}
                params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
            except ValueError:
                pass
        else:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
            if not form:
                form = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            params = {k: v[0] for k, v in form.items()}
            operation = params.get("Action", "?")
        service = model.service_name if model is not None else signing
        return Call(service, operation, region, params, access_key, time.perf_counter()), model

    def _error(self, call: Call, model: Any, fault: Fault, start_response: Callable[..., Any]) -> list[bytes]:
        family = _protocol_family(model)
        status, code = ERRORS[fault.kind][family]
        call.status = status
        reason = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}[status]
        request_id = "00000000-0000-0000-0000-000000000000"
        headers: list[tuple[str, str]]
        if family == "ec2":
            text = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
                    f"<Message>{fault.message}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
                    "</Response>")
            headers = [("Content-Type", "text/xml")]
        elif family == "query":
            sender = "Receiver" if status >= 500 else "Sender"
            text = (f"<ErrorResponse><Error><Type>{sender}</Type><Code>{code}</Code><Message>{fault.message}"
                    f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
            headers = [("Content-Type", "text/xml")]
        elif family == "json":
            text = json.dumps({"__type": code, "message": fault.message})
            headers = [("Content-Type", "application/x-amz-json-1.1")]
        elif family == "rest-json":
            text = json.dumps({"message": fault.message})
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
        else:
            text = f"<Error><Code>{code}</Code><Message>{fault.message}</Message></Error>"
            headers = [("Content-Type", "application/xml")]
        data = text.encode()
        headers += [("Content-Length", str(len(data))), ("x-amzn-RequestId", request_id)]
        start_response(f"{status} {reason}", headers)
        return [data]

    # -- for tests and benchmarks ----------------------------------------------------------------------
    def add_fault(self, pattern: str, kind: str, *, times: int | None = None,
                  when: Callable[[Call], bool] | None = None, delay: float = 0.0) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: one of {KINDS}")
        fault = Fault(pattern, kind, times, when, delay)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget recorded calls and faults (not moto's state: reset() does that)."""
        with self._lock:
            self.calls.clear()
            self.faults.clear()
            self.max_in_flight = 0

    def counts(self, pattern: str = "*") -> Counter[str]:
        with self._lock:
            return Counter(c.name for c in self.calls if fnmatch.fnmatchcase(c.name, pattern))


class LatencyServer(FaultyMoto):
    """FaultyMoto served by werkzeug on a free loopback port in a daemon thread (like ThreadedMotoServer)."""

    def __init__(self, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(latency)
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server(host, port, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="faulty-moto")
        host_, port_ = self._server.server_address[:2]
        self.endpoint = f"http://{host_}:{port_}"

    def start(self) -> LatencyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()

    def reset(self) -> None:
        """Reset moto's state (shared by every moto server of this process) and forget calls and faults."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
        self.clear()

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


__all__ = ["ERRORS", "KINDS", "Call", "Fault", "FaultyMoto", "LatencyServer", "concurrency"]
