"""Typed readers of the preflight's options and their ini mirrors, for the plugin's modules."""

from __future__ import annotations

import pytest

DEFAULT_CONCURRENCY = 16  # at most this many AWS calls of one target in flight (AWS throttles per account, region)


def concurrency(config: pytest.Config) -> int:
    """--mlbatch-concurrency, else the ini key, else DEFAULT_CONCURRENCY; 1 means no prefetch."""
    value = config.getoption("mlbatch_concurrency", None) or config.getini("mlbatch_concurrency")
    try:
        return max(1, int(value)) if value else DEFAULT_CONCURRENCY
    except ValueError:
        raise pytest.UsageError(f"mlbatch_concurrency: {value!r} is not a whole number") from None


def allow_unchecked(config: pytest.Config) -> bool:
    """--mlbatch-allow-unchecked or the ini key: a run that checked nothing beyond ENV may pass."""
    if config.getoption("mlbatch_allow_unchecked", False):
        return True
    value = config.getini("mlbatch_allow_unchecked")
    return str(value).strip().lower() in ("1", "true", "yes", "on")
