"""Complete a target's scope from AWS Batch: queue -> compute environments -> network and roles;
job definition -> image, roles and resources. Failures become problems, never a crash."""

from __future__ import annotations

from .inventory import Inventory
from .scope import Scope


def discover(scope: Scope, inventory: Inventory) -> None:
    """Fill what the config left out. (Filled in by the Batch area; the foundation discovers nothing.)"""
    del scope, inventory
