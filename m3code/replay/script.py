"""What the scripted model server replays: assistant turns, and the failures to stage before them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # A typo in a script ("tool_call", "retry-after") must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class ScriptedToolCall(_Strict):
    id: str | None = None
    name: str
    # A dict is sent as JSON; a string is sent verbatim, so malformed arguments can be scripted.
    arguments: dict[str, Any] | str = Field(default_factory=dict)

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class Fault(_Strict):
    """One failed attempt: an HTTP error status, or a response cut off part-way."""

    status: int | None = None
    retry_after: float | None = None
    body: str | None = None
    # Stream: send this many SSE events, then drop the connection. Non-stream: drop it mid-body.
    cut_after: int | None = None
    # With cut_after: end the response normally instead (no terminator, but no broken connection).
    clean_close: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Fault:
        if (self.status is None) == (self.cut_after is None):
            raise ValueError("a fault needs exactly one of `status` or `cut_after`")
        return self


class ScriptedUsage(_Strict):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0


class Turn(_Strict):
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    # Applied to the first attempts at this turn, one per attempt, in order.
    faults: list[Fault] = Field(default_factory=list)
    # Without it, tokens are estimated at about four characters each.
    usage: ScriptedUsage | None = None
    # Seconds to wait before answering.
    delay: float = 0.0
    # Answer only once this file exists: lets a test freeze the model mid-turn.
    hold_file: str | None = None
    # Characters per streamed piece (small, so tags and JSON get split across events).
    chunk_size: int = Field(default=8, ge=1)
    # Seconds between streamed events.
    event_delay: float = 0.0


AGENT_MARKER = re.compile(r"m3code-agent: (\S+)")


class Script(_Strict):
    # The turns of the one agent of a solo job, or of any agent without a lane of its own.
    turns: list[Turn] = Field(default_factory=list)
    # One lane of turns per agent of a team, keyed by the name its system prompt carries on a line
    # `m3code-agent: NAME`: concurrent agents then each get their own answers in order.
    agents: dict[str, list[Turn]] = Field(default_factory=dict)

    def lanes(self) -> dict[str, list[Turn]]:
        return {"": self.turns, **self.agents}

    def total_turns(self) -> int:
        return sum(len(turns) for turns in self.lanes().values())

    @classmethod
    def load(cls, path: str | Path) -> Script:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
