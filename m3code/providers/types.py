"""The one internal shape of messages, tool calls, usage and stream events.

Every provider adapter translates between this and its wire format, so the agent loop, the session log
and the UI never see a provider's JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]
ThinkingMode = Literal["enabled", "adaptive", "disabled"]
ApiFormat = Literal["openai", "anthropic"]


class ToolCall(BaseModel):
    id: str
    name: str
    # The arguments exactly as the model sent them (a JSON string). Parsing happens in the agent loop so
    # that invalid JSON becomes a tool error the model can see, not a provider failure.
    arguments: str = "{}"


class ImagePart(BaseModel):
    """An image in a message, for multimodal models: its bytes as base64, and where it came from.

    Images go whole into every request and into the session log (events.jsonl), so they are capped where
    they enter: tools/image.py (MAX_IMAGE_BYTES, 5 MB), used by the `image` tool and the app's `@path`.
    """

    media_type: str  # "image/png", "image/jpeg", "image/gif" or "image/webp"
    data: str  # base64 of the file's bytes, without a `data:` prefix
    path: str | None = None  # the file it was read from, relative to the workspace, for display

    @property
    def size(self) -> int:
        """The image's size in bytes (decoded)."""
        padding = len(self.data) - len(self.data.rstrip("="))
        return len(self.data) * 3 // 4 - padding

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"

    def label(self) -> str:
        """How a transcript names it: `[image: shot.png (12 KB)]`."""
        return f"[image: {self.path or self.media_type} ({max(1, round(self.size / 1024))} KB)]"


def tool_images(data: dict[str, Any]) -> list[ImagePart]:
    """The image a tool result's `data` carries ({"image": {media_type, data, path}}, as tools/image.py
    returns it), as message parts: none when it has none."""
    image = data.get("image")
    if not isinstance(image, dict):
        return []
    try:
        return [ImagePart.model_validate(image)]
    except ValueError:
        return []


class Message(BaseModel):
    role: Role
    content: str = ""
    # Reasoning text, for display and for the log. How it goes back to the API lives in `provider_state`.
    reasoning: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # For role == "tool": which call this answers, and whether it is an error.
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    # Images on a user message (the app's `@image.png`) or a tool message (the `image` tool). Adapters send
    # them as image parts, or as a note where the model's profile says it takes no images.
    images: list[ImagePart] = Field(default_factory=list)
    # Wire-level pieces an API requires back verbatim in history: OpenAI-style `reasoning_details`,
    # Anthropic `thinking` blocks with their signatures, or the fact that reasoning came in <think> tags.
    provider_state: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(BaseModel):
    """What the model sees of a tool: its name, description and JSON schema of arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class Completion(BaseModel):
    """One finished assistant turn."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
    # "end_turn" (the model is done), "tool_use" (it wants tools run), "max_tokens", or the raw reason.
    stop_reason: str = "end_turn"


# Stream events: deltas while a turn arrives, then exactly one Done carrying the assembled Completion. `agent` names
# whose stream it is: providers leave it empty and the agent loop fills it in, so the views of a team, whose agents
# stream at the same time, can keep their streams apart.


class TextDelta(BaseModel):
    kind: Literal["text"] = "text"
    text: str
    agent: str = ""


class ReasoningDelta(BaseModel):
    kind: Literal["reasoning"] = "reasoning"
    text: str
    agent: str = ""


class ToolCallDelta(BaseModel):
    kind: Literal["tool_call"] = "tool_call"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    agent: str = ""


class Done(BaseModel):
    kind: Literal["done"] = "done"
    completion: Completion


class Retrying(BaseModel):
    """The call failed and will be tried again: whatever streamed so far for this turn is void."""

    kind: Literal["retrying"] = "retrying"
    attempt: int
    delay: float
    reason: str
    agent: str = ""


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Retrying | Done


class ProviderError(Exception):
    """A model call failed for good (after retries). `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
