"""'Did you mean ...?' for a named resource that does not exist, from the names a listing returned (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_names(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The candidates that look like a misspelling of `name` (case-insensitive), best first."""
    pool = sorted({str(c) for c in candidates if c and str(c) != name})
    lowered = {c.lower(): c for c in pool}
    exact_case = lowered.get(name.lower())
    found = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.75)
    out = [lowered[f] for f in found]
    if exact_case and exact_case not in out:
        out.insert(0, exact_case)
    return out[:limit]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'ml-queue'?)', or '' when nothing is close."""
    close = close_names(name, candidates)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
