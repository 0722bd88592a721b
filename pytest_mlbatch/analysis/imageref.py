"""Parse container image references (ECR, other registries with host:port, Docker Hub shorthand) and refuse bad ones."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The grammar of github.com/distribution/reference, written out piece by piece.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"^(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_ECR_RE = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)"
    r"\.amazonaws\.com(?P<cn>\.cn)?$"
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MAX_NAME = 255


class ImageRefError(ValueError):
    """A reference that no registry would accept; the message says what is wrong and where."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. `tag` is None when only a digest is given; `explicit_tag` is False when
    neither tag nor digest was written (Docker then means `latest`)."""

    original: str
    registry: str  # host[:port] as written ("docker.io" for Docker Hub)
    repository: str  # path inside the registry ("library/python" for the Hub shorthand)
    tag: str | None
    digest: str | None
    explicit_tag: bool = True

    # -- ECR -----------------------------------------------------------------------------------------
    @property
    def is_ecr(self) -> bool:
        return _ECR_RE.match(self.registry.lower()) is not None

    @property
    def account(self) -> str | None:
        m = _ECR_RE.match(self.registry.lower())
        return m.group("account") if m else None

    @property
    def region(self) -> str | None:
        m = _ECR_RE.match(self.registry.lower())
        return m.group("region") if m else None

    @property
    def is_docker_hub(self) -> bool:
        return self.registry in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API)

    # -- forms ---------------------------------------------------------------------------------------
    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """registry/repository, the name Docker uses."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host:port that serves the registry v2 API for this reference."""
        return DOCKER_HUB_API if self.is_docker_hub else self.registry

    @property
    def is_loopback(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        return host in ("localhost", "[::1]") or host.startswith("127.")

    def with_registry(self, registry: str) -> ImageRef:
        """The same repository and tag/digest at another registry host (a mirror, or a test endpoint)."""
        return ImageRef(self.original, registry, self.repository, self.tag, self.digest, self.explicit_tag)

    def image_id(self) -> dict[str, str]:
        """ECR's imageId for this reference."""
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or "latest"}

    def __str__(self) -> str:
        out = self.name
        if self.tag and (self.explicit_tag or not self.digest):
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse(text: str) -> ImageRef:
    """Parse an image reference as Docker does; raise ImageRefError with a clear reason if it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ImageRefError("the image reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ImageRefError(f"{text!r}: an image reference has no spaces")
    if "://" in text:
        raise ImageRefError(f"{text!r}: write the image without a scheme (no http:// or https://)")
    rest = text
    digest: str | None = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST_RE.match(digest):
            raise ImageRefError(f"{text!r}: {digest!r} is not a digest (expected sha256:<64 hex digits>)")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and not re.fullmatch(r"[a-f0-9]{64}", hexpart):
            raise ImageRefError(f"{text!r}: a sha256 digest has exactly 64 lowercase hex digits")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ImageRefError(f"{text!r}: {tag!r} is not a valid tag (letters, digits, _ . -; at most 128, "
                                "not starting with . or -)")
    if not rest:
        raise ImageRefError(f"{text!r}: the repository name is missing")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, parts[1:]
        if not _DOMAIN_RE.match(registry):
            raise ImageRefError(f"{text!r}: {registry!r} is not a valid registry host[:port]")
        port = registry.rsplit(":", 1)[1] if ":" in registry and not registry.endswith("]") else None
        if port is not None and not 0 < int(port) < 65536:
            raise ImageRefError(f"{text!r}: port {port} is out of range")
    else:
        registry, path = DOCKER_HUB, parts
    if registry in ("index.docker.io", DOCKER_HUB_API):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    for comp in path:
        if not comp:
            raise ImageRefError(f"{text!r}: empty path component (doubled or trailing '/')")
        if comp.lower() == comp and not _COMPONENT_RE.match(comp):
            raise ImageRefError(f"{text!r}: {comp!r} is not a valid repository name component (lowercase "
                                "letters, digits, and . _ __ - between them)")
        if comp.lower() != comp:
            raise ImageRefError(f"{text!r}: repository names must be lowercase ({comp!r})")
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > MAX_NAME:
        raise ImageRefError(f"{text!r}: the name is longer than {MAX_NAME} characters")
    lowered = registry.lower()
    if ".dkr.ecr" in lowered and ".amazonaws.com" in lowered and not _ECR_RE.match(lowered):
        raise ImageRefError(f"{text!r}: {registry!r} looks like ECR but is not ACCOUNT(12 digits).dkr.ecr.REGION"
                            ".amazonaws.com[.cn]")
    return ImageRef(text, registry, repository, tag if tag is not None else (None if digest else "latest"),
                    digest, explicit_tag=tag is not None)


def is_digest(reference: str) -> bool:
    return _DIGEST_RE.match(reference) is not None
