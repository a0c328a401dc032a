"""The app's reading of the event stream: transcript blocks, the team's state, and the running totals.

The same code takes live events from a running job and stored events from a session's log, so a resumed
session looks exactly as it did when it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from m3code.providers.types import ReasoningDelta, Retrying, TextDelta, Usage
from m3code.session.events import (
    AssistantMessage,
    Compaction,
    ErrorEvent,
    PlanEvent,
    PlanStep,
    PullRequestEvent,
    ReportEvent,
    SessionEnded,
    SessionResumed,
    SessionStarted,
    SteeringEvent,
    StepEvent,
    ToolCallStarted,
    ToolResultEvent,
    UserMessage,
    VerdictEvent,
)
from m3code.tui.blocks import AssistantBlock, Block, MarkdownBlock, NoticeBlock, ToolCard, UserBlock


@dataclass
class TeamState:
    """What the team panel shows: the plan, each step's state, who runs, the latest verdicts."""

    version: int = 0
    steps: list[PlanStep] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # step id -> pending | running | verifying | ...
    attempts: dict[str, int] = field(default_factory=dict)
    verdicts: list[VerdictEvent] = field(default_factory=list)

    def running(self) -> list[str]:
        """The agents at work now: a producer per running step, a verifier per step being verified."""
        who = {"running": "producer", "verifying": "verifier"}
        return [f"{who[st]}/{sid}" for sid, st in self.states.items() if st in who]


@dataclass
class Totals:
    usage: Usage = field(default_factory=Usage)
    last_prompt_tokens: int = 0  # the size of the latest request: how full the context is
    turns: int = 0


class Feed:
    """Turns events into blocks (handed to `add`; `changed` when one already shown changes)."""

    def __init__(self, add: Callable[[Block], None], changed: Callable[[Block], None]) -> None:
        self._add = add
        self._changed = changed
        self.team = TeamState()
        self.totals = Totals()
        self.mode = "solo"
        self.session_id: str | None = None
        self.model = ""
        self.cards: dict[str, ToolCard] = {}
        self.streams: dict[str, AssistantBlock] = {}  # the turn each agent is streaming (a team streams several)
        self.steering_sent: list[UserBlock] = []
        self.ended: SessionEnded | None = None
        self.task_shown = False

    def add(self, block: Block) -> Block:
        self._add(block)
        return block

    # -- the stream ------------------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            self._delta(event)
        elif isinstance(event, Retrying):
            self._close_stream(event.agent or "main", void=True)
            self.add(NoticeBlock(f"↻ model call failed ({event.reason}); retry {event.attempt} in "
                                 f"{event.delay:.1f}s", "dim"))
        elif isinstance(event, SessionStarted):
            self.session_id, self.mode, self.model, self.ended = event.session_id, event.mode, event.model, None
            self.add(NoticeBlock(f"session {event.session_id} · {event.model} · {event.mode}", "dim"))
        elif isinstance(event, SessionResumed):
            self.ended = None
            n = len(event.interrupted_calls)
            self.add(NoticeBlock("resumed" + (f"; {n} interrupted call(s) reported to the model" if n else ""),
                                 "dim"))
        elif isinstance(event, UserMessage):
            if event.agent == "main":
                self.add(UserBlock(event.content))
        elif isinstance(event, AssistantMessage):
            self._assistant(event)
        elif isinstance(event, ToolCallStarted):
            card = ToolCard(event.call_id, event.name, event.arguments, agent=event.agent)
            self.cards[event.call_id] = card
            self.add(card)
        elif isinstance(event, ToolResultEvent):
            self._result(event)
        elif isinstance(event, SteeringEvent):
            self._steering(event)
        elif isinstance(event, Compaction):
            self.totals.usage = self.totals.usage + event.usage
            self.add(NoticeBlock(f"… compacted the history ({event.tokens_before} tokens) into a summary", "dim",
                                 detail=event.summary, agent=event.agent))
        elif isinstance(event, ErrorEvent):
            self._close_stream(event.agent, void=True)
            self.add(NoticeBlock(event.message, "error" if event.fatal else "warn", agent=event.agent))
        elif isinstance(event, (PlanEvent, StepEvent, VerdictEvent)):
            self._team_event(event)
        elif isinstance(event, ReportEvent):
            self.add(MarkdownBlock(event.markdown))
        elif isinstance(event, PullRequestEvent):
            self.add(NoticeBlock(f"pull request {event.action}: {event.url}", "ok"))
        elif isinstance(event, SessionEnded):
            self._ended(event)

    def _delta(self, event: TextDelta | ReasoningDelta) -> None:
        agent = event.agent or "main"
        block = self.streams.get(agent)
        if block is None:
            block = self.streams[agent] = AssistantBlock(agent=agent, streaming=True)
            self.add(block)
        if isinstance(event, TextDelta):
            block.content += event.text
        else:
            block.reasoning += event.text
        block.touch()
        self._changed(block)

    def _close_stream(self, agent: str, *, void: bool) -> None:
        """Stop `agent`'s streaming block; `void` hides it and drops what it held (a retry or error restarts)."""
        block = self.streams.pop(agent, None)
        if block is not None:
            if void:
                block.content = block.reasoning = ""
                block.hidden = True
            block.streaming = False
            block.touch()
            self._changed(block)

    def _assistant(self, event: AssistantMessage) -> None:
        self.totals.usage = self.totals.usage + event.usage
        self.totals.last_prompt_tokens = event.usage.input_tokens + event.usage.output_tokens
        self.totals.turns += 1
        message = event.message
        block = self.streams.pop(event.agent, None)
        if block is None:
            block = AssistantBlock(agent=event.agent)
            if not (message.content.strip() or message.reasoning.strip()):
                return
            self.add(block)
        block.content, block.reasoning, block.streaming = message.content, message.reasoning, False
        block.hidden = not (message.content.strip() or message.reasoning.strip())
        block.touch()
        self._changed(block)

    def _result(self, event: ToolResultEvent) -> None:
        card = self.cards.pop(event.call_id, None)
        if card is None:  # a result whose call was logged before a compaction or by another agent
            card = ToolCard(event.call_id, event.name, "{}", agent=event.agent)
            self.add(card)
        card.result = event
        card.touch()
        self._changed(card)

    def _steering(self, event: SteeringEvent) -> None:
        for block in self.steering_sent:
            if block.text == event.text and not block.taken:
                block.taken = True
                block.touch()
                self._changed(block)
                self.steering_sent.remove(block)
                return
        block = UserBlock(event.text, kind="steering")
        block.taken = True
        self.add(block)

    def sent_steering(self, text: str) -> None:
        """The person steered from this app: shown at once, marked taken when the job logs it."""
        block = UserBlock(text, kind="steering")
        self.steering_sent.append(block)
        self.add(block)

    def _team_event(self, event: PlanEvent | StepEvent | VerdictEvent) -> None:
        team = self.team
        if isinstance(event, PlanEvent):
            team.version, team.steps = event.version, list(event.steps)
            team.states = {s.id: "passed" if team.states.get(s.id) == "passed" else "pending" for s in event.steps}
            lines = "\n".join(f"{s.id}. {s.title}" + (f"  (after {', '.join(s.depends_on)})" if s.depends_on else "")
                              for s in event.steps)
            why = f" — {event.reason[:200]}" if event.reason else ""
            self.add(NoticeBlock(f"plan v{event.version}: {len(event.steps)} steps{why}", "info", detail=lines))
        elif isinstance(event, StepEvent):
            team.states[event.step_id] = event.state
            team.attempts[event.step_id] = event.attempt
            level = {"passed": "ok", "failed": "warn"}.get(event.state, "dim")
            detail = f" · {event.detail}" if event.detail else ""
            self.add(NoticeBlock(f"step {event.step_id} {event.state} (attempt {event.attempt}){detail}", level))
        else:
            team.verdicts = [*team.verdicts, event][-5:]
            level = "ok" if event.verdict == "PASS" else "warn"
            first = event.findings.strip().split("\n")[0][:120]
            self.add(NoticeBlock(f"verdict on {event.step_id}: {event.verdict} — {first}", level,
                                 detail=event.findings.strip() if "\n" in event.findings.strip() else ""))

    def _ended(self, event: SessionEnded) -> None:
        for agent, block in list(self.streams.items()):  # turns cut off by the stop: keep what has words
            self._close_stream(agent, void=not block.content)
        self.ended = event
        for card in self.cards.values():  # calls cut off by the stop
            card.interrupted = True
            card.touch()
            self._changed(card)
        self.cards.clear()
        u = event.usage
        cost = f" · ${u.cost_usd:.4f}" if u.cost_usd else ""
        text = f"{event.status} · {u.input_tokens:,} tokens in, {u.output_tokens:,} out{cost}"
        if event.status == "done":
            self.add(NoticeBlock(text, "dim"))
        elif event.status == "interrupted":
            self.add(NoticeBlock(f"interrupted — the session is saved; type to go on ({text})", "warn"))
        else:
            self.add(NoticeBlock(f"{event.status}: {event.reason or 'stopped'} — the session is saved; type to "
                                 f"retry or go on ({text})", "warn"))
