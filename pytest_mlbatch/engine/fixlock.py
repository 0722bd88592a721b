"""One `--fix` at a time per (account, region) for a user on this machine: an exclusive file lock, waited for a
bounded time, under which a fixer re-checks.

Two `--fix` runs started together (two terminals, two CI jobs on one runner) would both see a NAT gateway missing
and both create one: AWS makes names unique for roles, key pairs and security groups, but not for NAT gateways or
Elastic IPs. So a fix is applied only while holding `fix-<account>-<region>.lock` in the user's own lock directory
(`~/.cache/pytest-mlbatch/locks` of the account's passwd entry, mode 0700, refused unless the user owns it and no
one else can write it): not in $TMPDIR, so runs with different TMPDIRs share it, and another local user can neither
pre-create nor hold it. A run that finds the lock held says who holds it and waits at most `timeout` seconds; it
never applies a fix without the lock (FixLockError). Runs on other machines are kept from duplicating by the plan's
tag and client token (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DEFAULT_TIMEOUT = 600.0  # a NAT gateway fix waits up to 10 minutes for the gateway under the lock


class FixLockError(Exception):
    """The fix lock could not be taken: the fix is not applied."""


def lock_dir() -> Path:
    """The user's lock directory, from the passwd entry (not $HOME or $TMPDIR, which differ between runs)."""
    try:
        import pwd

        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):  # pragma: no cover - no passwd entry
        home = Path.home()
    return home / ".cache" / "pytest-mlbatch" / "locks"


def lock_path(account: str | None, region: str | None) -> Path:
    name = f"fix-{account or 'unknown'}-{region or 'none'}.lock"
    return lock_dir() / re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _private_dir(path: Path) -> None:
    """Make the lock directory (0700) and refuse one that is a link, not ours, or writable by others."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise FixLockError(f"cannot make the fix lock directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FixLockError(f"the fix lock directory {path} is not a directory (a link?)")
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise FixLockError(f"the fix lock directory {path} is not private to this user (owner uid {info.st_uid}, "
                           f"mode {stat.filemode(info.st_mode)}); make it 0700 and yours")


def holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it down."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "unknown"
    return text[:200] or "unknown"


@contextlib.contextmanager
def fix_lock(account: str | None, region: str | None, *, timeout: float = DEFAULT_TIMEOUT,
             notify: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the fix lock of one account and region (yields True), waiting at most `timeout` seconds for another
    run to release it; raises FixLockError when it cannot be had."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise FixLockError("--fix needs POSIX file locks (fcntl), which this platform lacks") from None
    path = lock_path(account, region)
    _private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise FixLockError(f"cannot open the fix lock {path}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_uid != os.getuid():
            raise FixLockError(f"the fix lock {path} belongs to another user")
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FixLockError(f"another --fix has held the fix lock {path} for more than {timeout:g} s "
                                       f"({holder(path)}); not fixed") from None
                if not told and notify is not None:
                    notify(f"pytest-mlbatch: waiting up to {timeout:g} s for the fix lock of {account}/{region}, "
                           f"held by {holder(path)}")
                    told = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        try:
            yield True
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
