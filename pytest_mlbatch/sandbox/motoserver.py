"""moto's server on a loopback port in a thread, where an operation moto lacks answers 501 Not Implemented at once.

moto raises NotImplementedError for an API it does not model (Service Quotas' GetAWSDefaultServiceQuota, IAM's
SimulatePrincipalPolicy, ...). Its Flask apps turn that into a bare 500, which botocore rightly retries with
exponential backoff as a transient fault: one such call then costs up to three seconds of random sleep (it made
every sandbox run slower and the latency benchmark noisy) and logs a traceback per attempt. Here the apps answer it
with 501 and the protocol's error shape, code `NotImplemented`, which botocore does not retry; the check that asked
still gets `error` with the reason. Everything else is moto's own app, unchanged: the sandbox and the tests' moto
servers (plain, counting, faulty) all serve `app()`.

One cost of moto's is memoised: every IAM backend (moto makes one per account and partition the first time a request
names the account: seven per reset) parses AWS's ~1,500 managed policies from JSON and serialises each document back.
`share_managed_policy_data()` parses them once per process; each backend still gets its own policy objects, with the
same content, so nothing is shared between backends.
"""

from __future__ import annotations

import json
import threading
from typing import Any

ERROR_CODE = "NotImplemented"


def _not_implemented(exc: NotImplementedError) -> Any:
    from flask import Response, request

    message = f"moto does not implement this operation: {exc}"
    headers = {"x-amzn-ErrorType": ERROR_CODE}
    json_protocol = "X-Amz-Target" in request.headers or "json" in (request.content_type or "")
    if json_protocol or request.path not in ("", "/"):  # JSON and REST-JSON services read a JSON error body
        body = json.dumps({"__type": ERROR_CODE, "message": message})
        return Response(body, status=501, headers=headers, content_type="application/x-amz-json-1.1")
    # query protocols (EC2, IAM, STS): the EC2 shape, which botocore's query parser reads too
    from xml.sax.saxutils import escape

    body = (f"<Response><Errors><Error><Code>{ERROR_CODE}</Code><Message>{escape(message)}</Message></Error>"
            f"</Errors><RequestID>moto-not-implemented</RequestID></Response>")
    return Response(body, status=501, headers=headers, content_type="text/xml")


def _create_app(service: Any) -> Any:
    from moto.moto_server.werkzeug_app import create_backend_app

    flask_app = create_backend_app(service)
    flask_app.register_error_handler(NotImplementedError, _not_implemented)
    return flask_app


def share_managed_policy_data() -> None:
    """Parse moto's AWS managed policies once per process (see the module's docstring); a moto whose IAM backend is
    not shaped as expected is left as it is."""
    import datetime

    from moto import settings
    from moto.iam import models as iam_models

    models: Any = iam_models
    backend: Any = models.IAMBackend
    if getattr(backend, "_mlbatch_shared", False) or not hasattr(backend, "_init_aws_policies"):
        return
    parsed: list[tuple[str, dict[str, Any]]] = []

    def init_aws_policies(self: Any) -> list[Any]:
        if not settings.load_iam_aws_managed_policies():
            return []
        if not parsed:  # what AWSManagedPolicy.from_data computes from each entry, computed once
            for name, data in json.loads(models.aws_managed_policies_data).items():
                parsed.append((name, {"default_version_id": data.get("DefaultVersionId"), "path": data.get("Path"),
                                      "document": json.dumps(data.get("Document")),
                                      "create_date": datetime.datetime.fromisoformat(data["CreateDate"]),
                                      "update_date": datetime.datetime.fromisoformat(data["UpdateDate"])}))
        return [models.AWSManagedPolicy(name, account_id=self.account_id, region=self.region_name, **fields)
                for name, fields in parsed]

    backend._init_aws_policies = init_aws_policies
    backend._mlbatch_shared = True


def app() -> Any:
    """moto's WSGI app (every service, the process's in-memory backends), unimplemented operations answering 501."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    share_managed_policy_data()
    return DomainDispatcherApplication(_create_app)


class MotoServer:
    """A WSGI app (moto's by default) served by werkzeug on a free loopback port in a daemon thread."""

    def __init__(self, wsgi_app: Any = None, host: str = "127.0.0.1", port: int = 0) -> None:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request

        self._server = make_server(host, port, wsgi_app if wsgi_app is not None else app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="moto-server")
        bound_host, bound_port = self._server.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        self.endpoint = f"http://{host_text}:{bound_port}"

    def start(self) -> MotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
