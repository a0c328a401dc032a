"""The app: transcript, team panel, input and status bar around one job controller."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Static

from m3code.tui.blocks import Block, NoticeBlock, ToolCard, UserBlock
from m3code.tui.history import History
from m3code.tui.mentions import prepare
from m3code.tui.options import AppOptions, default_theme
from m3code.tui.palette import Palette
from m3code.tui.panels import StatusBar, StatusInfo, TeamPanel
from m3code.tui.prompt import PromptArea, PromptBox
from m3code.tui.screens import ApprovalScreen
from m3code.tui.transcript import Transcript

if TYPE_CHECKING:  # loaded after the first frame (pydantic, httpx, git): see M3App.core
    from m3code.config import Settings
    from m3code.tui.approvals import Answer, ApprovalGate
    from m3code.tui.feed import Feed
    from m3code.tui.job import JobController, JobOutcome

MIN_WIDTH, MIN_HEIGHT = 40, 10
TICK = 0.5  # seconds between spinner frames and elapsed-time updates of running tool calls

WELCOME = ("m3code — type a task and press enter. Enter while the agent works steers it; ctrl+f queues a "
           "follow-up; esc stops it. /help lists commands.")


@dataclass
class Core:
    """What the app needs the job machinery for; built after the first frame is on screen."""

    settings: Settings
    gate: ApprovalGate
    feed: Feed
    controller: JobController


class M3App(App[int]):
    TITLE = "m3code"
    CSS = """
    Screen { layers: base overlay; }
    #main { height: 1fr; }
    #queued { height: auto; max-height: 3; padding: 0 2; color: $text-muted; display: none; }
    #too-small { layer: overlay; width: 100%; height: 100%; content-align: center middle; display: none;
        background: $background; color: $warning; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - Textual's own declaration
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "interrupt", "Stop", show=False),
        Binding("ctrl+o", "toggle_fold", "Fold/unfold", show=False, priority=True),
        Binding("pageup", "page(-1)", show=False, priority=True),
        Binding("pagedown", "page(1)", show=False, priority=True),
        Binding("ctrl+t", "toggle_team", "Team panel", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, options: AppOptions) -> None:
        super().__init__()
        self.options = options
        self.workspace = options.workspace.resolve()
        self.flags: dict[str, Any] = dict(options.flags)
        self.palette = Palette.from_theme({}, dark=True)
        self.transcript = Transcript(self.palette)
        self.team_panel = TeamPanel()
        self.status = StatusBar()
        self.history = History(options.history_file)
        self.prompt = PromptArea(self.workspace, self.history)
        self._core: Core | None = None
        self.state = "ready"
        self._panels_pending = False
        self.reverted: set[str] = set()  # team step commits /undo reverted

    def _given_flags(self) -> dict[str, Any]:
        return {k: v for k, v in self.flags.items() if v is not None}

    # -- the job machinery, loaded once the first frame is up ------------------------------------------

    @property
    def core(self) -> Core:
        if self._core is None:
            self._core = self._load_core()
        return self._core

    def _load_core(self) -> Core:
        from m3code.config import ConfigFileError, Settings, load_config
        from m3code.tui.approvals import NETWORK, ApprovalGate
        from m3code.tui.feed import Feed
        from m3code.tui.job import JobController

        try:
            settings = load_config(self.workspace, self._given_flags(), self.options.environ).settings
        except ConfigFileError as exc:  # said in place; the defaults stand in until it is fixed
            settings = Settings.model_validate({})
            self.call_later(self.say, f"{exc} (using the defaults until it is fixed)", "error")
        gate = ApprovalGate(self.ask, policy=settings.policy or "workspace-write")
        if settings.network:
            gate.allowed.add(NETWORK)
        feed = Feed(self.transcript.add, self.transcript.changed)
        controller = JobController(self.workspace, self._listen, self._job_done, flags=self.flags,
                                   environ=self.options.environ, wrap_sandbox=gate.wrap)
        return Core(settings, gate, feed, controller)

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def gate(self) -> ApprovalGate:
        return self.core.gate

    @property
    def controller(self) -> JobController:
        return self.core.controller

    @property
    def feed(self) -> Feed:
        return self.core.feed

    @feed.setter
    def feed(self, feed: Feed) -> None:
        self.core.feed = feed

    def new_feed(self) -> Feed:
        from m3code.tui.feed import Feed

        self.transcript.clear()
        self.feed = Feed(self.transcript.add, self.transcript.changed)
        return self.feed

    def _start(self) -> None:
        """After the first frame: load the machinery, reopen the session asked for."""
        self.core  # noqa: B018 - loads it
        if self.options.resume:
            self.open_session(self.options.resume)
        self.update_panels()

    # -- layout ----------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield self.transcript
            yield self.team_panel
        yield Static(id="queued")
        yield PromptBox(self.prompt)
        yield self.status
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.theme = self.options.theme or default_theme(self.options.environ)
        self.theme_changed_signal.subscribe(self, lambda _theme: self._refresh_palette())
        self._refresh_palette()
        self.set_interval(TICK, self._tick)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # tests: not the main thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)
        self.prompt.focus()
        if not self.options.resume:
            self.transcript.add(NoticeBlock(WELCOME, "dim"))
        self.call_after_refresh(self._start)

    def _refresh_palette(self) -> None:
        variables = self.get_css_variables()
        self.palette = Palette.from_theme(variables, self.current_theme.dark, self.palette.version + 1)
        self.transcript.set_palette(self.palette)
        self.update_panels()

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        cover = self.query_one("#too-small", Static)
        cover.display = small
        if small:
            cover.update(f"The terminal is {width}×{height}; m3code needs at least {MIN_WIDTH}×{MIN_HEIGHT}. "
                         "Make it bigger: the session goes on meanwhile.")
        self.update_panels()

    # -- the event stream ------------------------------------------------------------------------------

    def _listen(self, event: Any) -> None:
        if getattr(event, "type", None) == "session_started" and event.mode == "solo":
            self._checkpoint(event.session_id)
        self.feed.apply(event)
        self.update_panels()

    def update_panels(self) -> None:
        """Coalesce panel updates: a burst of streamed deltas repaints them once."""
        if not self._panels_pending and self.is_running:
            self._panels_pending = True
            self.call_later(self._paint_panels)

    def _paint_panels(self) -> None:
        self._panels_pending = False
        if self._core is None:
            return
        team = self.feed.mode == "team"
        self.team_panel.display = team and not self.team_panel.has_class("-hidden")
        if team:
            self.team_panel.show_state(self.feed.team, self.palette)
        self.status.show(self.status_info(), self.feed.totals, self.palette, len(self.controller.queued))
        queued = self.query_one("#queued", Static)
        queued.display = bool(self.controller.queued)
        queued.update("\n".join(f"queued: {q.splitlines()[0][:100]}" for q in self.controller.queued[-3:]))

    def status_info(self) -> StatusInfo:
        from m3code.providers.profiles import profile_for

        s = self.settings
        window = s.context_window or profile_for(s.model).context_window
        return StatusInfo(model=s.model, thinking=s.thinking, sandbox=s.sandbox, policy=self.gate.policy,
                          context_window=window, mode=self.feed.mode if self.controller.session_id else s.mode,
                          state=self.state)

    def _tick(self) -> None:
        if self._core is None:
            return
        for block in self.feed.cards.values():
            block.tick += 1
            block.touch()
            self.transcript.changed(block)

    # -- sending ---------------------------------------------------------------------------------------

    async def on_prompt_area_submitted(self, message: PromptArea.Submitted) -> None:
        text = message.text
        if text.startswith("/"):
            from m3code.tui import commands

            await commands.run(self, text)
            return
        prepared = prepare(text, self.workspace)
        for problem in prepared.problems:
            self.say(problem, "warn")
        if message.queue and self.controller.busy:
            self.controller.queue(prepared.text)
            self.update_panels()
            return
        self.send(prepared.text, shown=text)

    def send(self, text: str, shown: str | None = None) -> None:
        if not self.controller.busy:
            self.reload_settings()
            if self.controller.session_id and self.feed.mode == "solo":
                self._checkpoint(self.controller.session_id)
        kind = self.controller.submit(text)
        if kind == "steering":
            self.feed.sent_steering(shown or text)
        elif kind == "queued":
            self.update_panels()
        else:
            self.state = "working"
            self.transcript.follow = True
        self.update_panels()

    def _checkpoint(self, session_id: str) -> None:
        from m3code.tui.checkpoints import CheckpointError, is_repo, record

        if is_repo(self.workspace):
            try:
                record(self.workspace, session_id)
            except CheckpointError as exc:
                self.say(f"no checkpoint for /undo: {exc}", "dim")

    def _job_done(self, outcome: JobOutcome) -> None:
        self.state = "error" if outcome.error else "ready"
        if outcome.error:
            self.say(outcome.error, "error")
        self.update_panels()

    def reload_settings(self) -> bool:
        from m3code.config import ConfigFileError, load_config

        try:
            self.core.settings = load_config(self.workspace, self._given_flags(), self.options.environ).settings
        except ConfigFileError as exc:
            self.say(str(exc), "error")
            return False
        return True

    # -- approvals -------------------------------------------------------------------------------------

    async def ask(self, action: str, detail: str) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def answered(answer: str | None) -> None:
            if not future.done():
                future.set_result("once" if answer == "once" else "session" if answer == "session" else "deny")

        self.push_screen(ApprovalScreen(action, detail), answered)
        try:
            answer = await future
        except asyncio.CancelledError:  # the job stopped while asking: close the question
            if isinstance(self.screen, ApprovalScreen):
                self.screen.dismiss("deny")
            raise
        said = {"once": "allowed once", "session": "allowed for the session"}.get(answer, "denied")
        self.say(f"{action}: {said}", "dim")
        return answer

    # -- sessions --------------------------------------------------------------------------------------

    def open_session(self, session_id: str) -> bool:
        """Show a stored session from its log; the next message goes on with it."""
        from m3code.session.log import SessionNotFound, find_session, read_events

        try:
            folder = find_session(self.workspace, session_id)
            events = list(read_events(folder))
        except (SessionNotFound, ValueError, OSError) as exc:
            self.say(str(exc), "error")
            return False
        self.new_feed()
        for event in events:
            self.feed.apply(event)
        self.controller.session_id = folder.name
        ended = self.feed.ended
        if ended is None:
            self.say(f"session {folder.name} stopped without finishing (killed?): type to go on, or "
                     f"`/resume {folder.name}` to continue it as it was", "warn")
        self.update_panels()
        return True

    # -- actions ---------------------------------------------------------------------------------------

    def say(self, text: str, level: str = "info", detail: str = "") -> Block:
        return self.feed.add(NoticeBlock(text, level, detail))

    def action_interrupt(self) -> None:
        if self.controller.interrupt():
            self.state = "interrupting"
            self.update_panels()

    def action_toggle_fold(self) -> None:
        self.transcript.toggle_latest()

    def action_page(self, direction: int) -> None:
        t = self.transcript
        t.scroll_to(y=t.scroll_y + direction * max(1, t.scrollable_content_region.height - 2), animate=False)

    def action_toggle_team(self) -> None:
        self.team_panel.toggle_class("-hidden")
        self.update_panels()

    async def action_quit(self) -> None:
        if self.controller.interrupt():
            self.say("stopping the job (the session is saved)…", "dim")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.controller.wait(), timeout=10)
        self.exit(0)

    def _on_sigterm(self) -> None:
        self.call_later(self.action_quit)

    # -- for tests and the tmux check -------------------------------------------------------------------

    def transcript_text(self) -> str:
        return self.transcript.text()

    def blocks_of(self, kind: type[Block]) -> list[Any]:
        return [b for b in self.transcript.blocks if isinstance(b, kind) and not b.hidden]

    @property
    def cards(self) -> list[ToolCard]:
        return self.blocks_of(ToolCard)

    @property
    def user_blocks(self) -> list[UserBlock]:
        return self.blocks_of(UserBlock)
