"""Steering: words a person sends to a running session (`m3code steer`, later the TUI).

They go to the session's inbox file, never straight into the event log (which only the running job
writes); the job takes new lines at its next step boundary and logs each as a steering event.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

INBOX_FILE = "inbox.jsonl"


def send(folder: Path, text: str) -> None:
    with open(folder / INBOX_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"ts": time.time(), "text": text}) + "\n")


class Inbox:
    """Reads the inbox from where the job left off (`taken` lines, recovered from the log on resume)."""

    def __init__(self, folder: Path, taken: int = 0) -> None:
        self.path = folder / INBOX_FILE
        self.taken = taken

    def __call__(self) -> list[str]:
        if not self.path.is_file():
            return []
        data = self.path.read_text(encoding="utf-8")
        # A line without its newline is still being written: leave it for next time.
        complete = [line for line in data[: data.rfind("\n") + 1].split("\n") if line.strip()]
        new = complete[self.taken:]
        self.taken = len(complete)
        return [json.loads(line)["text"] for line in new]
