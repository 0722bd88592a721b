"""One `--fix` at a time per (account, region) on this machine: an exclusive file lock, under which a fixer re-checks.

Two `--fix` runs started together (two terminals, two CI jobs on one runner) would both see a NAT gateway missing
and both create one: AWS makes names unique for roles, key pairs and security groups, but not for NAT gateways or
Elastic IPs. So a fix is applied only while holding `pytest-mlbatch-<uid>-fix-<account>-<region>.lock` in the temp
directory, after reading AWS again under the lock: the run that waited sees the other's fix and creates nothing.
POSIX `flock`; where it is missing (Windows) or the file cannot be opened, runs are not serialized (`locked` False).
Runs on different machines are not serialized either (docs/reliability.md says so).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lock_path(account: str | None, region: str | None) -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    name = f"pytest-mlbatch-{uid}-fix-{account or 'unknown'}-{region or 'none'}.lock"
    return Path(tempfile.gettempdir()) / re.sub(r"[^A-Za-z0-9._-]", "_", name)


@contextlib.contextmanager
def fix_lock(account: str | None, region: str | None) -> Iterator[bool]:
    """Hold the machine-wide fix lock of one account and region; yields whether it is held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(lock_path(account, region), flags, 0o600)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
