"""Bearer token auth against a real docker-registry in token mode: a small token service (JWT signed with a key
whose certificate the registry trusts) issues tokens for Basic credentials; the client follows the challenge."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from backends import start_registry
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from img_fixtures import RegistryApi

from pytest_mlbatch.oci import Credentials, RegistryClient, RegistryError

USER, PASSWORD = "robot", "s3cret-token-pass"
SERVICE, ISSUER = "test-registry", "test-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    def __init__(self, root: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = root / "root.crt"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                service.requests += 1
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                query = parse_qs(urlsplit(self.path).query)
                access = []
                for scope in query.get("scope", []):
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": service.token(access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, access: list[dict[str, Any]]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64url(sig)}"


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TokenService]]:
    root = Path(tmp_path_factory.mktemp("token-registry", numbered=True))
    tokens = TokenService(root)
    try:
        proc, address = start_registry(root, auth={"token": {
            "realm": tokens.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(tokens.bundle)}})
    except BaseException:
        tokens.server.shutdown()
        raise
    try:
        yield address, tokens
    finally:
        proc.stop()
        tokens.server.shutdown()


def test_bearer_token_flow(token_registry: tuple[str, TokenService]) -> None:
    address, tokens = token_registry
    push_token = tokens.token([{"type": "repository", "name": "team/model", "actions": ["pull", "push"]}])
    digest, _ = RegistryApi(address, bearer=push_token).index("team/model", "1.0", ["amd64", "arm64"])

    client = RegistryClient(f"http://{address}", Credentials(USER, PASSWORD, "test secret"))
    before = tokens.requests
    m = client.manifest("team/model", "1.0")
    assert m is not None and m.digest == digest and m.is_index
    assert [str(p) for p in client.platforms("team/model", m)] == ["linux/amd64", "linux/arm64/v8"]
    child = client.manifest("team/model", m.entries[0][0])
    assert child is not None and [str(p) for p in client.platforms("team/model", child)] == ["linux/amd64"]
    assert tokens.requests == before + 1  # one token for the repository scope, reused
    assert client.manifest("team/model", "2.0") is None

    with pytest.raises(RegistryError) as wrong:
        RegistryClient(f"http://{address}", Credentials(USER, "wrong", "test")).manifest("team/model", "1.0")
    assert wrong.value.status == 401 and wrong.value.registry == address
    assert "token service" in str(wrong.value) and "wrong" not in str(wrong.value)
    with pytest.raises(RegistryError, match="anonymously"):
        RegistryClient(f"http://{address}").manifest("team/model", "1.0")


def test_accept_headers_avoid_schema1(registry: str) -> None:
    """docker-registry 2.8 downgrades a manifest asked for without Accept headers to schema1 (another digest),
    or refuses it; with the Accept headers HEAD and GET give the pushed digest."""
    digest, _ = RegistryApi(registry, user=None).image("plain/model", "1.0", "amd64")
    req = urllib.request.Request(f"http://{registry}/v2/plain/model/manifests/1.0", method="GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # schema1 of another digest
            assert "v1+prettyjws" in resp.headers["Content-Type"] and resp.headers["Docker-Content-Digest"] != digest
    except urllib.error.HTTPError as exc:  # or, when it cannot convert this manifest, 400 MANIFEST_INVALID
        assert exc.code == 400 and b"MANIFEST_INVALID" in exc.read()
    client = RegistryClient(f"http://{registry}")
    for head in (True, False):
        m = client.manifest("plain/model", "1.0", head=head)
        assert m is not None and m.digest == digest
