"""Modal screens: an approval question, the sessions list, and a diff."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from m3code.tui.palette import BOLD, Palette

MAX_DIFF_LINES = 5000


class ApprovalScreen(ModalScreen[str]):  # the answer: once | session | deny
    """The agent wants to do something beyond the sandbox policy: allow once, for the session, or deny."""

    DEFAULT_CSS = """
    ApprovalScreen { align: center middle; }
    ApprovalScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2; }
    ApprovalScreen #detail { color: $text-muted; margin: 1 0; max-height: 8; }
    ApprovalScreen Horizontal { height: auto; }
    ApprovalScreen Button { margin-right: 1; min-width: 10; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o,y", "answer('once')", "Allow once"),
        Binding("s,a", "answer('session')", "Allow for the session"),
        Binding("d,n,escape", "answer('deny')", "Deny"),
    ]

    def __init__(self, action: str, detail: str) -> None:
        super().__init__()
        self.action = action
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"The agent asks for {self.action}.")
            yield Static(Text(self.detail[:2000]), id="detail")
            with Horizontal():
                yield Button("Allow once (o)", id="once", variant="primary")
                yield Button("For this session (s)", id="session")
                yield Button("Deny (d)", id="deny", variant="error")

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(str(event.button.id))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class SessionsScreen(ModalScreen[str | None]):
    """Pick a session to reopen."""

    DEFAULT_CSS = """
    SessionsScreen { align: center middle; }
    SessionsScreen > Vertical { width: 100; max-width: 100%; height: 80%; border: thick $primary;
        background: $surface; padding: 0 1; }
    SessionsScreen OptionList { height: 1fr; border: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def __init__(self, rows: list[str]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sessions (enter reopens, esc closes)")
            yield OptionList(*[Option(row, id=row.split()[0]) for row in self.rows])

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def colour_diff(diff: str, pal: Palette) -> Text:
    out = Text()
    lines = diff.splitlines()
    for line in lines[:MAX_DIFF_LINES]:
        if line.startswith(("+++", "---", "diff --git")):
            style = (pal.text + BOLD)
        elif line.startswith("+"):
            style = pal.added
        elif line.startswith("-"):
            style = pal.removed
        elif line.startswith("@@"):
            style = pal.accent
        else:
            style = pal.muted
        out.append(line + "\n", style=style)
    if len(lines) > MAX_DIFF_LINES:
        out.append(f"… {len(lines) - MAX_DIFF_LINES} more lines\n", style=pal.muted)
    return out


class DiffScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    DiffScreen > Vertical { width: 100%; height: 100%; border: thick $primary; background: $surface; }
    DiffScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, diff: str, palette: Palette) -> None:
        super().__init__()
        self.title_text = title
        self.diff = diff
        self.palette = palette

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text} (esc closes)")
            with VerticalScroll():
                yield Static(colour_diff(self.diff, self.palette))

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
