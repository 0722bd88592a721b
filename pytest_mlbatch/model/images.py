"""The job's container image as its registry holds it: ECR repositories, images and scan findings, and how the
registry is reached (built by aws/world.py; manifests and platforms are oci.py's Manifest and Platform)."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_mlbatch.oci import Credentials


@dataclass(frozen=True)
class EcrRepository:
    """One ECR repository of a registry (account and region)."""

    name: str
    tag_mutability: str | None  # MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION; None when not reported
    mutability_exclusions: tuple[str, ...] = ()  # tag filters (globs) that stay mutable


@dataclass(frozen=True)
class EcrImage:
    """One image of an ECR repository: its manifest digest, tags and compressed size."""

    digest: str | None
    tags: tuple[str, ...]
    size: int | None  # bytes (imageSizeInBytes)


@dataclass(frozen=True)
class ScanFindings:
    """An image's latest scan: its status (COMPLETE, IN_PROGRESS, FAILED ...) and findings by severity."""

    status: str
    description: str
    severity_counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RegistryLogin:
    """How an image's registry is reached: its v2 base URL, host, and the credentials the job pulls with."""

    base_url: str
    registry: str
    credentials: Credentials | None


class RegistrySecretMissing(Exception):
    """The secret a job definition's repositoryCredentials names does not exist: nothing can log in to pull."""

    def __init__(self, secret: str | None) -> None:
        super().__init__(f"secret {secret} does not exist")
        self.secret = secret
