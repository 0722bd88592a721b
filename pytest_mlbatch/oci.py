"""A small registry v2 (OCI distribution) client on urllib3: manifests, blobs, Basic and Bearer token auth."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# Without these, docker-registry 2.8 (and others) downgrade to a schema1 manifest with another digest.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
TIMEOUT = 15.0


@dataclass(frozen=True)
class Credentials:
    """Registry credentials; the password never appears in repr, str or any message."""

    username: str
    password: str = field(repr=False)
    source: str = "credentials"

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __str__(self) -> str:
        return f"{self.username} ({self.source})"


class RegistryError(Exception):
    """The registry could not be asked, or refused: names the registry and the HTTP status (0: no answer)."""

    def __init__(self, registry: str, status: int, message: str) -> None:
        self.registry = registry
        self.status = status
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status else "no HTTP answer"
        return f"registry {self.registry}: {self.message} ({status})"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class Manifest:
    """One manifest as the registry served it, with the digest it answered (checked against the body)."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)

    @property
    def body(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.raw or b"{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or (
            not self.media_type and "manifests" in self.body)

    @property
    def entries(self) -> list[tuple[str, Platform | None]]:
        """(digest, platform) of each image of an index; attestation entries (unknown/unknown) left out."""
        out: list[tuple[str, Platform | None]] = []
        for m in self.body.get("manifests", []):
            p = m.get("platform")
            plat = Platform(p.get("os", ""), p.get("architecture", ""), p.get("variant")) if p else None
            if plat is not None and plat.os == "unknown" and plat.architecture == "unknown":
                continue
            out.append((str(m.get("digest")), plat))
        return out

    @property
    def config_digest(self) -> str | None:
        cfg = self.body.get("config") or {}
        return str(cfg["digest"]) if "digest" in cfg else None

    @property
    def size(self) -> int:
        """Compressed size of an image manifest: config plus layers, as the registry stores them."""
        cfg = self.body.get("config") or {}
        return int(cfg.get("size", 0)) + sum(int(layer.get("size", 0)) for layer in self.body.get("layers", []))


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="...",service="..."' -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE.findall(rest))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _pool() -> urllib3.PoolManager:
    kwargs: dict[str, Any] = {"num_pools": 8, "maxsize": 4, "retries": urllib3.Retry(total=2, backoff_factor=0.2,
                                                                                    status_forcelist=(502, 503, 504),
                                                                                    allowed_methods=None,
                                                                                    raise_on_status=False)}
    try:
        import certifi

        kwargs["ca_certs"] = certifi.where()
        kwargs["cert_reqs"] = "CERT_REQUIRED"
    except ImportError:  # pragma: no cover - botocore brings certifi
        pass
    return urllib3.PoolManager(**kwargs)


class RegistryClient:
    """Speaks the registry v2 API to one registry. Thread-safe; tokens are kept in memory only."""

    def __init__(self, base_url: str, credentials: Credentials | None = None, *, timeout: float = TIMEOUT,
                 pool: urllib3.PoolManager | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.registry = urlsplit(self.base_url).netloc or self.base_url
        self.credentials = credentials
        self.timeout = timeout
        self._pool = pool or _pool()
        self._tokens: dict[str, str] = {}  # scope -> Authorization header value
        self._lock = threading.Lock()

    # -- HTTP and auth -------------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        """Every credential this client may have sent: the password, Basic and Bearer values and their bare parts."""
        with self._lock:
            sent = list(self._tokens.values())
        if self.credentials is not None:
            sent += [self.credentials.basic(), self.credentials.password]
        return sent + [value.split(" ", 1)[1] for value in sent if " " in value]

    def _send(self, method: str, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(method, url, headers=headers, timeout=urllib3.Timeout(
                connect=min(5.0, self.timeout), read=self.timeout), redirect=True, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise RegistryError(self.registry, 0, f"unreachable at {self.base_url}: {type(reason).__name__}: "
                                f"{_short(str(reason))}") from None

    def request(self, method: str, path: str, *, scope: str, accept: str | None = None) -> urllib3.BaseHTTPResponse:
        """One request with auth: answers a 401 challenge once (Basic, or a Bearer token for `scope`)."""
        url = self.base_url + path
        headers = {"User-Agent": "pytest-mlbatch"}
        if accept:
            headers["Accept"] = accept
        with self._lock:
            auth = self._tokens.get(scope)
        if auth:
            headers["Authorization"] = auth
        resp = self._send(method, url, headers)
        if resp.status != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        auth = self._authorize(challenge, scope)
        with self._lock:
            self._tokens[scope] = auth
        headers["Authorization"] = auth
        resp = self._send(method, url, headers)
        if resp.status == 401:
            who = f"as {self.credentials}" if self.credentials else "anonymously"
            raise RegistryError(self.registry, 401, f"credentials refused {who}{_detail(resp, self._secrets())}")
        return resp

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(self.registry, 401, "requires credentials (Basic auth) and none were found")
            return self.credentials.basic()
        if scheme == "bearer" and params.get("realm"):
            query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
            realm = params["realm"]
            headers = {"User-Agent": "pytest-mlbatch"}
            if self.credentials is not None:
                headers["Authorization"] = self.credentials.basic()
            url = realm + ("&" if "?" in realm else "?") + urlencode(query)
            resp = self._send("GET", url, headers)
            if resp.status != 200:
                who = f"as {self.credentials}" if self.credentials else "anonymously"
                detail = _detail(resp, self._secrets())
                raise RegistryError(self.registry, resp.status,
                                    f"token service {urlsplit(realm).netloc} refused a token {who}{detail}")
            try:
                doc = json.loads(resp.data)
                token = doc.get("token") or doc.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not token:
                raise RegistryError(self.registry, resp.status, "token service answered without a token")
            return f"Bearer {token}"
        raise RegistryError(self.registry, 401, f"unsupported auth challenge {scheme or '(none)'!r}")

    # -- API -----------------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ with auth: raises RegistryError if the registry is unreachable or refuses the credentials."""
        resp = self.request("GET", "/v2/", scope="")
        if resp.status != 200:
            raise RegistryError(self.registry, resp.status, f"/v2/ answered{_detail(resp, self._secrets())}")

    def manifest(self, repository: str, reference: str, *, head: bool = False) -> Manifest | None:
        """The manifest of a tag or digest (None if the registry says it does not exist)."""
        scope = f"repository:{repository}:pull"
        resp = self.request("HEAD" if head else "GET", f"/v2/{repository}/manifests/{reference}", scope=scope,
                            accept=ACCEPT)
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise RegistryError(self.registry, resp.status,
                                f"manifest {repository}:{reference} could not be read{_detail(resp, self._secrets())}")
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        if media_type in DOCKER_SCHEMA1:
            raise RegistryError(self.registry, resp.status, f"{repository}:{reference} is only served as a "
                                "deprecated schema1 manifest; push it again with a current Docker")
        digest = resp.headers.get("Docker-Content-Digest") or ""
        raw = b"" if head else bytes(resp.data)
        if not head:
            actual = sha256(raw)
            if digest and digest.startswith("sha256:") and digest != actual:
                raise RegistryError(self.registry, resp.status, f"manifest digest mismatch for {repository}:"
                                    f"{reference}: header {digest}, body {actual}")
            digest = digest or actual
            if reference.startswith("sha256:") and actual != reference:
                raise RegistryError(self.registry, resp.status, f"manifest {reference} came back as {actual}")
            if not media_type or media_type in ("application/json", "text/plain"):
                media_type = str(Manifest(digest, "", raw).body.get("mediaType", ""))
        if not digest:
            raise RegistryError(self.registry, resp.status, f"no Docker-Content-Digest for {repository}:{reference}")
        return Manifest(digest, media_type, raw)

    def blob(self, repository: str, digest: str, *, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        """A (small) blob such as an image config, checked against its digest."""
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull")
        if resp.status != 200:
            raise RegistryError(self.registry, resp.status, f"blob {digest} of {repository} could not be read"
                                f"{_detail(resp, self._secrets())}")
        data = bytes(resp.data)
        if len(data) > max_bytes:
            raise RegistryError(self.registry, resp.status, f"blob {digest} is larger than {max_bytes} bytes")
        if digest.startswith("sha256:") and sha256(data) != digest:
            raise RegistryError(self.registry, resp.status, f"blob {digest} does not match its digest")
        return data

    def platforms(self, repository: str, manifest: Manifest) -> list[Platform]:
        """The platforms an image runs on: an index's entries, or the architecture in the config blob."""
        if manifest.is_index:
            return [p for _, p in manifest.entries if p is not None]
        cfg_digest = manifest.config_digest
        if not cfg_digest:
            raise RegistryError(self.registry, 200, f"manifest {manifest.digest} has no config")
        try:
            cfg = json.loads(self.blob(repository, cfg_digest))
            if not isinstance(cfg, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise RegistryError(self.registry, 200, f"image config {cfg_digest} is not JSON ({exc})") from None
        return [Platform(str(cfg.get("os", "")), str(cfg.get("architecture", "")), cfg.get("variant"))]


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(resp: urllib3.BaseHTTPResponse, secrets: Iterable[str] = ()) -> str:
    """The registry's own error code and message (never headers, never request data), with every credential this
    client sent replaced by <redacted>: a registry is a third party, and a hostile one may echo them back."""
    try:
        doc = json.loads(resp.data or b"{}")
        errors = doc.get("errors") or []
        if errors:
            e = errors[0]
            text = f"{e.get('code', '')} {e.get('message', '')}"
            for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
                text = text.replace(secret, "<redacted>")
            return f": {_short(text, 140)}".rstrip()
    except (ValueError, AttributeError):
        pass
    return ""
