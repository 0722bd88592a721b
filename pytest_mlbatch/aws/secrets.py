"""The reads behind a job's secrets and logs: Secrets Manager secrets and SSM parameters a job definition names
(existence and KMS key), KMS keys with their key policies, CloudWatch Logs groups; all through the inventory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_mlbatch.analysis.policy import parse_document
from pytest_mlbatch.aws.inventory import AwsError, Inventory
from pytest_mlbatch.findings import NotEvaluable
from pytest_mlbatch.model.principals import KmsKey, LogGroup, SecretSource

NOT_FOUND = ("ResourceNotFoundException", "NotFoundException", "ParameterNotFound")


def secret_arn_base(value: str) -> str:
    """arn:P:secretsmanager:REGION:ACCOUNT:secret:NAME[-SUFFIX] of a valueFrom that may add
    :json-key:version-stage:version-id."""
    return ":".join(value.split(":")[:7])


def ssm_parameter(value: str, partition: str, region: str | None, account: str | None) -> tuple[str, str, str]:
    """(region, parameter name as SSM knows it, parameter ARN) of an SSM valueFrom: a name or an ARN."""
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        rest = parts[5][len("parameter"):] if len(parts) == 6 else ""
        # an ARN names /a/b as parameter/a/b and a plain name x as parameter/x
        name = rest if rest.count("/") > 1 else rest.lstrip("/")
        return parts[3] or (region or ""), name, value
    arn = f"arn:{partition}:ssm:{region}:{account or '*'}:parameter/{value.lstrip('/')}"
    return region or "", value, arn


def _secret(inv: Inventory, value: str) -> SecretSource:
    base = secret_arn_base(value)
    region = base.split(":")[3] or None
    try:
        found = inv.call("secretsmanager", "describe_secret", region=region, SecretId=base)
    except AwsError as exc:
        if exc.code in NOT_FOUND:
            return SecretSource(value, "secretsmanager", base, False)
        raise NotEvaluable(f"cannot tell whether secret {base} exists (secretsmanager:DescribeSecret: "
                           f"{exc.code})") from None
    versions = tuple((str(v), tuple(str(s) for s in stages))
                     for v, stages in (found.get("VersionIdsToStages") or {}).items())
    return SecretSource(value, "secretsmanager", str(found.get("ARN") or base), not found.get("DeletedDate"),
                        found.get("KmsKeyId"), versions=versions)


def _parameters(inv: Inventory, region: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every named parameter of a region that exists, by name: one DescribeParameters query for all of them."""
    try:
        found = inv.paginate("ssm", "describe_parameters", "Parameters", region=region or None,
                             ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": sorted(set(names))}])
    except AwsError as exc:
        raise NotEvaluable(f"cannot tell whether SSM parameters {', '.join(names)} exist "
                           f"(ssm:DescribeParameters: {exc.code})") from None
    return {str(p["Name"]): dict(p) for p in found}


def secret_sources(inv: Inventory, values: Sequence[str], partition: str, region: str | None,
                   account: str | None) -> list[SecretSource]:
    out: dict[str, SecretSource] = {}
    ssm: dict[str, list[tuple[str, str, str]]] = {}
    for v in values:
        if v.startswith("arn:") and ":secretsmanager:" in v:
            out[v] = _secret(inv, v)
        else:
            where, name, arn = ssm_parameter(v, partition, region, account)
            ssm.setdefault(where, []).append((v, name, arn))
    for where, items in ssm.items():
        found = _parameters(inv, where, [name for _, name, _ in items])
        for v, name, arn in items:
            p = found.get(name)
            out[v] = SecretSource(v, "ssm", arn, p is not None, (p or {}).get("KeyId"),
                                  (p or {}).get("Type") == "SecureString")
    return [out[v] for v in values]


def kms_key(inv: Inventory, key: str, region: str | None) -> KmsKey | None:
    """A KMS key by id, ARN or alias, with its default key policy (customer managed keys only)."""
    where = key.split(":")[3] if key.startswith("arn:") else region
    try:
        meta = inv.call("kms", "describe_key", region=where, KeyId=key)["KeyMetadata"]
    except AwsError as exc:
        if exc.code in NOT_FOUND:
            return None
        raise NotEvaluable(f"cannot read KMS key {key} (kms:DescribeKey: {exc.code})") from None
    manager = str(meta.get("KeyManager", "CUSTOMER"))
    policy = None
    if manager != "AWS":
        try:
            text = inv.call("kms", "get_key_policy", region=where, KeyId=meta["Arn"], PolicyName="default")["Policy"]
        except AwsError as exc:
            raise NotEvaluable(f"cannot read the key policy of KMS key {meta['Arn']} (kms:GetKeyPolicy: "
                               f"{exc.code})") from None
        policy = parse_document(text)
    return KmsKey(str(meta["Arn"]), manager, policy, bool(meta.get("Enabled", True)))


def log_group(inv: Inventory, name: str) -> LogGroup | None:
    found = inv.paginate("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
    for g in found:
        if g.get("logGroupName") == name:
            return LogGroup(name, str(g.get("arn", "")).removesuffix(":*"))
    return None
