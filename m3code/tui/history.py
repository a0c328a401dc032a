"""The input's history: what the person sent before, across sessions, newest last."""

from __future__ import annotations

import json
import os
from pathlib import Path

LIMIT = 500


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "m3code" / "history.jsonl"


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or history_path()
        self.entries: list[str] = self._load()
        self.pos = len(self.entries)
        self.draft = ""

    def _load(self) -> list[str]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines[-LIMIT:]:
            try:
                entries.append(str(json.loads(line)))
            except ValueError:
                continue
        return entries

    def add(self, text: str) -> None:
        if text.strip() and (not self.entries or self.entries[-1] != text):
            self.entries.append(text)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(text) + "\n")
            except OSError:
                pass  # history is a convenience: a read-only home must not break sending
        self.pos = len(self.entries)
        self.draft = ""

    def back(self, current: str) -> str | None:
        if self.pos == 0:
            return None
        if self.pos == len(self.entries):
            self.draft = current
        self.pos -= 1
        return self.entries[self.pos]

    def forward(self) -> str | None:
        if self.pos >= len(self.entries):
            return None
        self.pos += 1
        return self.draft if self.pos == len(self.entries) else self.entries[self.pos]
