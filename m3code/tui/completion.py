"""What the input offers to complete: slash commands, and workspace paths after `@`."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMMANDS: dict[str, str] = {
    "/help": "keys and commands",
    "/model": "show or set the model: /model NAME",
    "/thinking": "enabled | adaptive | disabled",
    "/sandbox": "show or set: /sandbox [local|docker|bwrap|auto] [read-only|workspace-write|full-access]",
    "/team": "new sessions run as an agent team",
    "/solo": "new sessions run as one agent",
    "/compact": "summarise older turns now",
    "/cost": "tokens and cost so far",
    "/sessions": "sessions of this repository",
    "/resume": "reopen a session: /resume [ID]",
    "/new": "start a new session",
    "/diff": "what the session changed",
    "/undo": "revert the last step",
    "/quit": "leave (the session is saved)",
}
ARGUMENTS: dict[str, list[str]] = {
    "/thinking": ["enabled", "adaptive", "disabled"],
    "/sandbox": ["local", "docker", "bwrap", "auto", "read-only", "workspace-write", "full-access"],
}
MENTION = re.compile(r"(?:^|(?<=\s))@([^\s@]*)$")
MAX_FILES = 20_000
SKIP_DIRS = {".git", ".m3code", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
             ".ruff_cache", ".tox", "dist", "build"}


@dataclass(frozen=True)
class Candidate:
    insert: str  # replaces the word being completed
    label: str
    help: str = ""


def command_candidates(text: str) -> list[Candidate]:
    """For input that is one slash word (or a command and its argument)."""
    if not text.startswith("/") or "\n" in text:
        return []
    word, _, rest = text.partition(" ")
    if not _:
        return [Candidate(name, name, help) for name, help in COMMANDS.items() if name.startswith(word)]
    options = ARGUMENTS.get(word, [])
    last = rest.split(" ")[-1]
    return [Candidate(o, o) for o in options if o.startswith(last) and o != last]


class PathIndex:
    """The workspace's files, listed once (git's view when it is a repository) and matched by substring."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            self._files = self._list()
        return self._files

    def _list(self) -> list[str]:
        try:
            out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=self.workspace,
                                 capture_output=True, text=True, timeout=5)
            if out.returncode == 0:
                return sorted(out.stdout.splitlines())[:MAX_FILES]
        except (OSError, subprocess.TimeoutExpired):
            pass
        found: list[str] = []
        for folder, dirs, names in os.walk(self.workspace):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            rel = Path(folder).relative_to(self.workspace)
            found += [str(rel / n) if str(rel) != "." else n for n in names]
            if len(found) > MAX_FILES:
                break
        return sorted(found)

    def match(self, fragment: str, limit: int = 8) -> list[Candidate]:
        frag = fragment.lower()
        hits = [f for f in self.files() if frag in f.lower()]
        # prefer matches at the start of the name, then shorter paths
        hits.sort(key=lambda f: (not Path(f).name.lower().startswith(Path(frag).name), len(f)))
        return [Candidate("@" + f, f) for f in hits[:limit]]


def mention_at(line_before_cursor: str) -> str | None:
    """The `@fragment` being typed at the cursor, if any."""
    found = MENTION.search(line_before_cursor)
    return found.group(1) if found else None
