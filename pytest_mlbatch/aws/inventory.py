"""Fetch each AWS resource kind once per (account, region, query): cached, thread-safe, retried, guarded."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.retries.standard

from pytest_mlbatch.aws.guard import Guard, is_read

# total_max_attempts counts the first try: 3 attempts in all. (botocore's `max_attempts` would count retries
# only, giving 4, and botocore rewrites the dict it is given, so client_config passes a copy.)
RETRIES: Any = {"mode": "standard", "total_max_attempts": 3}
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15


class Deadline:
    """The run's overall deadline (--mlbatch-deadline), shared by every inventory of the process: after it, no
    AWS request is started and none is retried, so a run ends at most one request's timeouts after it."""

    at: float | None = None  # time.monotonic() value
    seconds: float | None = None

    @classmethod
    def set(cls, seconds: float | None) -> None:
        cls.seconds = seconds
        cls.at = None if seconds is None else time.monotonic() + seconds

    @classmethod
    def passed(cls) -> bool:
        return cls.at is not None and time.monotonic() >= cls.at

    @classmethod
    def message(cls) -> str:
        return f"the run's deadline of {cls.seconds:g} s (--mlbatch-deadline) passed before this could be read"


class DeadlinePassed(Exception):
    """Raised before an AWS request once the run's deadline has passed."""

DENIED = {
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
    "AuthorizationError", "Forbidden", "NotAuthorized",
}
THROTTLED = {
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "ThrottledException", "SlowDown", "RequestThrottled", "RequestThrottledException",
}
CREDENTIALS = {
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
    "UnrecognizedClientException", "InvalidSignatureException", "AuthFailure",
}


class AwsError(Exception):
    """An AWS call that did not answer: carries the operation, the kind of failure and what to do."""

    def __init__(self, operation: str, kind: str, code: str, detail: str) -> None:
        self.operation = operation
        self.kind = kind  # denied | throttled | fault | timeout | connection | credentials | client | assume-role
        self.code = clean_detail(code, limit=60)
        self.detail = clean_detail(detail)
        super().__init__(str(self))

    def __reduce__(self) -> Any:  # picklable, so an xdist controller can hand it to its workers
        return (AwsError, (self.operation, self.kind, self.code, self.detail))

    @property
    def permission(self) -> str:
        return self.operation

    @property
    def remedy(self) -> str:
        """How to get the check evaluated (not how to fix what it would have found)."""
        return {
            "denied": f"grant {self.permission} to the caller (docs/iam-policy-readonly.json lists every read the "
                      "checks make), then run again",
            "throttled": "AWS throttled this account and region past the retries: run again later, or lower "
                         "--mlbatch-concurrency",
            "credentials": "fix the credentials (AWS_PROFILE or --aws-profile, `aws sso login`, or "
                           "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), then run again",
            "assume-role": "let the caller assume the target's role (its trust policy, external_id) or correct "
                           "role_arn, then run again",
            "timeout": "the endpoint named did not answer in time: check the network, proxy and AWS_ENDPOINT_URL, "
                       "then run again",
            "connection": "the endpoint named could not be reached: check the network, proxy and AWS_ENDPOINT_URL, "
                          "then run again",
            "fault": "the service answered with a server error: run again; if it persists, check the endpoint "
                     "(AWS_ENDPOINT_URL, proxy) or the AWS Health Dashboard",
        }.get(self.kind, "the request was rejected: correct the value the message names, then run again")

    def __str__(self) -> str:
        if self.kind == "denied":
            return f"{self.operation} was denied ({self.code}): grant {self.permission} to the caller"
        if self.kind == "throttled":
            return f"{self.operation} was throttled past retries ({self.code})"
        if self.kind == "credentials":
            return f"{self.operation}: AWS credentials not usable ({self.code}): {self.detail}"
        if self.kind == "deadline":
            return f"{self.operation} not sent: {self.detail}"
        return f"{self.operation} failed ({self.code}): {self.detail}"


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_TAG = re.compile(r"<[^>]{0,200}>")


def clean_detail(text: Any, *, limit: int = 300) -> str:
    """An answer's text fit for a one-line message: an HTML page (a proxy's, a captive portal's, an emulator's
    error page) is named, not embedded; whitespace is collapsed and the length bounded."""
    s = str(text or "")
    head = s[:2000].lower()
    if "<html" in head or "<!doctype html" in head or "<body" in head:
        title = _TITLE.search(s[:20000])
        name = " ".join(_TAG.sub(" ", title.group(1)).split())[:80] if title else ""
        s = f"an HTML page{f' titled {name!r}' if name else ''} answered, not the AWS API (a proxy, a captive " \
            "portal, or an emulator without this operation or region)"
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


def classify(operation: str, exc: BaseException) -> AwsError:
    """Turn any botocore/network exception into an AwsError with a kind."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, DeadlinePassed):
        return AwsError(operation, "deadline", "Deadline", str(exc))
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        msg = str(err.get("Message", "")) or str(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in DENIED or code.endswith("AccessDenied") or code.endswith("AccessDeniedException"):
            kind = "denied"
        elif code in THROTTLED:
            kind = "throttled"
        elif code in CREDENTIALS:
            kind = "credentials"
        elif status >= 500:
            kind = "fault"
        else:
            kind = "client"
        if status and code.isdigit():  # no AWS error document came back, only an HTTP status
            server = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server")
            msg = f"HTTP {status}{f' from server {server!r}' if server else ''}: {clean_detail(msg)}"
        return AwsError(operation, kind, code, msg)
    if isinstance(exc, botocore.exceptions.ReadTimeoutError | botocore.exceptions.ConnectTimeoutError):
        return AwsError(operation, "timeout", type(exc).__name__, str(exc)[:300])
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionClosedError):
        return AwsError(operation, "connection", type(exc).__name__, str(exc)[:300])
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return AwsError(operation, "credentials", type(exc).__name__, str(exc))
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return AwsError(operation, "credentials", "ProfileNotFound", str(exc))
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return AwsError(operation, "client", "NoRegionError", str(exc))
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(operation, "connection", type(exc).__name__, str(exc)[:300])
    return AwsError(operation, "client", type(exc).__name__, str(exc)[:300])


def _make_client(session: boto3.Session, service: str, region: str | None) -> Any:
    """session.client(), made again if it fails the way reading os.environ fails while another thread changes it.

    botocore iterates os.environ while making a client (proxy settings, via urllib's getproxies), and iterating
    os.environ is not safe against a concurrent change: pytest's main thread sets and deletes PYTEST_CURRENT_TEST
    around every test phase while the prefetch threads make clients, and the loser sees KeyError
    ('PYTEST_CURRENT_TEST') or RuntimeError (dictionary changed size). A second attempt does not meet the same
    change; a real failure fails every attempt and is reported."""
    for _ in range(2):
        with contextlib.suppress(KeyError, RuntimeError):
            return session.client(service, region_name=region, config=client_config())
    return session.client(service, region_name=region, config=client_config())


def idempotent(operation: Any) -> bool:
    """Whether a resend of this operation is harmless: a read, or a write whose model has an idempotency token
    (botocore fills it once per call, so its retries carry the same token; fixers derive it from the plan)."""
    if is_read(str(operation.name)):
        return True
    shape = operation.input_shape
    members = shape.members.values() if shape is not None else []
    return any(m.metadata.get("idempotencyToken") for m in members)


def send_writes_once(client: Any) -> None:
    """Keep botocore's standard retries for reads and token-carrying writes only: any other write is sent once.
    A create whose answer came after the read timeout has happened, or may have; sending it again made a second
    Elastic IP or met the first attempt's role half-built. What happened is left to the next run to read (by the
    plan's tag)."""
    events = client.meta.events
    name = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{name}"
    events.unregister(f"needs-retry.{name}", unique_id=unique_id)
    handler = botocore.retries.standard.register_retry_handler(client, max_attempts=RETRIES["total_max_attempts"])
    events.unregister(f"needs-retry.{name}", unique_id=unique_id)

    def needs_retry(operation: Any = None, **kwargs: Any) -> Any:
        if Deadline.passed() or (operation is not None and not idempotent(operation)):
            return None
        return handler.needs_retry(operation=operation, **kwargs)

    events.register(f"needs-retry.{name}", needs_retry, unique_id=unique_id)


def _quietly(read: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # cached for the real reader, which reports it
        read()


def client_config(max_pool: int = 20) -> botocore.config.Config:
    return botocore.config.Config(
        retries=dict(RETRIES),
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=max_pool,
        user_agent_extra="pytest-mlbatch",
    )


class Inventory:
    """The only place that talks to AWS for one target. Checks ask; results are fetched once and shared."""

    def __init__(self, session: boto3.Session, region: str | None, *, label: str = "") -> None:
        self.session = session
        self.region = region
        self.label = label or (region or "?")
        self.guard = Guard()
        self.calls: Counter[str] = Counter()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._cache: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()  # boto3 sessions may not make clients concurrently; lookups go on
        self.ahead: Executor | None = None  # set by the preflight's prefetch plugin; None: read_ahead does nothing
        self._slots: threading.BoundedSemaphore | None = None
        self._in_flight: dict[int, tuple[str, str, float]] = {}

    def limit_in_flight(self, calls: int | None) -> None:
        """At most `calls` AWS requests of this target at a time (None: no limit beyond the callers' threads).
        Per target, because AWS throttles per account and region."""
        self._slots = threading.BoundedSemaphore(calls) if calls else None

    # -- clients -------------------------------------------------------------------------------------
    def client(self, service: str, region: str | None = None) -> Any:
        """A guarded, retried, timed-out boto3 client (created once per service and region)."""
        key = (service, region or self.region)
        with self._client_lock:
            found = self._clients.get(key)
            if found is None:
                found = _make_client(self.session, service, key[1])
                found.meta.events.register("before-call", self._before_call)
                send_writes_once(found)
                self.guard.install(found)
                self._clients[key] = found
            return found

    def _client_for(self, service: str, method: str, region: str | None) -> Any:
        """client(), with a failure to make one (a profile that vanished, a bad region) as an AwsError."""
        try:
            return self.client(service, region)
        except Exception as exc:
            raise classify(f"{service}:{method}", exc) from None

    def _before_call(self, model: Any, **_: Any) -> None:
        if Deadline.passed():
            raise DeadlinePassed(Deadline.message())
        self.calls[f"{model.service_model.signing_name}:{model.name}"] += 1

    @staticmethod
    def operation_name(client: Any, method: str) -> str:
        api = client.meta.method_to_api_mapping.get(method, method)
        return f"{client.meta.service_model.signing_name}:{api}"

    @contextlib.contextmanager
    def _reading(self, operation: str, region: str | None) -> Iterator[None]:
        """Record a read in flight (what it is, where, since when), for progress on slow endpoints."""
        token = object()
        with self._lock:
            self._in_flight[id(token)] = (operation, region or self.region or "?", time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.pop(id(token), None)

    def reads_in_flight(self) -> list[tuple[str, str, float]]:
        """(operation, region, seconds so far) of each read in flight, longest first."""
        now = time.monotonic()
        with self._lock:
            found = [(op, region, now - since) for op, region, since in self._in_flight.values()]
        return sorted(found, key=lambda r: -r[2])

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        slots = self._slots
        if slots is None:
            yield
            return
        with slots:
            yield

    # -- cached reads --------------------------------------------------------------------------------
    def _cached(self, key: str, fetch: Callable[[], Any]) -> Any:
        with self._lock:
            fut = self._cache.get(key)
            owner = fut is None
            if fut is None:
                fut = Future()
                self._cache[key] = fut
        if owner:
            try:
                fut.set_result(fetch())
            except BaseException as exc:
                fut.set_exception(exc)
        return fut.result()

    def call(self, service: str, method: str, *, region: str | None = None, **params: Any) -> Any:
        """One cached API call (no pagination). Raises AwsError."""
        key = json.dumps(["call", service, region or self.region, method, params], sort_keys=True, default=str)

        def fetch() -> Any:
            client = self._client_for(service, method, region)
            try:
                with self._slot(), self._reading(self.operation_name(client, method), region):
                    response = getattr(client, method)(**params)
            except Exception as exc:
                raise classify(self.operation_name(client, method), exc) from None
            response.pop("ResponseMetadata", None)
            return response

        return self._cached(key, fetch)

    def paginate(self, service: str, method: str, result_key: str, *, region: str | None = None,
                 **params: Any) -> list[Any]:
        """All items of a listing, following every page, cached. Raises AwsError."""
        key = json.dumps(["pages", service, region or self.region, method, result_key, params], sort_keys=True,
                         default=str)

        def fetch() -> list[Any]:
            client = self._client_for(service, method, region)
            items: list[Any] = []
            try:
                with self._slot(), self._reading(self.operation_name(client, method), region):
                    if client.can_paginate(method):
                        for page in client.get_paginator(method).paginate(**params):
                            items.extend(page.get(result_key, []))
                    else:
                        items.extend(getattr(client, method)(**params).get(result_key, []))
            except Exception as exc:
                raise classify(self.operation_name(client, method), exc) from None
            return items

        result: list[Any] = self._cached(key, fetch)
        return result

    def read_ahead(self, *reads: Callable[[], Any]) -> None:
        """Start independent reads now, side by side, without waiting for them: a loader that will make reads
        A, B and C one after the other names them here first, so they are in flight together and its own reads
        then find them in the cache (or wait for them). Each read is the same `call`/`paginate` the loader makes
        next, so same cache key, same answer; a failure is cached for the loader to meet, never raised here.
        Without a pool (serial runs, `--fix`, `--mlbatch-concurrency 1`) it does nothing."""
        pool = self.ahead
        if pool is None:
            return
        for read in reads:
            with contextlib.suppress(RuntimeError):  # the pool was shut down at the end of the session
                pool.submit(_quietly, read)

    def memo(self, name: str, fetch: Callable[[], Any]) -> Any:
        """Cache any derived value (e.g. a parsed document) for the life of this inventory."""
        return self._cached(json.dumps(["memo", name]), fetch)

    def snapshot(self) -> dict[str, Any]:
        """Every answer fetched so far, those in flight included (results and AwsErrors), by cache key: what an xdist
        controller ships."""
        out: dict[str, Any] = {}
        with self._lock:
            pending = [f for f in self._cache.values() if not f.done()]
        for fut in pending:  # reads still in flight (read-ahead) travel too, or a worker would make them again
            fut.exception()  # waits; a failure travels as the answer
        with self._lock:
            done = [(k, f) for k, f in self._cache.items() if f.done()]
        for key, fut in done:
            exc = fut.exception()
            out[key] = ("error", exc) if exc is not None else ("ok", fut.result())
        return out

    def preload(self, answers: dict[str, Any]) -> None:
        """Seed the cache with answers from `snapshot()` (keys already present are kept)."""
        with self._lock:
            for key, (status, value) in answers.items():
                if key not in self._cache:
                    fut: Future[Any] = Future()
                    if status == "ok":
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                    self._cache[key] = fut

    def invalidate(self) -> None:
        """Forget every cached answer (after a fix changed something) so a re-check reads fresh data."""
        with self._lock:
            self._cache.clear()

    @contextlib.contextmanager
    def mutations(self, journal: Any, check_id: str, resource: str, calls: list[str] | None = None,
                  plan_id: str = "", sanctioned: frozenset[str] = frozenset()) -> Iterator[None]:
        """Within this block (fixers only), the plan's declared create-only calls are allowed, each journaled
        before it is sent and after it answered."""
        with self.guard.allow(journal, check_id, resource, calls, plan_id, sanctioned):
            yield
