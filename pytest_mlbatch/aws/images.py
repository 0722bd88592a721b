"""The container image's registry, read: ECR authorization tokens, the private-registry secret a job definition
names, a registry v2 client per registry, manifests and platforms (cached in the inventory), for the IMG checks."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os

from pytest_mlbatch.analysis.imageref import ImageRef
from pytest_mlbatch.aws import batchinfo
from pytest_mlbatch.aws.batchinfo import Where
from pytest_mlbatch.aws.inventory import Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.oci import Credentials, Manifest, Platform, RegistryClient, RegistryError


class _HideSecrets(logging.Filter):
    """botocore logs whole response bodies at DEBUG: drop the ones that carry an ECR token or a secret value."""

    MARKERS = ("authorizationToken", "SecretString", "SecretBinary")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        return not any(m in text for m in self.MARKERS)


def hide_secrets_in_logs() -> None:
    """Installed once before the first token or secret is fetched."""
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.retryhandler"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideSecrets) for f in logger.filters):
            logger.addFilter(_HideSecrets())


def endpoint(override: str | None, ref: ImageRef) -> str:
    """The registry v2 base URL for this image: image.registry_endpoint if set, else the image's own host."""
    if override:
        return override.rstrip("/")
    if ref.is_ecr:
        emulated = os.environ.get("AWS_ENDPOINT_URL_ECR") or os.environ.get("AWS_ENDPOINT_URL")
        if emulated:
            raise NotEvaluable(f"AWS calls go to {emulated} (AWS_ENDPOINT_URL), so the ECR registry of {ref.registry}"
                               " is not the real one and its address is unknown: set image.registry_endpoint to "
                               "the registry v2 URL that serves this account's images")
    scheme = "http" if ref.is_loopback else "https"
    return f"{scheme}://{ref.api_host}"


def ecr_credentials(inventory: Inventory, ref: ImageRef) -> Credentials:
    """ECR's authorization token, used as Basic credentials (user AWS)."""
    hide_secrets_in_logs()
    data = inventory.call("ecr", "get_authorization_token", region=ref.region, registryIds=[ref.account])
    entries = data.get("authorizationData") or []
    if not entries:
        raise NotEvaluable(f"ecr:GetAuthorizationToken gave no token for {ref.account} in {ref.region}")
    try:
        user, sep, password = base64.b64decode(entries[0]["authorizationToken"]).decode().partition(":")
    except (KeyError, ValueError, binascii.Error, UnicodeDecodeError):
        raise NotEvaluable("ecr:GetAuthorizationToken answered a token that is not base64 user:password") from None
    if not sep:
        raise NotEvaluable("ecr:GetAuthorizationToken answered a token without user:password")
    return Credentials(user, password, f"ECR authorization token of {ref.account} in {ref.region}")


def repository_credentials_secret(ctx: Where) -> str | None:
    """The Secrets Manager secret the job definition names in containerProperties.repositoryCredentials."""
    if not ctx.scope.job_definition:
        return None
    jd = batchinfo.job_definition(ctx)
    if not jd:
        return None
    rc = (jd.get("containerProperties") or {}).get("repositoryCredentials") or {}
    value = rc.get("credentialsParameter")
    return str(value) if value else None


def secret_credentials(inventory: Inventory, secret: str) -> Credentials:
    hide_secrets_in_logs()
    region = secret.split(":")[3] if secret.startswith("arn:") and secret.count(":") >= 6 else None
    data = inventory.call("secretsmanager", "get_secret_value", region=region, SecretId=secret)
    try:
        doc = json.loads(data.get("SecretString") or "")
        user, password = str(doc["username"]), str(doc["password"])
    except (ValueError, KeyError, TypeError):
        raise NotEvaluable(f"secret {secret} (repositoryCredentials) is not JSON with username and password") \
            from None
    return Credentials(user, password, f"secret {secret}")


def credentials(ctx: Where, ref: ImageRef) -> Credentials | None:
    if ref.is_ecr:
        return ecr_credentials(ctx.inventory, ref)
    secret = repository_credentials_secret(ctx)
    return secret_credentials(ctx.inventory, secret) if secret else None


def registry(ctx: Where, override: str | None, ref: ImageRef) -> RegistryClient:
    """A registry client for the image, with its credentials, made once per run and registry."""
    base = endpoint(override, ref)

    def make() -> RegistryClient:
        return RegistryClient(base, credentials(ctx, ref))

    client: RegistryClient = ctx.inventory.memo(f"oci-client {base} {ref.registry}", make)
    return client


def manifest(ctx: Where, override: str | None, ref: ImageRef, reference: str | None = None) -> Manifest | None:
    """The manifest of the image (or of `reference` in its repository), cached; registry failures -> error."""
    client = registry(ctx, override, ref)
    reference = reference or ref.reference

    def fetch() -> Manifest | None:
        return client.manifest(ref.repository, reference)

    try:
        found: Manifest | None = ctx.inventory.memo(f"oci-manifest {client.base_url} {ref.repository} {reference}",
                                                    fetch)
    except RegistryError as exc:
        raise NotEvaluable(str(exc)) from None
    return found


def platforms(ctx: Where, override: str | None, ref: ImageRef, m: Manifest) -> list[Platform]:
    client = registry(ctx, override, ref)
    try:
        found: list[Platform] = ctx.inventory.memo(f"oci-platforms {client.base_url} {ref.repository} {m.digest}",
                                                   lambda: client.platforms(ref.repository, m))
    except RegistryError as exc:
        raise NotEvaluable(str(exc)) from None
    return found

