"""What a check sees (CheckContext) and what a fixer may use (FixContext). Neither makes boto3 clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inventory import Inventory
from .journal import Journal
from .model import Resource
from .resources import resources_for
from .scope import Scope

if TYPE_CHECKING:
    from .config import Settings
    from .registry import Check
    from .runtime import Runtime
    from .target import Target

MANAGED_TAG = ("pytest-mlbatch:managed", "true")


@dataclass
class CheckContext:
    runtime: Runtime
    target: Target
    check: Check

    @property
    def inventory(self) -> Inventory:
        return self.target.inventory

    @property
    def scope(self) -> Scope:
        return self.target.scope()

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def region(self) -> str | None:
        return self.target.region

    @property
    def account(self) -> str | None:
        return self.target.account

    @property
    def rootdir(self) -> Path:
        return self.runtime.rootdir

    def docker(self) -> Any:
        """The Docker SDK client (DOCKER_HOST respected); raises NotEvaluable if the daemon does not answer."""
        return self.runtime.docker()

    def resources(self, kind: str) -> list[Resource]:
        """Every resource of a kind in this target: what a check batches its inventory queries over."""
        found = resources_for(kind, self.scope, self.target.label)
        return [] if isinstance(found, str) else found

    def path(self, value: str) -> Path:
        """A user-given path: ~ expanded, relative paths against the rootdir."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.rootdir / p


@dataclass
class FixContext(CheckContext):
    journal: Journal
    resource: Resource

    def client(self, service: str, region: str | None = None) -> Any:
        """A guarded client: only create/authorize/attach/import/put/tag calls pass, each one journaled."""
        return self.inventory.client(service, region)

    @property
    def tags(self) -> dict[str, str]:
        return {**self.settings.fix_tags, MANAGED_TAG[0]: MANAGED_TAG[1]}

    def tag_list(self, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
        return [{key: k, value: v} for k, v in sorted(self.tags.items())]

    def tag_specifications(self, resource_type: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list()}]

    def record_file(self, action: str, path: Path) -> None:
        self.journal.record_local(self.check.id, self.resource.id, action, str(path))
