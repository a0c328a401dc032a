"""Transcript blocks: one per thing a person reads (a message, a tool card, a notice), each a Rich renderable.

Blocks are plain objects the transcript view renders lazily: `version` changes whenever what a block shows
changes, so the view can keep rendered lines until then. `estimate` guesses the height without rendering,
which is what lets the view lay out 10,000 events while rendering only the ones on screen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text

from m3code.tui.palette import BOLD, ITALIC, Palette

if TYPE_CHECKING:  # the event models (pydantic) load after the first frame, with the job machinery
    from m3code.session.events import ToolResultEvent


def markdown(text: str, pal: Palette) -> RenderableType:
    from rich.markdown import Markdown  # pulls in pygments: not needed for the first frame

    return Markdown(text, code_theme=pal.code_theme, inline_code_lexer="text", inline_code_theme=pal.code_theme)


def summarise_arguments(raw: str) -> str:
    from m3code.render import summarise_arguments as summarise

    return summarise(raw)


def result_summary(event: ToolResultEvent) -> str:
    from m3code.render import result_summary as summary

    return summary(event)

FOLD_LINES = 6  # outputs longer than this are folded
TAIL_LINES = 4  # lines of a folded command output still shown (its end: where results and errors are)
HEAD_DIFF_LINES = 10  # lines of a folded diff still shown
MAX_EXPANDED_LINES = 2000  # an expanded output beyond this is cut: the log keeps all of it
SPINNER = "◐◓◑◒"


def _wrapped_height(text: str, width: int) -> int:
    width = max(10, width)
    return sum(max(1, -(-len(line) // width)) for line in text.split("\n")) if text else 0


def _agent_tag(agent: str, pal: Palette) -> Text:
    return Text(f"[{agent}] ", style=pal.muted) if agent not in ("main", "team") else Text()


class Block:
    foldable = False

    def __init__(self, agent: str = "main") -> None:
        self.agent = agent
        self.version = 0
        self.expanded = False
        self.hidden = False

    def touch(self) -> None:
        self.version += 1

    def toggle(self) -> bool:
        if not self.foldable:
            return False
        self.expanded = not self.expanded
        self.touch()
        return True

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        raise NotImplementedError

    def estimate(self, width: int) -> int:
        return _wrapped_height(self.plain(), width)

    def plain(self) -> str:
        """The block as plain text (for estimates and tests)."""
        raise NotImplementedError


class UserBlock(Block):
    """The person's words: a task, a follow-up, or steering sent while the agent works."""

    def __init__(self, text: str, kind: str = "message") -> None:
        super().__init__()
        self.text = text
        self.kind = kind  # message | steering | queued
        self.taken = False

    def plain(self) -> str:
        return f"› {self.text}"

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        if self.kind == "steering":
            note = " (taken)" if self.taken else " (sent: taken at the next step)"
            return Text.assemble(("↳ steer ", pal.accent), (self.text, (pal.text + BOLD)), (note, pal.muted))
        return Text.assemble(("› ", (pal.accent + BOLD)), (self.text, (pal.text + BOLD)))


class AssistantBlock(Block):
    """An assistant turn: markdown answer, reasoning folded above it."""

    def __init__(self, agent: str = "main", streaming: bool = False) -> None:
        super().__init__(agent)
        self.content = ""
        self.reasoning = ""
        self.streaming = streaming

    @property
    def foldable(self) -> bool:  # type: ignore[override]
        return bool(self.reasoning.strip())

    def plain(self) -> str:
        return self.content

    def estimate(self, width: int) -> int:
        lines = _wrapped_height(self.content.strip(), width) + (1 if self.reasoning.strip() else 0)
        if self.expanded:
            lines += _wrapped_height(self.reasoning.strip(), width)
        return lines + (1 if self.agent not in ("main", "team") else 0)

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        parts: list[RenderableType] = []
        tag = _agent_tag(self.agent, pal)
        if tag:
            parts.append(tag)
        thought = self.reasoning.strip()
        if thought:
            count = thought.count("\n") + 1
            if self.expanded:
                parts.append(Text("▾ thinking", style=(pal.muted + ITALIC)))
                parts.append(Text(thought, style=(pal.muted + ITALIC)))
            else:
                dots = "…" if self.streaming and not self.content else ""
                parts.append(Text(f"▸ thinking{dots} · {count} line{'s' * (count != 1)}", style=(pal.muted + ITALIC)))
        if self.content.strip():
            parts.append(markdown(self.content.strip(), pal))
        return Group(*parts)


class ToolCard(Block):
    """A tool call and, once it is back, its result: command and exit code, or a coloured diff."""

    def __init__(self, call_id: str, name: str, arguments: str, agent: str = "main") -> None:
        super().__init__(agent)
        self.call_id = call_id
        self.name = name
        self.arguments = arguments
        self.result: ToolResultEvent | None = None
        self.started = time.monotonic()
        self.tick = 0  # spinner frame while running
        self.interrupted = False  # the session stopped before the result came

    @property
    def foldable(self) -> bool:  # type: ignore[override]
        return self.result is not None and len(self._body_lines()) > FOLD_LINES

    @property
    def running(self) -> bool:
        return self.result is None

    def _diff(self) -> str:
        return str(self.result.data.get("diff") or "") if self.result else ""

    def _body_lines(self) -> list[str]:
        if self.result is None:
            return []
        diff = self._diff()
        text = diff if diff and not self.result.is_error else self.result.output
        return text.rstrip("\n").split("\n") if text.strip() else []

    def _status(self) -> str:
        if self.result is None and self.interrupted:
            return "interrupted"
        if self.result is None:
            seconds = time.monotonic() - self.started
            return f"running {seconds:.0f}s · esc interrupts" if seconds >= 5 else "running"
        data, parts = self.result.data, []
        if data.get("timed_out"):
            parts.append("timed out")
        elif "exit_code" in data:
            parts.append(f"exit {data['exit_code']}")
        elif self.result.is_error:
            parts.append("error")
        if self.result.duration >= 0.1:
            parts.append(f"{self.result.duration:.1f}s")
        return " · ".join(parts)

    def plain(self) -> str:
        head = f"{self.name} {summarise_arguments(self.arguments)} {self._status()}"
        return "\n".join([head, *self._shown_lines()[0]])

    def estimate(self, width: int) -> int:
        shown, more = self._shown_lines()
        return 1 + len(shown) + (1 if more else 0)

    def _shown_lines(self) -> tuple[list[str], int]:
        """The body lines on screen, and how many are folded away."""
        lines = self._body_lines()
        if self.result is None or not lines:
            return [], 0
        is_command = "exit_code" in self.result.data
        if self.expanded:
            return lines[:MAX_EXPANDED_LINES], max(0, len(lines) - MAX_EXPANDED_LINES)
        if self._diff() and not self.result.is_error:
            return lines[:HEAD_DIFF_LINES], max(0, len(lines) - HEAD_DIFF_LINES)
        if is_command or self.result.is_error:
            if len(lines) <= FOLD_LINES:
                return lines, 0
            return lines[-TAIL_LINES:], len(lines) - TAIL_LINES
        # reads, searches: the summary line says enough until the person opens it
        return [result_summary(self.result)], len(lines)

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        if self.result is None and self.interrupted:
            icon, icon_style = "■", pal.warn
        elif self.result is None:
            icon, icon_style = SPINNER[self.tick % len(SPINNER)], pal.accent
        elif self.result.is_error:
            icon, icon_style = "✗", pal.error
        else:
            icon, icon_style = "✓", pal.ok
        head = Text.assemble(_agent_tag(self.agent, pal), (icon + " ", icon_style), (self.name, (pal.text + BOLD)),
                             ("  " + summarise_arguments(self.arguments), pal.muted), no_wrap=True,
                             overflow="ellipsis")
        status = self._status()
        if status:
            head.append(f"  {status}", style=pal.warn if self.result is None else pal.muted)
        shown, more = self._shown_lines()
        body = Text(no_wrap=False)
        diff = bool(self._diff()) and self.result is not None and not self.result.is_error
        is_command = self.result is not None and "exit_code" in self.result.data
        if more and is_command and not self.expanded:
            body.append(f"  │ … {more} line{'s' * (more != 1)} above · ctrl+o expands\n", style=pal.muted)
        for line in shown:
            body.append("  │ ", style=pal.muted)
            body.append(line + "\n", style=self._line_style(line, pal, diff))
        if more and not (is_command and not self.expanded):
            verb = "cut" if self.expanded else "more"
            hint = "" if self.expanded else " · ctrl+o expands"
            body.append(f"  │ … {more} {verb} line{'s' * (more != 1)}{hint}\n", style=pal.muted)
        body.rstrip()
        return Group(head, body) if body else head

    def _line_style(self, line: str, pal: Palette, diff: bool) -> Style:
        if diff:
            if line.startswith(("+++", "---")):
                return (pal.muted + BOLD)
            if line.startswith("+"):
                return pal.added
            if line.startswith("-"):
                return pal.removed
            if line.startswith("@@"):
                return pal.accent
            return pal.text
        if self.result is not None and self.result.is_error:
            return pal.error
        return pal.muted


class NoticeBlock(Block):
    """Something the app or the job says: an error (calm, not shouting), a retry, a resume, help, cost."""

    def __init__(self, text: str, level: str = "info", detail: str = "", agent: str = "main") -> None:
        super().__init__(agent)
        self.text = text
        self.level = level  # info | dim | warn | error | ok
        self.detail = detail

    @property
    def foldable(self) -> bool:  # type: ignore[override]
        return bool(self.detail)

    def plain(self) -> str:
        return self.text + ("\n" + self.detail if self.detail and self.expanded else "")

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        style = {"warn": pal.warn, "error": pal.error, "ok": pal.ok, "dim": pal.muted}.get(self.level, pal.text)
        mark = {"warn": "! ", "error": "⚠ ", "ok": "✓ ", "dim": ""}.get(self.level, "· ")
        head = Text.assemble(_agent_tag(self.agent, pal), (mark, style), (self.text, style))
        if self.detail:
            if not self.expanded:
                head.append("  ▸ ctrl+o for more", style=pal.muted)
                return head
            return Group(head, Text(self.detail, style=pal.muted))
        return head


class MarkdownBlock(Block):
    """Markdown from the app or the job: help, a team's report, a cost table."""

    def __init__(self, markdown: str, title: str = "") -> None:
        super().__init__()
        self.markdown = markdown
        self.title = title

    def plain(self) -> str:
        return (self.title + "\n" if self.title else "") + self.markdown

    def renderable(self, pal: Palette, width: int) -> RenderableType:
        body = markdown(self.markdown, pal)
        return Group(Text(self.title, style=(pal.accent + BOLD)), body) if self.title else body
