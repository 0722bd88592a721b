"""One (account, region) to check: its boto3 session (profile or assumed role), inventory, identity and scope."""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import boto3

from pytest_mlbatch.aws.inventory import AwsError, Inventory, classify, client_config
from pytest_mlbatch.config import Settings, TargetConfig
from pytest_mlbatch.model.scope import Scope


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition where EC2 or Batch runs, from botocore's endpoint data (no AWS call)."""
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        for service in ("ec2", "batch"):
            regions.update(session.get_available_regions(service, partition_name=partition))
    return frozenset(regions)


def region_problem(region: str | None) -> str | None:
    """Why a target's region checks cannot run (no region, or one that is not an AWS region), else None."""
    if not region:
        return "no AWS region resolved (see ENV002)"
    if region not in known_regions():
        return f"{region!r} is not an AWS region (see ENV002): its region checks do not run"
    return None


@dataclass(frozen=True)
class TargetSpec:
    """Where to look, before any AWS call: region (and how it was resolved), profile, role to assume."""

    label: str
    region: str | None
    region_source: str
    profile: str | None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    account_id: str | None = None


def resolve_targets(settings: Settings, cli_region: str | None, cli_profile: str | None) -> list[TargetSpec]:
    """The config's targets (or one default target), each with its region resolved and its source named."""
    entries = settings.targets or (TargetConfig(),)
    specs: list[TargetSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        profile = cli_profile or entry.profile or settings.profile
        region, source = _region(settings, entry, i, cli_region, profile)
        account = entry.account_id or (entry.role_arn.split(":")[4] if entry.role_arn else None)
        label = region or "no-region"
        if account and (len(entries) > 1 or entry.role_arn):
            label = f"{account}/{label}"
        base, n = label, 2
        while label in seen:
            label, n = f"{base}#{n}", n + 1
        seen.add(label)
        specs.append(TargetSpec(label, region, source, profile, entry.role_arn, entry.external_id,
                                entry.session_name, account or settings.account_id))
    return specs


def _region(settings: Settings, entry: TargetConfig, index: int, cli: str | None,
            profile: str | None) -> tuple[str | None, str]:
    if cli:
        return cli, "--aws-region"
    if entry.region:
        return entry.region, f"targets[{index}].region"
    if settings.region:
        return settings.region, "config region"
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var):
            return os.environ[var], f"{var} environment variable"
    try:
        found = boto3.Session(profile_name=profile).region_name
    except Exception:
        found = None
    if found:
        return found, f"profile {profile or 'default'}"
    return None, "not set"


_loader_lock = threading.Lock()
_shared_loader: Any = None


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 session whose botocore data loader (the parsed service models, several MB for EC2) is shared by every
    session of the process: 20 regions or 100 accounts parse each model once, not once per target, which keeps
    client creation and the garbage collector's work (pytest collects at exit) from growing with the targets."""
    import botocore.loaders
    import botocore.session

    global _shared_loader
    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = botocore.loaders.create_loader()
        core = botocore.session.get_session()
        core.register_component("data_loader", _shared_loader)
        session = boto3.Session(botocore_session=core, **kwargs)
        if kwargs.get("profile_name"):
            core.get_scoped_config()  # a missing profile raises ProfileNotFound here, as boto3.Session does alone
        paths = _shared_loader.search_paths  # boto3 appends its own data path each time: keep one of each
        paths[:] = list(dict.fromkeys(paths))
    return session


class Target:
    """A target at run time. Everything is lazy: nothing talks to AWS until a check asks."""

    def __init__(self, spec: TargetSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self._lock = threading.RLock()
        self._inventory: Inventory | None = None
        self._session_error: AwsError | None = None
        self._scope: Scope | None = None
        self._preloaded: dict[str, Any] = {}
        self._scope_lock = threading.Lock()
        self._ahead: Executor | None = None
        self._in_flight: int | None = None

    def use_concurrency(self, pool: Executor | None, in_flight: int | None) -> None:
        """The pool the inventory's read_ahead uses and the most AWS calls in flight at once (None, None: reads
        are made one after the other, as the checks ask)."""
        with self._lock:
            self._ahead, self._in_flight = pool, in_flight
            if self._inventory is not None:
                self._inventory.ahead = pool
                self._inventory.limit_in_flight(in_flight)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def region(self) -> str | None:
        return self.spec.region

    def _make_session(self) -> boto3.Session:
        try:
            base = new_session(profile_name=self.spec.profile, region_name=self.spec.region)
        except Exception as exc:
            raise classify("sts:GetCallerIdentity", exc) from None
        if not self.spec.role_arn:
            return base
        return self._assume_role(base)

    def _assume_role(self, base: boto3.Session) -> boto3.Session:
        """A session on the role's credentials, refreshed by botocore before they expire (long runs over many
        accounts). The first AssumeRole happens here, so a refusal is this target's error, named as such."""
        import botocore.credentials

        assert self.spec.role_arn is not None
        params: dict[str, Any] = {
            "RoleArn": self.spec.role_arn,
            "RoleSessionName": self.spec.session_name or "pytest-mlbatch",
        }
        if self.spec.external_id:
            params["ExternalId"] = self.spec.external_id
        try:
            sts = base.client("sts", region_name=self.spec.region, config=client_config())
            refresh = botocore.credentials.create_assume_role_refresher(sts, params)
            metadata = refresh()
        except Exception as exc:
            err = classify("sts:AssumeRole", exc)
            err.kind = "assume-role"
            err.detail = f"could not assume {self.spec.role_arn}: {err.code}: {err.detail}"
            raise err from None
        credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=refresh, method="assume-role")
        session = new_session(region_name=self.spec.region)
        # botocore has no public setter; this is how assume-role helpers do it
        session._session._credentials = credentials
        return session

    @property
    def inventory(self) -> Inventory:
        """The target's inventory; raises AwsError (kind credentials / assume-role) if no session can be made."""
        with self._lock:
            if self._inventory is None and self._session_error is None:
                try:
                    self._inventory = Inventory(self._make_session(), self.spec.region, label=self.label)
                    self._inventory.ahead = self._ahead
                    self._inventory.limit_in_flight(self._in_flight)
                    self._inventory.preload(self._preloaded)
                except AwsError as exc:
                    self._session_error = exc
            if self._session_error is not None:
                raise self._session_error
            assert self._inventory is not None
            return self._inventory

    def reads_in_flight(self) -> list[tuple[str, str, float]]:
        """(operation, region, seconds so far) of this target's AWS reads in flight (none before any was made)."""
        with self._lock:
            inventory = self._inventory
        return inventory.reads_in_flight() if inventory is not None else []

    def identity(self) -> dict[str, Any]:
        """STS GetCallerIdentity, once. Raises AwsError."""
        result: dict[str, Any] = self.inventory.call("sts", "get_caller_identity")
        return result

    @property
    def account(self) -> str | None:
        try:
            return str(self.identity()["Account"])
        except AwsError:
            return self.spec.account_id

    def scope(self) -> Scope:
        """Config values completed by discovery (once). Its own lock, so identity and other calls of this target
        can proceed while discovery runs."""
        with self._scope_lock:
            if self._scope is None:
                scope = Scope.from_settings(self.settings)
                try:
                    inventory = self.inventory
                except AwsError:
                    inventory = None
                if inventory is not None and not region_problem(self.spec.region):
                    from pytest_mlbatch.aws.discovery import discover

                    try:
                        discover(scope, inventory)
                    except AwsError as exc:
                        scope.problems.append(("discovery", str(exc), "error"))
                    except Exception as exc:
                        scope.problems.append(("discovery", f"{type(exc).__name__}: {exc}", "error"))
                self._scope = scope
            return self._scope

    def release(self) -> None:
        """Drop the inventory (clients, cached answers) at the end of a run, so pytest's collections at exit have
        little left to walk (botocore clients hold reference cycles, so only the garbage collector frees them)."""
        with self._lock:
            self._inventory = None
            self._preloaded = {}

    # -- sharing with xdist workers --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What an xdist worker needs to skip this target's discovery and identity: scope and answers so far."""
        with self._lock:
            return {
                "scope": self._scope,
                "session_error": self._session_error,
                "answers": self._inventory.snapshot() if self._inventory is not None else {},
            }

    def preload(self, data: dict[str, Any]) -> None:
        """Take a controller's snapshot: its scope, its session error, and its answers (served from cache)."""
        with self._lock:
            if data.get("scope") is not None:
                self._scope = data["scope"]
            if data.get("session_error") is not None:
                self._session_error = data["session_error"]
            self._preloaded = dict(data.get("answers") or {})
            if self._inventory is not None:
                self._inventory.preload(self._preloaded)
