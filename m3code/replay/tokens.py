"""Small helpers shared by both wire formats: usage estimates and cutting text into stream pieces."""

from __future__ import annotations

import json
from typing import Any

from m3code.replay.script import ScriptedUsage, Turn


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def estimate_usage(turn: Turn, prompt: Any) -> ScriptedUsage:
    """The scripted usage, else about four characters per token."""
    if turn.usage is not None:
        return turn.usage
    out_chars = (
        len(turn.content) + len(turn.reasoning) + sum(len(c.arguments_text()) for c in turn.tool_calls)
    )
    return ScriptedUsage(
        input_tokens=max(1, len(json.dumps(prompt)) // 4),
        output_tokens=max(1, out_chars // 4),
    )
