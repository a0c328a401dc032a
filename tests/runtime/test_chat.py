"""M3 chat template rendering and the reasoning / tool-call markup parser (streaming-safe)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jinja2")

from runtime.chat import ChatError, ChatTemplate, split_reasoning
from runtime.markup import NS, Delta, OutputParser, parse_output

TEMPLATE = Path(__file__).resolve().parents[2] / "runtime" / "chat_template.jinja"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "zip": {"type": "string"},
            "opts": {"type": "object", "properties": {
                "tags": {"type": "array", "items": {"type": "string"}},
                "limits": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}},
            }},
        },
    }}},
    {"type": "function", "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}}}},
]


@pytest.fixture(scope="module")
def template() -> ChatTemplate:
    return ChatTemplate(TEMPLATE.read_text())


def test_render_conversation_with_tools(template: ChatTemplate) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "<mm:think>Need the tool.</mm:think>Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {
                "name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 2, "skip": None,
                                                                "opts": {"tags": ["a", "b"]}})}},
            {"id": "c2", "type": "function", "function": {"name": "bash", "arguments": '{"command": "date"}'}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "Mon"},
        {"role": "assistant", "content": "Sunny on Monday."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]
    text = template.render(messages, TOOLS, thinking_mode="enabled")
    assert text.startswith("]~!b[]~b]system\n")
    assert "Current thinking mode: enabled." in text
    assert "]~b]developer\nBe brief.\n\n# Tools\n" in text
    assert '<tool>{"name": "get_weather", "description": "Weather.", "parameters": ' in text
    assert (
        "]~b]ai\n<mm:think>Need the tool.</mm:think>Checking."
        f'{NS}<tool_call>\n{NS}<invoke name="get_weather">{NS}<city>Paris{NS}</city>{NS}<days>2{NS}</days>'
        f"{NS}<opts>{NS}<tags>{NS}<item>a{NS}</item>{NS}<item>b{NS}</item>{NS}</tags>{NS}</opts>{NS}</invoke>\n"
        f'{NS}<invoke name="bash">{NS}<command>date{NS}</command>{NS}</invoke>\n{NS}</tool_call>[e~[\n'
    ) in text
    assert "]~b]tool\n<response>sunny</response>\n<response>Mon</response>[e~[\n" in text
    assert "]~b]ai\n</mm:think>Sunny on Monday.[e~[\n]~b]user\nThanks[e~[\n" in text
    assert text.endswith("]~b]ai\n<mm:think>")


@pytest.mark.parametrize(("mode", "ending"), [("enabled", "<mm:think>"), ("disabled", "</mm:think>"),
                                              ("adaptive", "]~b]ai\n")])
def test_generation_prompt_per_thinking_mode(template: ChatTemplate, mode: str, ending: str) -> None:
    text = template.render([{"role": "user", "content": "hi"}], thinking_mode=mode)  # type: ignore[arg-type]
    assert text.endswith(ending)
    assert "]~b]developer\nYou are a helpful assistant.[e~[\n" in text and "# Tools" not in text


def test_bad_messages(template: ChatTemplate) -> None:
    with pytest.raises(ChatError, match="role"):
        template.render([{"role": "robot", "content": "x"}])
    with pytest.raises(ChatError, match="not JSON"):
        template.render([{"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": "{oops"}}]}])
    with pytest.raises(ChatError, match="thinking mode"):
        template.render([{"role": "user", "content": "x"}], thinking_mode="maybe")  # type: ignore[arg-type]


def test_split_reasoning() -> None:
    assert split_reasoning("<mm:think>\nhmm\n</mm:think>\n\nAnswer") == ("hmm", "Answer")
    assert split_reasoning("<think>a</think>b") == ("a", "b")
    assert split_reasoning("plain") == ("", "plain")


def calls(delta: Delta) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in delta.tool_calls]


def streamed(text: str, step: int, **kw: Any) -> Delta:
    parser = OutputParser(TOOLS, **kw)
    out = Delta()
    for i in range(0, len(text), step):
        out.extend(parser.feed(text[i : i + step]))
    out.extend(parser.finish())
    return out


CASES: dict[str, tuple[str, dict[str, Any], str, str, list[tuple[str, Any]]]] = {
    "adaptive-thinks-then-calls-two-tools": (
        "<mm:think>Weather first, then the date.</mm:think>\n\nOn it."
        f'{NS}<tool_call>\n{NS}<invoke name="get_weather">{NS}<city>São Paulo{NS}</city>{NS}<days>3{NS}</days>'
        f"{NS}<metric>true{NS}</metric>{NS}<zip>01310{NS}</zip>{NS}<opts>{NS}<tags>{NS}<item>rain{NS}</item>"
        f"{NS}</tags>{NS}<limits>{NS}<item>{NS}<n>2.5{NS}</n>{NS}</item>{NS}</limits>{NS}</opts>{NS}</invoke>\n"
        f'{NS}<invoke name="bash">{NS}<command>echo "a < b" && ls{NS}</command>{NS}</invoke>\n{NS}</tool_call>',
        {},
        "Weather first, then the date.",
        "On it.",
        [("get_weather", {"city": "São Paulo", "days": 3, "metric": True, "zip": "01310",
                          "opts": {"tags": ["rain"], "limits": [{"n": 2.5}]}}),
         ("bash", {"command": 'echo "a < b" && ls'})],
    ),
    "enabled-prompt-ends-inside-think": (
        "I should answer directly.</mm:think>The answer is 4.",
        {"starts_in_reasoning": True},
        "I should answer directly.",
        "The answer is 4.",
        [],
    ),
    "disabled-stray-closer": ("</mm:think>Hello <b>there</b>, a<]minimax is not markup.", {}, "",
                              "Hello <b>there</b>, a<]minimax is not markup.", []),
    "plain-answer": ("Just text, no tags: 1 < 2 > 0.", {}, "", "Just text, no tags: 1 < 2 > 0.", []),
    "call-without-prose": (
        f'</mm:think>{NS}<tool_call>\n{NS}<invoke name="bash">{NS}<command>pwd{NS}</command>{NS}</invoke>\n'
        f"{NS}</tool_call>",
        {}, "", "", [("bash", {"command": "pwd"})],
    ),
    "unterminated-call-is-kept-as-text": (
        f'Trying.{NS}<tool_call>\n{NS}<invoke name="bash">{NS}<command>ls',
        {}, "", f'Trying.{NS}<tool_call>\n{NS}<invoke name="bash">{NS}<command>ls', [],
    ),
    "unknown-tool-keeps-strings": (
        f'{NS}<tool_call>\n{NS}<invoke name="mystery">{NS}<n>5{NS}</n>{NS}</invoke>\n{NS}</tool_call>',
        {}, "", "", [("mystery", {"n": "5"})],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_markup_parsing_at_every_split(name: str) -> None:
    text, kw, reasoning, content, expected_calls = CASES[name]
    whole = parse_output(text, TOOLS, **kw)
    assert (whole.reasoning, whole.content, calls(whole)) == (reasoning, content, expected_calls)
    for step in (1, 2, 3, 5, 8, 13):
        piece = streamed(text, step, **kw)
        assert (piece.reasoning, piece.content, calls(piece)) == (reasoning, content, expected_calls), step


def test_streaming_releases_text_early() -> None:
    """Nothing is held back except what could still become a marker."""
    parser = OutputParser(TOOLS)
    assert parser.feed("<mm:th").reasoning == ""  # could be the opener
    assert parser.feed("ink>step one").reasoning == "step one"
    assert parser.feed(" and two</mm:").reasoning == " and two"
    assert parser.feed("think>Answer: ").content == "Answer: "
    assert parser.feed("yes]<]mini").content == "yes"
    got = parser.feed(f'max[>[<tool_call>\n{NS}<invoke name="bash">{NS}<command>x{NS}</command>')
    assert not got.tool_calls
    got = parser.feed(f"{NS}</invoke>")
    assert calls(got) == [("bash", {"command": "x"})]
