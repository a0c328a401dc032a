"""Server-sent events: just enough of the WHATWG parsing rules for model APIs."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """OpenAI-style end-of-stream marker."""
        return self.data.strip() == "[DONE]"


async def parse_sse(lines: AsyncIterable[str]) -> AsyncIterator[SSEEvent]:
    """Turn lines (without their line endings) into events.

    A blank line ends an event; `data:` lines of one event join with newlines; lines starting with ":"
    are comments (keep-alives). An event still pending when the lines run out is yielded too: whether
    the stream was complete is for the caller to judge from its own terminator, not from a blank line.
    """
    data: list[str] = []
    event = ""
    last_id: str | None = None
    has_data = False
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if has_data:
                yield SSEEvent(data="\n".join(data), event=event or "message", id=last_id)
            data, event, has_data = [], "", False
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
            has_data = True
        elif field == "event":
            event = value
        elif field == "id":
            last_id = value
        # "retry" and unknown fields are ignored: reconnection is the retry layer's job.
    if has_data:
        yield SSEEvent(data="\n".join(data), event=event or "message", id=last_id)


def aiter_sse(response: httpx.Response) -> AsyncIterator[SSEEvent]:
    """Events of a streaming httpx response."""
    return parse_sse(response.aiter_lines())
