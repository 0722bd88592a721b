"""Local Docker operations through the docker SDK: inspect a local image, pull, tag and push (DOCKER_HOST respected)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_mlbatch.oci import Credentials


class DockerOpError(Exception):
    """A Docker operation failed; the message never holds credentials."""


@dataclass(frozen=True)
class LocalImage:
    name: str
    id: str  # sha256 of the image config: the same digest as the manifest's config.digest
    repo_digests: tuple[str, ...]
    os: str
    architecture: str
    variant: str | None
    size: int

    def digests(self) -> set[str]:
        """The manifest digests this image is known under in registries it was pushed to or pulled from."""
        return {d.rpartition("@")[2] for d in self.repo_digests}


def _auth(creds: Credentials | None) -> dict[str, str] | None:
    return {"username": creds.username, "password": creds.password} if creds else None


def _clean(text: str, creds: Credentials | None) -> str:
    text = " ".join(str(text).split())[:300]
    if creds and creds.password:
        text = text.replace(creds.password, "***")
    return text


def local_image(client: Any, name: str) -> LocalImage | None:
    """The local image by name or id (None if Docker does not have it)."""
    import docker.errors

    try:
        attrs = client.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise DockerOpError(f"docker could not inspect {name}: {_clean(exc.explanation or str(exc), None)}") \
            from None
    return LocalImage(name=name, id=str(attrs.get("Id", "")), repo_digests=tuple(attrs.get("RepoDigests") or ()),
                      os=str(attrs.get("Os", "")), architecture=str(attrs.get("Architecture", "")),
                      variant=attrs.get("Variant"), size=int(attrs.get("Size") or 0))


def _stream(lines: Any, what: str, creds: Credentials | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in lines:
        if not isinstance(line, dict):
            continue
        if line.get("error") or line.get("errorDetail"):
            msg = line.get("error") or (line.get("errorDetail") or {}).get("message", "")
            raise DockerOpError(f"{what} failed: {_clean(msg, creds)}")
        out.append(line)
    return out


def pull(client: Any, repository: str, reference: str, creds: Credentials | None) -> LocalImage:
    """docker pull repository:tag or repository@digest; returns the pulled image."""
    import docker.errors

    sep = "@" if reference.startswith("sha256:") else ":"
    name = f"{repository}{sep}{reference}"
    try:
        _stream(client.api.pull(repository, tag=reference, auth_config=_auth(creds), stream=True, decode=True),
                f"docker pull {name}", creds)
    except docker.errors.APIError as exc:
        raise DockerOpError(f"docker pull {name} failed (HTTP {exc.status_code}): "
                            f"{_clean(exc.explanation or str(exc), creds)}") from None
    image = local_image(client, name)
    if image is None:
        raise DockerOpError(f"docker pull {name} reported success but the image is not there")
    return image


def tag_and_push(client: Any, local: str, repository: str, tag: str, creds: Credentials | None) -> str:
    """Tag the local image as repository:tag and push it; returns the manifest digest the registry accepted."""
    import docker.errors

    target = f"{repository}:{tag}"
    try:
        if not client.api.tag(local, repository, tag=tag):
            raise DockerOpError(f"docker tag {local} {target} failed")
        lines = _stream(client.api.push(repository, tag=tag, auth_config=_auth(creds), stream=True, decode=True),
                        f"docker push {target}", creds)
    except docker.errors.APIError as exc:
        raise DockerOpError(f"docker push {target} failed (HTTP {exc.status_code}): "
                            f"{_clean(exc.explanation or str(exc), creds)}") from None
    for line in reversed(lines):
        aux = line.get("aux") or {}
        if aux.get("Digest"):
            return str(aux["Digest"])
    raise DockerOpError(f"docker push {target} did not report a digest")
