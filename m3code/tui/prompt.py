"""The input: multi-line, with history, and completion of slash commands and `@path` mentions.

Enter sends (steering while the agent works); alt+enter, ctrl+enter or ctrl+f queue a follow-up for
when it is done; shift+enter or ctrl+j start a new line. Up on the first line and down on the last walk
the history. While completions show, up/down choose, tab or enter take one, esc closes them.
"""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, TextArea
from textual.widgets.option_list import Option

from m3code.tui.completion import Candidate, PathIndex, command_candidates, mention_at
from m3code.tui.history import History

SEND_KEYS = {"enter"}
QUEUE_KEYS = {"alt+enter", "ctrl+enter", "ctrl+f"}
NEWLINE_KEYS = {"shift+enter", "ctrl+j"}


class PromptArea(TextArea):
    DEFAULT_CSS = """
    PromptArea { height: auto; min-height: 3; max-height: 10; border: tall $primary 40%; padding: 0 1; }
    PromptArea:focus { border: tall $primary; }
    """

    class Submitted(Message):
        def __init__(self, text: str, queue: bool) -> None:
            super().__init__()
            self.text = text
            self.queue = queue

    def __init__(self, workspace: Path, history: History, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", show_line_numbers=False, **kwargs)  # type: ignore[arg-type]
        self.inputs = history
        self.paths = PathIndex(workspace)
        self.candidates: list[Candidate] = []
        self.popup: OptionList | None = None

    # -- sending ---------------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        typed_in_full = any(c.insert == self.text.strip().split(" ")[-1] for c in self.candidates)
        if self.candidates and (key == "tab" or (key == "enter" and not typed_in_full)):
            self._stop(event)
            self.accept_completion()
            return
        if self.candidates and key == "escape":
            self._stop(event)
            self.show_candidates([])
            return
        if key in SEND_KEYS | QUEUE_KEYS:
            self._stop(event)
            self.send(queue=key in QUEUE_KEYS)
            return
        if key in NEWLINE_KEYS:
            self._stop(event)
            self.insert("\n")
            return
        await super()._on_key(event)

    @staticmethod
    def _stop(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    def send(self, queue: bool = False) -> None:
        text = self.text.strip()
        if not text:
            return
        self.inputs.add(text)
        self.clear()
        self.show_candidates([])
        self.post_message(self.Submitted(text, queue))

    # -- history ---------------------------------------------------------------------------------------

    def action_cursor_up(self, select: bool = False) -> None:
        if self.candidates and self.popup is not None:
            self.popup.action_cursor_up()
        elif self.cursor_at_first_line and not select:
            self._recall(self.inputs.back(self.text))
        else:
            super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if self.candidates and self.popup is not None:
            self.popup.action_cursor_down()
        elif self.cursor_at_last_line and not select:
            self._recall(self.inputs.forward())
        else:
            super().action_cursor_down(select)

    def _recall(self, text: str | None) -> None:
        if text is not None:
            self.load_text(text)
            self.move_cursor(self.document.end)

    # -- completion ------------------------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.show_candidates(self.compute_candidates())

    def compute_candidates(self) -> list[Candidate]:
        text = self.text
        row, col = self.cursor_location
        line = self.document.get_line(row)[:col]
        if text.startswith("/"):
            found = command_candidates(text)
        else:
            fragment = mention_at(line)
            found = self.paths.match(fragment) if fragment is not None else []
        word = line.split(" ")[-1]
        return [] if all(c.insert == word for c in found) else found  # typed in full: nothing to offer

    def show_candidates(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates
        popup = self.popup
        if popup is None:
            return
        popup.clear_options()
        if candidates:
            popup.add_options([Option(f"{c.label}  {c.help}".rstrip()) for c in candidates])
            popup.highlighted = 0
        popup.display = bool(candidates)

    def accept_completion(self) -> None:
        if not self.candidates:
            return
        index = self.popup.highlighted if self.popup is not None and self.popup.highlighted is not None else 0
        choice = self.candidates[min(index, len(self.candidates) - 1)]
        text = self.text
        if text.startswith("/") and "\n" not in text:
            head, space, _ = text.rpartition(" ")
            new = (head + space + choice.insert if space else choice.insert) + " "
            self.load_text(new)
            self.move_cursor(self.document.end)
        else:
            row, col = self.cursor_location
            line = self.document.get_line(row)
            fragment = mention_at(line[:col]) or ""
            start = (row, col - len(fragment) - 1)
            self.replace(choice.insert + " ", start, (row, col))
        self.show_candidates(self.compute_candidates() if text.startswith("/") else [])


class PromptBox(Vertical):
    """The completion list above the input."""

    DEFAULT_CSS = """
    PromptBox { height: auto; }
    PromptBox OptionList { display: none; max-height: 8; height: auto; border: none; padding: 0 1; }
    """

    def __init__(self, area: PromptArea) -> None:
        super().__init__()
        self.area = area

    def compose(self) -> ComposeResult:
        popup = OptionList()
        popup.can_focus = False
        self.area.popup = popup
        yield popup
        yield self.area
