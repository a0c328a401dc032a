"""The typed events of a session. One JSON object per line in events.jsonl.

Persisted events are the whole truth of a session: `--resume` rebuilds the conversation from them.
Live-only events (deltas) go to views as they happen and are not written: the message they add up to is.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from m3code.providers.types import ImagePart, Message, ReasoningDelta, Retrying, TextDelta, ToolCallDelta, Usage


class _Event(BaseModel):
    ts: float = Field(default_factory=time.time)
    # Which agent of the session it concerns: "main" for a solo job; "planner", "producer/<step>",
    # "verifier/<step>" or "team" in a team job.
    agent: str = "main"


class SessionStarted(_Event):
    type: Literal["session_started"] = "session_started"
    session_id: str
    task: str
    workspace: str
    system_prompt: str
    model: str
    base_url: str
    api_format: str
    version: str
    mode: Literal["solo", "team"] = "solo"
    sandbox: str = ""  # the backend commands run in, and its policy


class SessionResumed(_Event):
    type: Literal["session_resumed"] = "session_resumed"
    interrupted_calls: list[str] = Field(default_factory=list)


class UserMessage(_Event):
    type: Literal["user_message"] = "user_message"
    content: str
    images: list[ImagePart] = Field(default_factory=list)  # the app's `@image.png` attachments


class AssistantMessage(_Event):
    type: Literal["assistant_message"] = "assistant_message"
    message: Message
    usage: Usage
    stop_reason: str


class ToolCallStarted(_Event):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: str


class ToolResultEvent(_Event):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    output: str
    is_error: bool = False
    data: dict[str, Any] = Field(default_factory=dict)
    duration: float = 0.0


class Compaction(_Event):
    """Older turns were summarised: `messages` is the whole new history after the system prompt."""

    type: Literal["compaction"] = "compaction"
    summary: str
    messages: list[Message]
    tokens_before: int
    usage: Usage = Field(default_factory=Usage)


class PlanStep(BaseModel):
    id: str
    title: str
    goal: str
    acceptance: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)


class PlanEvent(_Event):
    type: Literal["plan"] = "plan"
    steps: list[PlanStep]
    version: int = 1
    reason: str = ""


StepState = Literal["running", "verifying", "passed", "failed", "blocked"]


class StepEvent(_Event):
    """A step changed state; `commit` is the step's commit (produced, or accepted on the job branch)."""

    type: Literal["step"] = "step"
    step_id: str
    state: StepState
    attempt: int = 1
    commit: str | None = None
    detail: str = ""


class VerdictEvent(_Event):
    type: Literal["verdict"] = "verdict"
    step_id: str  # "final" for the verification of the whole task
    verdict: Literal["PASS", "FAIL", "PARTIAL"]
    findings: str
    attempt: int = 1


class SteeringEvent(_Event):
    """A person's requirement or correction, taken by the team at a step boundary."""

    type: Literal["steering"] = "steering"
    text: str


class ReportEvent(_Event):
    type: Literal["report"] = "report"
    markdown: str


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    fatal: bool = False


class SessionEnded(_Event):
    type: Literal["session_ended"] = "session_ended"
    status: Literal["done", "failed", "budget", "interrupted"]
    exit_code: int
    final_answer: str = ""
    reason: str = ""
    usage: Usage = Field(default_factory=Usage)


# --- GitHub / CI (m3code/github) ---
class Checkpoint(_Event):
    """A git commit holding the job's state: where it started (`start`), or work committed for it (`commit`)."""

    type: Literal["checkpoint"] = "checkpoint"
    kind: Literal["start", "commit"] = "commit"
    commit: str
    branch: str | None = None  # None: HEAD was detached
    message: str = ""


class PullRequestEvent(_Event):
    """The job's branch was pushed and its pull request opened (or an open one updated)."""

    type: Literal["pull_request"] = "pull_request"
    action: Literal["created", "updated"]
    repo: str
    number: int
    url: str
    branch: str
    base: str
    draft: bool = False
# --- end GitHub / CI ---


PersistedEvent = Annotated[
    SessionStarted | SessionResumed | UserMessage | AssistantMessage | ToolCallStarted | ToolResultEvent
    | Compaction | ErrorEvent | SessionEnded | PlanEvent | StepEvent | VerdictEvent | SteeringEvent | ReportEvent
    | Checkpoint | PullRequestEvent,
    Field(discriminator="type"),
]
# What views receive: everything persisted, plus the live deltas of a streaming turn.
LiveEvent = PersistedEvent | TextDelta | ReasoningDelta | ToolCallDelta | Retrying

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(PersistedEvent)


def parse_event(line: str) -> Any:
    return EVENT_ADAPTER.validate_json(line)
