"""KEY checks: the EC2 key pair exists by key name in the region, and the local private key is its match."""

from __future__ import annotations

import stat

from pytest_mlbatch.analysis import keys
from pytest_mlbatch.engine.context import CheckContext, FixContext, FixPlan, NotFixable
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotApplicable, Resource, failed, passed
from pytest_mlbatch.model.world import near_name


@check(
    id="KEY001", slug="key-pair-exists", title="The EC2 key pair exists in the region", severity="high",
    resource="key_pair", permissions=["ec2:DescribeKeyPairs"],
    rationale="A compute environment naming a key pair that is not in its region cannot launch instances "
              "(InvalidKeyPair.NotFound); key pairs are per region and named by key name, not file name.",
    remediation="Create or import the key pair in this region (`--fix` generates one and imports its public "
                "half), and name it by its key name, not the .pem file name.",
)
def key_pair_exists(ctx: CheckContext, res: Resource) -> Finding:
    pair = ctx.model.key_pairs().get(res.id)
    if pair is not None:
        return passed(f"{res.id} exists in {ctx.region} ({pair.type}, {pair.id or '?'})")
    hint = ""
    if res.id.endswith((".pem", ".key", ".ppk")) or "/" in res.id:
        hint = "; this looks like a file name: give the key pair's name as AWS shows it"
    near = near_name(ctx.model, "key_pair", res.id)  # a courtesy: the answer stands without it
    return failed(f"key pair {res.id!r} does not exist in {ctx.region}{near}{hint}")


@key_pair_exists.fix(summary="generate the key locally, import its public half, write the private key 0600",
                     permissions=["ec2:ImportKeyPair", "ec2:CreateTags"])
def import_key_pair(ctx: CheckContext, res: Resource, finding: Finding) -> FixPlan:
    file_value = res.get("private_key_file")
    if not file_value:
        raise NotFixable("key_pair.private_key_file is not set, so there is nowhere to keep the private key")
    path = ctx.path(file_value)
    kind = ctx.settings.key_type
    reuse = path.exists()
    if reuse:
        try:
            keys.load_private_key(path)
        except (OSError, ValueError) as exc:
            raise NotFixable(f"{path} exists and is not a usable private key ({exc}); it is never overwritten") \
                from None
        action = f"import the public half of the existing {path} as key pair {res.id}"
    else:
        action = f"generate a {kind} key, write it to {path} (0600), import its public half as key pair {res.id}"

    def apply(fx: FixContext) -> None:
        if reuse:
            key = keys.load_private_key(path)
        else:
            key = keys.generate(kind)
            try:
                keys.write_private_key(path, key)
            except FileExistsError:
                raise NotFixable(f"{path} appeared meanwhile; it is never overwritten") from None
            fx.record_file("write private key (0600)", path)
        fx.client("ec2").import_key_pair(
            KeyName=res.id,
            PublicKeyMaterial=keys.public_openssh(key),
            TagSpecifications=fx.tag_specifications("key-pair"),
        )

    return FixPlan(res.id, action, calls=["ec2:ImportKeyPair"],
                   permissions=["ec2:ImportKeyPair", "ec2:CreateTags"], apply=apply,
                   notes=[] if reuse else [f"{path} is created with mode 0600 and never overwritten"])


@check(
    id="KEY002", slug="private-key-matches", title="The local private key matches the key pair",
    severity="medium", resource="key_pair", permissions=["ec2:DescribeKeyPairs"],
    rationale="An SSH key that does not match the instance's key pair (or that ssh refuses because of its "
              "file mode) leaves you unable to debug a stuck instance.",
    remediation="Point key_pair.private_key_file at the private key of this key pair and `chmod 600` it; if "
                "the key is lost, create a new key pair.",
)
def private_key_matches(ctx: CheckContext, res: Resource) -> Finding:
    file_value = res.get("private_key_file")
    if not file_value:
        raise NotApplicable("key_pair.private_key_file is not set")
    path = ctx.path(file_value)
    pair = ctx.model.key_pairs().get(res.id)
    if pair is None:
        raise NotApplicable(f"key pair {res.id} does not exist in {ctx.region} (see KEY001)")
    if not path.is_file():
        return failed(f"private key file {path} does not exist")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode not in (0o600, 0o400):
        return failed(f"{path} has mode {mode:04o}; ssh refuses keys others can read: chmod 600 {path}")
    try:
        key = keys.load_private_key(path)
    except (OSError, ValueError) as exc:
        return failed(str(exc))
    same, formula, local = keys.match(key, pair.fingerprint)
    if same:
        return passed(f"{path} matches {res.id} ({formula})")
    return failed(f"{path} does not match key pair {res.id}: AWS has {pair.fingerprint}, the file "
                  f"gives {local} ({formula})")
