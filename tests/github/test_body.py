"""The pull request body, built from a session's events."""

from __future__ import annotations

import json

from m3code.github.body import BODY_LIMIT, render_body, report_from_events
from m3code.providers.types import Message, Usage
from m3code.session.events import (
    AssistantMessage,
    PlanEvent,
    PlanStep,
    SessionEnded,
    SessionStarted,
    StepEvent,
    ToolCallStarted,
    ToolResultEvent,
    VerdictEvent,
)


def _started(task: str = "# Speed up the parser\n\nIt is slow.") -> SessionStarted:
    return SessionStarted(session_id="20260101-000000-abcdef", task=task, workspace="/w", system_prompt="",
                          model="MiniMax-M3", base_url="http://x", api_format="openai", version="0")


def _bash(call_id: str, command: str, exit_code: int, agent: str = "main") -> list[object]:
    return [ToolCallStarted(call_id=call_id, name="bash", arguments=json.dumps({"command": command}), agent=agent),
            ToolResultEvent(call_id=call_id, name="bash", output="", data={"exit_code": exit_code}, agent=agent)]


def test_a_team_session_lists_its_steps_verdicts_tests_and_cost() -> None:
    plan = PlanEvent(steps=[PlanStep(id="s1", title="Profile | measure", goal="g"),
                            PlanStep(id="s2", title="Cache tokens", goal="g")])
    events = [
        _started(), plan,
        AssistantMessage(message=Message(role="assistant"), usage=Usage(input_tokens=1000, output_tokens=50,
                                                                        cost_usd=0.01), stop_reason="end_turn"),
        *_bash("c1", "ls", 0), *_bash("c2", "pytest -q tests/parser", 1, "producer/s1"),
        *_bash("c3", "pytest -q", 0, "verifier/s1"),
        StepEvent(step_id="s1", state="passed"), VerdictEvent(step_id="s1", verdict="PASS", findings="ok"),
        StepEvent(step_id="s2", state="failed"), VerdictEvent(step_id="s2", verdict="FAIL", findings="slower"),
        VerdictEvent(step_id="final", verdict="PARTIAL", findings="s2 not done"),
        SessionEnded(status="done", exit_code=0, final_answer="Parser is 2x faster.",
                     usage=Usage(input_tokens=1234, output_tokens=56, cost_usd=0.0123)),
    ]
    report = report_from_events(events)
    assert report.title == "Speed up the parser"
    body = render_body(report, diff_stat=" parser.py | 10 +++---", commits=["abc123 Cache tokens"], closes="#7")
    assert body.startswith("<!-- m3code:session=20260101-000000-abcdef -->")
    for part in ("Parser is 2x faster.", "Closes #7", "| Profile \\| measure | passed | PASS |",
                 "| Cache tokens | failed | FAIL |", "**Final verification:** PARTIAL: s2 not done",
                 " parser.py | 10 +++---", "- abc123 Cache tokens",
                 "| `pytest -q tests/parser` | ✗ exit 1 | producer/s1 |",
                 "| `pytest -q` | ✓ exit 0 | verifier/s1 |", "1 model turns · 1,234 tokens in · 56 out · $0.0123"):
        assert part in body, part
    assert "`ls`" not in body  # not a test command


def test_a_session_without_tests_says_so_and_the_body_stays_under_githubs_limit() -> None:
    events = [_started("no heading at all\nmore"), SessionEnded(status="done", exit_code=0, final_answer="x" * 90_000)]
    body = render_body(report_from_events(events), diff_stat="", commits=[])
    assert "The job ran no test command." in body and "(no file changes)" in body
    assert len(body) <= BODY_LIMIT and report_from_events(events).title == "no heading at all"
