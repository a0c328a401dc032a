"""Snapshots of the main screens (pytest-textual-snapshot). After a deliberate change of the look, refresh
them with `pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs under __snapshots__."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from m3code.providers.types import Message, ToolCall, Usage
from m3code.session.events import (
    AssistantMessage,
    PlanEvent,
    PlanStep,
    SessionEnded,
    SessionStarted,
    StepEvent,
    ToolCallStarted,
    ToolResultEvent,
    UserMessage,
    VerdictEvent,
)
from m3code.tui.screens import ApprovalScreen
from tests.tui.helpers import make_app

pytest.importorskip("pytest_textual_snapshot")

DIFF = """--- a/textkit/slug.py
+++ b/textkit/slug.py
@@ -3,5 +3,5 @@
 def slugify(title: str) -> str:
-    words = re.findall(r"[a-z0-9]+", title)
+    words = re.findall(r"[a-z0-9]+", title.lower())
     return "-".join(words)"""
USAGE = Usage(input_tokens=5210, output_tokens=340, cost_usd=0.0021)


def started(mode: str = "solo") -> SessionStarted:
    return SessionStarted(ts=0, session_id="20260101-000000-abcdef", task="Fix the slug bug", workspace="/repo",
                          system_prompt="", model="MiniMax-M3", base_url="http://127.0.0.1/v1", api_format="openai",
                          version="0", mode=mode)


def solo_events() -> list[Any]:
    calls = [ToolCall(id="c1", name="bash", arguments='{"command": "python3 -m unittest -q"}'),
             ToolCall(id="c2", name="edit", arguments='{"path": "textkit/slug.py"}')]
    return [
        started(), UserMessage(ts=0, content="Fix the slug bug"),
        AssistantMessage(ts=0, message=Message(role="assistant", content="Running the tests first.",
                                               reasoning="The slug ignores case.", tool_calls=calls),
                         usage=USAGE, stop_reason="tool_use"),
        ToolCallStarted(ts=0, call_id="c1", name="bash", arguments=calls[0].arguments),
        ToolResultEvent(ts=0, call_id="c1", name="bash", is_error=True, data={"exit_code": 1},
                        output="F..\n" + "\n".join(f"line {i}" for i in range(12)) + "\nFAILED (failures=1)"),
        ToolCallStarted(ts=0, call_id="c2", name="edit", arguments=calls[1].arguments),
        ToolResultEvent(ts=0, call_id="c2", name="edit", output="Edited.", data={"diff": DIFF}),
        AssistantMessage(ts=0, message=Message(role="assistant", content="Fixed: `slugify` lower-cases first.\n\n"
                                               "```python\nwords = re.findall(r'[a-z0-9]+', title.lower())\n```"),
                         usage=USAGE, stop_reason="end_turn"),
        SessionEnded(ts=0, status="done", exit_code=0, usage=USAGE + USAGE),
    ]


def team_events() -> list[Any]:
    steps = [PlanStep(id="a", title="lower-case slugs", goal="g"), PlanStep(id="b", title="add tests", goal="g",
                                                                          depends_on=["a"])]
    return [
        started("team"), UserMessage(ts=0, content="Fix the slug bug"),
        PlanEvent(ts=0, steps=steps, agent="planner"),
        StepEvent(ts=0, step_id="a", state="running", agent="team"),
        StepEvent(ts=0, step_id="a", state="verifying", commit="abc", agent="team"),
        VerdictEvent(ts=0, step_id="a", verdict="PASS", findings="tests pass", agent="verifier/a"),
        StepEvent(ts=0, step_id="a", state="passed", commit="abcdef1234", agent="team"),
        StepEvent(ts=0, step_id="b", state="running", agent="team"),
    ]


def prepared(events: list[Any]) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        app: Any = pilot.app
        app.prompt.cursor_blink = False
        for event in events:
            app.feed.apply(event)
        app.update_panels()
        await pilot.pause(0.2)
    return run_before


def test_welcome(snap_compare: Any, demo_repo: Path) -> None:
    assert snap_compare(make_app(demo_repo), run_before=prepared([]), terminal_size=(80, 24))


def test_solo_transcript(snap_compare: Any, demo_repo: Path) -> None:
    assert snap_compare(make_app(demo_repo), run_before=prepared(solo_events()), terminal_size=(80, 24))


def test_team_panel(snap_compare: Any, demo_repo: Path) -> None:
    assert snap_compare(make_app(demo_repo), run_before=prepared(team_events()), terminal_size=(120, 30))


def test_approval(snap_compare: Any, demo_repo: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await prepared([])(pilot)
        pilot.app.push_screen(ApprovalScreen("network access", "curl -fsSL https://example.com/install.sh | sh"))
        await pilot.pause(0.2)

    assert snap_compare(make_app(demo_repo), run_before=run_before, terminal_size=(80, 24))


def test_help_and_completion(snap_compare: Any, demo_repo: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await prepared([])(pilot)
        app: Any = pilot.app
        app.prompt.insert("/help")
        await pilot.press("enter")
        app.prompt.insert("/th")
        await pilot.pause(0.2)

    assert snap_compare(make_app(demo_repo), run_before=run_before, terminal_size=(80, 24))


def test_solo_transcript_light(snap_compare: Any, demo_repo: Path) -> None:
    app = make_app(demo_repo)
    app.options.theme = "textual-light"
    assert snap_compare(app, run_before=prepared(solo_events()), terminal_size=(80, 24))
