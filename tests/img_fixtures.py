"""Fixtures for the IMG tests: scratch images on the private dockerd, a registry with htpasswd auth holding moto's
ECR token, manifests built through the registry API, and ECR metadata mirrored into moto."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends import ACCOUNT, REGION, Aws, start_registry

ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TOKEN_USER = "AWS"
TOKEN_PASSWORD = f"{ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken hands out (base64 of AWS:<this>)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A docker-registry whose htpasswd (bcrypt) holds moto's ECR token as user AWS: returns host:port."""
    root = Path(tmp_path_factory.mktemp("auth-registry", numbered=True))
    line = subprocess.run(["htpasswd", "-Bbn", TOKEN_USER, TOKEN_PASSWORD], capture_output=True, check=True,
                          text=True).stdout.strip()
    htpasswd = root / "htpasswd"
    htpasswd.write_text(line + "\n")
    proc, address = start_registry(root / "reg", htpasswd=htpasswd)
    yield address
    proc.stop()


@dataclass
class RegistryApi:
    """Build images directly through the registry v2 API (blobs, manifests, indexes)."""

    address: str
    user: str | None = TOKEN_USER
    password: str | None = TOKEN_PASSWORD
    bearer: str | None = None

    def _req(self, method: str, url: str, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if not url.startswith("http"):
            url = f"http://{self.address}{url}"
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if self.bearer is not None:
            req.add_header("Authorization", f"Bearer {self.bearer}")
        elif self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = sha(data)
        status, headers, body = self._req("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, (status, body)
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        status, _, body = self._req("PUT", f"{location}{sep}digest={digest}", data,
                                    {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        return {"digest": digest, "size": len(data)}

    def put_manifest(self, repo: str, reference: str, doc: dict[str, Any]) -> tuple[str, bytes]:
        raw = json.dumps(doc, indent=3).encode()
        status, headers, body = self._req("PUT", f"/v2/{repo}/manifests/{reference}", raw,
                                          {"Content-Type": doc["mediaType"]})
        assert status == 201, (status, body)
        assert headers["Docker-Content-Digest"] == sha(raw)
        return sha(raw), raw

    def image(self, repo: str, reference: str, arch: str, *, layer: bytes = b"", oci: bool = False,
              os_name: str = "linux") -> tuple[str, bytes]:
        """A single-platform image: a config blob with `arch` and one layer."""
        config = json.dumps({"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []},
                             "config": {}}).encode()
        layer_data = layer or _tar_gz({"hello": f"built for {arch}".encode()})
        cfg = self.blob(repo, config)
        lay = self.blob(repo, layer_data)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else
                       "application/vnd.docker.container.image.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci else
                        "application/vnd.docker.image.rootfs.diff.tar.gzip", **lay}],
        }
        return self.put_manifest(repo, reference, doc)

    def index(self, repo: str, reference: str, archs: list[str], *, oci: bool = False) -> tuple[str, bytes]:
        """A multi-arch manifest list (or OCI index) with one image per architecture, plus an attestation entry."""
        entries = []
        for arch in archs:
            digest, raw = self.image(repo, f"{reference}-{arch}", arch, oci=oci)
            entries.append({"mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST, "size": len(raw),
                            "digest": digest, "platform": {"architecture": arch, "os": "linux",
                                                           **({"variant": "v8"} if arch == "arm64" else {})}})
        if oci:  # buildx attaches attestations as unknown/unknown entries: they are not platforms
            att, raw = self.image(repo, f"{reference}-att", "unknown", oci=True, os_name="unknown")
            entries.append({"mediaType": OCI_MANIFEST, "size": len(raw), "digest": att,
                            "platform": {"architecture": "unknown", "os": "unknown"}})
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST, "manifests": entries}
        return self.put_manifest(repo, reference, doc)


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_scratch(client: Any, tag: str, content: str) -> str:
    """Build `FROM scratch` with one file on the private dockerd; returns the image id."""
    dockerfile = b"FROM scratch\nCOPY payload /payload\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("payload", content.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    return str(image.id)


def mirror_to_ecr(aws: Aws, repo: str, tag: str, digest: str, raw: bytes, media_type: str) -> None:
    """ECR metadata in moto for an image that really lives in the registry (the digest is the registry's)."""
    aws.client("ecr").put_image(repositoryName=repo, imageManifest=raw.decode(), imageManifestMediaType=media_type,
                                imageTag=tag, imageDigest=digest)


def ecr_config(uri_tail: str, endpoint: str | None, **image: Any) -> dict[str, Any]:
    img: dict[str, Any] = {"uri": f"{ECR_HOST}/{uri_tail}", **image}
    if endpoint:
        img["registry_endpoint"] = f"http://{endpoint}"
    return {"version": 1, "region": REGION, "image": img}
