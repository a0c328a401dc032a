"""Where a session's events live on disk, and the writer that appends them durably."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from m3code.config import repo_root
from m3code.session.events import parse_event

EVENTS_FILE = "events.jsonl"


def sessions_dir(workspace: Path) -> Path:
    return repo_root(workspace) / ".m3code" / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class SessionNotFound(Exception):
    pass


def find_session(workspace: Path, session_id: str) -> Path:
    """The folder of a session, by full id or a unique prefix."""
    root = sessions_dir(workspace)
    exact = root / session_id
    if (exact / EVENTS_FILE).is_file():
        return exact
    matches = sorted(p for p in root.glob(f"{session_id}*") if (p / EVENTS_FILE).is_file()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SessionNotFound(f"No session {session_id!r} under {root}. `m3code sessions list` shows them.")
    names = ", ".join(p.name for p in matches)
    raise SessionNotFound(f"Session id {session_id!r} is ambiguous: {names}.")


def read_events(folder: Path) -> Iterator[Any]:
    """Events in order. A torn last line (the process died mid-write) is skipped, never fatal."""
    with open(folder / EVENTS_FILE, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield parse_event(line)
        except ValueError:
            if number >= len(lines) - 2:  # only the last written line may be torn
                return
            raise


class EventLog:
    """Append-only JSONL writer. `fsync` is called at step boundaries by whoever knows where they are."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _ignore_sessions_in_git(folder.parent.parent)
        self.folder = folder
        path = folder / EVENTS_FILE
        self._drop_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the life of the session

    @staticmethod
    def _drop_torn_tail(path: Path) -> None:
        # After a SIGKILL the last line may be half written; appending after it would glue two events.
        if path.is_file() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):
                with open(path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)

    def append(self, event: Any, *, sync: bool = False) -> None:
        self._fh.write(event.model_dump_json() + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


# The file ignores itself too, so a repository shows no stray `.m3code/` until it has a config.toml to commit.
IGNORED = ["sessions/", "worktrees/", "bench/", ".gitignore"]


def _ignore_sessions_in_git(m3code_dir: Path) -> None:
    """Keep session logs, team worktrees and bench ledgers out of the user's commits (and `git add -A`)."""
    ignore = m3code_dir / ".gitignore"
    have = ignore.read_text(encoding="utf-8").split() if ignore.exists() else []
    missing = [entry for entry in IGNORED if entry not in have]
    if missing:
        with open(ignore, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{entry}\n" for entry in missing))

