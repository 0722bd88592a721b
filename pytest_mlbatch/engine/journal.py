"""The append-only record of every change --fix made, in the rootdir's .mlbatch/journal.jsonl."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

# Keys in an API response that identify what was created; nothing else of a response is written down.
ID_SUFFIXES = ("Id", "Arn", "Name", "Uri", "Fingerprint")


def _ids(parsed: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(parsed, dict) or depth > 2:
        return out
    for key, value in parsed.items():
        if key == "ResponseMetadata":
            continue
        if isinstance(value, str) and key.endswith(ID_SUFFIXES):
            out[key] = value
        elif isinstance(value, dict):
            out.update(_ids(value, depth + 1))
    return out


class JournalPathError(OSError):
    """The journal's directory or file is a link (a repository can commit one) or not a plain file."""


class Journal:
    """One JSON line per applied action and per AWS call of a fix; written as it happens, so a fix that
    fails halfway leaves a journal that says what exists now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []

    def check_path(self) -> None:
        """Refuse a journal reached through a link: `.mlbatch` or `journal.jsonl` committed as a symlink would make
        --fix append to wherever it points. Raises JournalPathError."""
        for p in (self.path.parent, self.path):
            if p.is_symlink():
                raise JournalPathError(f"{p} is a symbolic link; the fix journal is never written through a link "
                                       "(remove the link)")
        if self.path.exists() and not self.path.is_file():
            raise JournalPathError(f"{self.path} is not a regular file")

    def _write(self, entry: dict[str, Any]) -> None:
        entry = {"ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
        with self._lock:
            self.entries.append(entry)
            self.check_path()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.check_path()  # (the directory just made, or one that appeared meanwhile)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            fd = os.open(self.path, flags, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")

    def history(self) -> list[dict[str, Any]]:
        """Every entry of the journal file, earlier runs included (unreadable lines are skipped)."""
        try:
            self.check_path()
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except (OSError, JournalPathError):
            return []
        out = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def unfinished(self, plan_id: str) -> list[str]:
        """The calls of plan `plan_id` that an earlier run sent (intent written) without recording an answer:
        it was interrupted (SIGINT, SIGKILL, a crash) mid-call, so what they made may exist, carrying the plan's
        tag, without being in the journal."""
        pending: dict[tuple[str, str, str], str] = {}
        for e in self.history():
            key = (str(e.get("check_id")), str(e.get("resource")), str(e.get("call")))
            if e.get("status") == "intent":
                if e.get("plan") == plan_id:
                    pending[key] = key[2]
            elif key in pending and e.get("status") in ("ok", "failed", "unknown"):
                del pending[key]
        return sorted(set(pending.values()))

    def record_intent(self, check_id: str, resource: str, plan_id: str, call: str, params: dict[str, Any]) -> None:
        """Write-ahead: what is about to be sent (before it is), so an interrupted run leaves a trace to reconcile."""
        self._write({"check_id": check_id, "resource": resource, "plan": plan_id, "call": call, "status": "intent",
                     "params": params})

    def record_call(self, check_id: str, resource: str, call: str, ok: bool, parsed: Any) -> None:
        self._write({"check_id": check_id, "resource": resource, "call": call,
                     "status": "ok" if ok else "failed", "created": _ids(parsed)})

    def record_unanswered(self, check_id: str, resource: str, call: str, detail: str) -> None:
        """A change that got no answer: AWS may or may not have made it; the next run's check will tell."""
        self._write({"check_id": check_id, "resource": resource, "call": call, "status": "unknown",
                     "created": {}, "detail": f"no answer ({detail}); it may or may not have taken effect"})

    def record_local(self, check_id: str, resource: str, action: str, path: str) -> None:
        self._write({"check_id": check_id, "resource": resource, "call": f"local:{action}", "status": "ok",
                     "created": {"path": path}})

    def record_outcome(self, check_id: str, resource: str, action: str, status: str, detail: str = "") -> None:
        self._write({"check_id": check_id, "resource": resource, "action": action, "status": status,
                     "detail": detail})
