"""Images in requests: the note a text-only model gets instead, shared by both wire-format adapters."""

from __future__ import annotations

from m3code.providers.types import ImagePart


def omitted_note(model: str) -> str:
    """What a model whose profile takes no images reads in place of each image."""
    return f"[image omitted: {model} does not accept images]"


def with_notes(text: str, images: list[ImagePart], model: str) -> str:
    """`text` followed by one omission note per image (the whole text when there are no images)."""
    if not images:
        return text
    notes = "\n".join(omitted_note(model) for _ in images)
    return f"{text}\n\n{notes}" if text else notes


def tool_image_caption(call_id: str | None) -> str:
    """The text before an image a tool returned, where the image has to travel in a user message."""
    return f"[image from tool call {call_id or '?'}]"
