"""The event-to-block feed on its own: several agents streaming at once, as a team's producers do."""

from __future__ import annotations

from m3code.providers.types import Message, ReasoningDelta, Retrying, TextDelta, Usage
from m3code.session.events import AssistantMessage, ErrorEvent, SessionEnded, SessionStarted
from m3code.tui.blocks import AssistantBlock, Block
from m3code.tui.feed import Feed


def team_feed() -> tuple[Feed, list[Block]]:
    shown: list[Block] = []
    feed = Feed(shown.append, lambda block: None)
    feed.apply(SessionStarted(ts=0, session_id="s", task="t", workspace="/w", system_prompt="", model="m",
                              base_url="http://127.0.0.1/v1", api_format="openai", version="0", mode="team"))
    return feed, shown


def turns(shown: list[Block]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for b in shown:
        if isinstance(b, AssistantBlock) and not b.hidden:
            out.setdefault(b.agent, []).append(b.content)
    return out


def message(agent: str, content: str) -> AssistantMessage:
    return AssistantMessage(ts=0, message=Message(role="assistant", content=content), usage=Usage(), agent=agent,
                            stop_reason="end_turn")


def test_interleaved_streams_of_two_agents_build_two_blocks() -> None:
    feed, shown = team_feed()
    for a, b in zip(["Writing ", "a.txt ", "now."], ["Checking ", "b.txt ", "first."], strict=True):
        feed.apply(TextDelta(text=a, agent="producer/a"))
        feed.apply(TextDelta(text=b, agent="producer/b"))
    feed.apply(ReasoningDelta(text="b is older", agent="producer/b"))
    assert turns(shown) == {"producer/a": ["Writing a.txt now."], "producer/b": ["Checking b.txt first."]}
    live = {b.agent: b for b in shown if isinstance(b, AssistantBlock)}
    assert live["producer/b"].reasoning == "b is older" and all(b.streaming for b in live.values())
    # each finished message lands in its own agent's block, whatever order they finish in
    feed.apply(message("producer/b", "Checked b.txt first."))
    feed.apply(message("producer/a", "Wrote a.txt."))
    assert turns(shown) == {"producer/a": ["Wrote a.txt."], "producer/b": ["Checked b.txt first."]}
    assert not any(b.streaming for b in live.values())


def test_a_retry_or_an_error_voids_only_that_agents_stream() -> None:
    feed, shown = team_feed()
    feed.apply(TextDelta(text="half a thou", agent="producer/a"))
    feed.apply(TextDelta(text="Planning", agent="planner"))
    feed.apply(Retrying(attempt=1, delay=0.5, reason="HTTP 529", agent="producer/a"))
    assert turns(shown) == {"planner": ["Planning"]}
    feed.apply(TextDelta(text="Whole thought.", agent="producer/a"))
    feed.apply(ErrorEvent(ts=0, message="planner: the model failed", fatal=False, agent="planner"))
    assert turns(shown) == {"producer/a": ["Whole thought."]}


def test_the_end_of_a_job_closes_every_open_stream() -> None:
    feed, shown = team_feed()
    feed.apply(TextDelta(text="Cut off mid", agent="producer/a"))
    feed.apply(ReasoningDelta(text="only thinking so far", agent="verifier/a"))
    feed.apply(SessionEnded(ts=0, status="interrupted", exit_code=130, usage=Usage()))
    assert turns(shown) == {"producer/a": ["Cut off mid"]}  # a turn with words stays; one with none goes
    assert feed.streams == {} and not any(isinstance(b, AssistantBlock) and b.streaming for b in shown)
