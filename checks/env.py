"""ENV checks: credentials resolve, a known region is set, the Docker daemon answers."""

from __future__ import annotations

from pytest_mlbatch.engine.context import CheckContext
from pytest_mlbatch.engine.registry import check
from pytest_mlbatch.findings import Finding, NotEvaluable, Resource, failed, passed


@check(
    id="ENV001", slug="credentials", title="AWS credentials resolve and STS answers", severity="critical",
    resource="target", permissions=["sts:GetCallerIdentity"],
    rationale="Every other check and every fix needs working credentials for the right account; a job scheduled "
              "from the wrong account finds none of its resources.",
    remediation="Set AWS_PROFILE (or --aws-profile), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
                "`aws sso login`; make sure account_id names the account you mean.",
)
def credentials(ctx: CheckContext, res: Resource) -> Finding:
    ident = ctx.model.identity()
    if ident.credentials_problem is not None:
        return failed(f"no usable AWS credentials: {ident.credentials_problem}")
    expected = ctx.target.spec.account_id
    if expected and ident.account != expected:
        return failed(f"credentials are for account {ident.account}, config expects {expected}")
    return passed(f"account {ident.account} as {ident.arn}")


@check(
    id="ENV002", slug="region", title="A known AWS region is resolved", severity="critical",
    resource="target", permissions=[],
    rationale="Key pairs, images, subnets and Batch resources are regional: checking the wrong region checks "
              "the wrong things.",
    remediation="Set `region:` in the config, --aws-region, AWS_REGION, or a region in your AWS profile.",
)
def region(ctx: CheckContext, res: Resource) -> Finding:
    spec = ctx.target.spec
    if not spec.region:
        return failed("no AWS region set (config, --aws-region, AWS_REGION/AWS_DEFAULT_REGION or the profile)")
    if not ctx.model.known_region(spec.region):  # the list that decides which targets' region checks run
        return failed(f"{spec.region!r} (from {spec.region_source}) is not a known AWS region")
    return passed(f"{spec.region} (from {spec.region_source})")


@check(
    id="ENV003", slug="docker-daemon", title="The Docker daemon answers", severity="high",
    resource="docker", permissions=[], needs_docker=True,
    rationale="Comparing the local image with the registry, pulling it, and pushing it all need a Docker daemon.",
    remediation="Start Docker (or set DOCKER_HOST to a daemon you can reach) and check `docker info` works.",
)
def docker_daemon(ctx: CheckContext, res: Resource) -> Finding:
    try:
        client = ctx.docker()
    except NotEvaluable as exc:
        return failed(str(exc))
    version = client.version()
    return passed(f"Docker {version.get('Version', '?')} ({version.get('Os', '?')}/{version.get('Arch', '?')})")
