"""What goes into the model's context: the system prompt, project instructions, and compaction."""

from __future__ import annotations

import json
from pathlib import Path

from m3code.providers.types import Message

INSTRUCTIONS_FILE = "AGENTS.md"

SYSTEM_PROMPT = """\
You are m3code, a coding agent working in the repository at {workspace}.
You act through tools: read and search before you change code, make the smallest change that fully solves
the task, and run the project's tests or the commands that prove your change works. Paths are relative to
the workspace. When a tool returns an error, read it and fix the call instead of repeating it.
When the task is done, stop calling tools and answer with a short account of what you changed and how you
checked it. If you cannot finish, say what is left and why.
"""


def find_instructions(workspace: Path) -> list[Path]:
    """AGENTS.md files from the filesystem root down to the workspace: outer ones first, nearest last."""
    found = []
    for folder in (workspace.resolve(), *workspace.resolve().parents):
        candidate = folder / INSTRUCTIONS_FILE
        if candidate.is_file():
            found.append(candidate)
    return list(reversed(found))


def build_system_prompt(workspace: Path) -> str:
    parts = [SYSTEM_PROMPT.format(workspace=workspace)]
    for path in find_instructions(workspace):
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if text:
            parts.append(f"# Project instructions from {path}\n\n{text}")
    return "\n\n".join(parts)


def estimate_tokens(messages: list[Message]) -> int:
    """A cheap, provider-free size estimate (about 4 characters a token), for deciding when to compact."""
    chars = 0
    for m in messages:
        chars += len(m.content) + len(m.reasoning) + 16
        chars += sum(len(c.name) + len(c.arguments) for c in m.tool_calls)
    return chars // 4


SUMMARY_PROMPT = """\
The conversation so far is about to be cut to save context. Write a summary that lets you carry on the task
without the cut part: what the task is, what has been done (files changed and how), what was learned
(commands, test results, errors), and what remains to do next. Be specific: file paths, function names,
exact commands. Answer with the summary only."""


def split_for_compaction(messages: list[Message], keep_recent: int) -> tuple[list[Message], list[Message]]:
    """Split history into (old, recent) at a turn boundary so no tool result loses its call.

    The recent part starts at an assistant message, and keeps at least `keep_recent` messages when there
    are that many.
    """
    cut = max(1, len(messages) - keep_recent)
    while cut > 1 and messages[cut].role != "assistant":
        cut -= 1
    return messages[:cut], messages[cut:]


def render_for_summary(messages: list[Message]) -> str:
    lines = []
    for m in messages:
        if m.role == "tool":
            lines.append(f"[tool result {m.name}]{' (error)' if m.is_error else ''}\n{m.content[:4000]}")
        elif m.role == "assistant":
            calls = "".join(f"\n[call {c.name} {json.dumps(c.arguments)[:1000]}]" for c in m.tool_calls)
            lines.append(f"[assistant]\n{m.content}{calls}")
        else:
            lines.append(f"[{m.role}]\n{m.content}")
    return "\n\n".join(lines)
