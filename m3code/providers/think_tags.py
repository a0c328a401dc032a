"""Split `<think>…</think>` reasoning out of content that arrives in arbitrary pieces."""

from __future__ import annotations

from typing import Literal

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

Piece = tuple[Literal["text", "reasoning"], str]


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def wrap_think(reasoning: str, content: str) -> str:
    """The content as MiniMax produced it, reasoning back in its tags (the API wants it in history)."""
    return f"{OPEN_TAG}\n{reasoning}\n{CLOSE_TAG}\n\n{content}"


class ThinkTagSplitter:
    """Feed content pieces, get ("text" | "reasoning", str) pieces back.

    A tag split across two pieces is held back until it can be recognised, so nothing of a tag ever
    leaks into the text.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._in_think = False
        # Whitespace between "</think>" and the answer is formatting, not content.
        self._trim_text = False
        self.saw_tags = False

    def feed(self, chunk: str) -> list[Piece]:
        out: list[Piece] = []
        buf = self._pending + chunk
        while True:
            tag = CLOSE_TAG if self._in_think else OPEN_TAG
            at = buf.find(tag)
            if at < 0:
                keep = _partial_tag_suffix(buf, tag)
                self._emit(out, buf[: len(buf) - keep])
                self._pending = buf[len(buf) - keep :]
                return out
            self._emit(out, buf[:at])
            buf = buf[at + len(tag) :]
            self.saw_tags = True
            self._in_think = not self._in_think
            if not self._in_think:
                self._trim_text = True

    def flush(self) -> list[Piece]:
        """What is still held back at the end of the content (an unfinished tag is just text)."""
        out: list[Piece] = []
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def _emit(self, out: list[Piece], text: str) -> None:
        if self._in_think:
            if text:
                out.append(("reasoning", text))
            return
        if self._trim_text:
            text = text.lstrip()
            if not text:
                return
            self._trim_text = False
        if text:
            out.append(("text", text))


def split_think(content: str) -> tuple[str, str, bool]:
    """(text, reasoning, saw_tags) of a whole content string."""
    splitter = ThinkTagSplitter()
    pieces = splitter.feed(content) + splitter.flush()
    text = "".join(t for kind, t in pieces if kind == "text")
    reasoning = "".join(t for kind, t in pieces if kind == "reasoning")
    return text, reasoning.strip(), splitter.saw_tags
