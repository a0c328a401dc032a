"""Images in requests, through both wire formats over real HTTP: image parts where the model takes them,
a note where its profile says it does not."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from m3code.providers import GENERIC_PROFILE, Message, ToolCall, profile_for
from m3code.providers.types import ApiFormat, ImagePart, tool_images
from m3code.replay import ScriptedModelServer
from tests.providers.helpers import FORMATS, provider_for
from tests.tools.test_image_tool import tiny_png

StartServer = Callable[..., ScriptedModelServer]
PNG = tiny_png()
DATA = base64.b64encode(PNG).decode()
JPEG_DATA = base64.b64encode(b"\xff\xd8\xff\xe0not really a jpeg").decode()


def conversation_with_images() -> list[Message]:
    """A user message with an image, a turn of two tool calls (the first returned an image), a reply."""
    return [
        Message(role="system", content="You are a coding agent."),
        Message(role="user", content="What is in this screenshot?",
                images=[ImagePart(media_type="image/png", data=DATA, path="shot.png")]),
        Message(role="assistant", content="Looking.", tool_calls=[
            ToolCall(id="c1", name="image", arguments='{"path": "plot.jpg"}'),
            ToolCall(id="c2", name="read", arguments='{"path": "a.txt"}'),
        ]),
        Message(role="tool", tool_call_id="c1", name="image", content="Attached plot.jpg (JPEG, 2.0 KB).",
                images=[ImagePart(media_type="image/jpeg", data=JPEG_DATA, path="plot.jpg")]),
        Message(role="tool", tool_call_id="c2", name="read", content="1\thello"),
        Message(role="user", content="Go on."),
    ]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_openai_sends_image_url_parts(scripted_server: StartServer, stream: bool) -> None:
    server = scripted_server({"turns": [{"content": "A red square."}]})
    provider = provider_for(server, "openai", stream)
    completion = await provider.complete(conversation_with_images(), [])
    await provider.aclose()
    assert completion.message.content == "A red square."
    messages = server.requests[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "What is in this screenshot?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{DATA}"}},
    ]
    # Tool messages stay text; the tool's image follows the turn's tool messages in a user message.
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "Attached plot.jpg (JPEG, 2.0 KB)."}
    assert messages[4] == {"role": "tool", "tool_call_id": "c2", "content": "1\thello"}
    assert messages[5] == {"role": "user", "content": [
        {"type": "text", "text": "[image from tool call c1]"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG_DATA}"}},
    ]}
    assert messages[6] == {"role": "user", "content": "Go on."}


async def test_openai_tool_image_at_the_end_of_the_history(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "ok"}]})
    provider = provider_for(server, "openai", False)
    await provider.complete(conversation_with_images()[:4], [])
    await provider.aclose()
    messages = server.requests[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[-1]["content"][0] == {"type": "text", "text": "[image from tool call c1]"}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_anthropic_sends_image_blocks(scripted_server: StartServer, stream: bool) -> None:
    server = scripted_server({"turns": [{"content": "A red square."}]})
    provider = provider_for(server, "anthropic", stream)
    completion = await provider.complete(conversation_with_images(), [])
    await provider.aclose()
    assert completion.message.content == "A red square."
    body = server.requests[0]["body"]
    assert body["system"] == "You are a coding agent."
    first, reply, results = body["messages"]
    assert first == {"role": "user", "content": [
        {"type": "text", "text": "What is in this screenshot?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DATA}},
    ]}
    assert reply["role"] == "assistant" and [b["type"] for b in reply["content"]] == ["text", "tool_use", "tool_use"]
    # The tool's image stays inside its tool_result.
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "c1", "content": [
            {"type": "text", "text": "Attached plot.jpg (JPEG, 2.0 KB)."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_DATA}},
        ]},
        {"type": "tool_result", "tool_use_id": "c2", "content": "1\thello"},
        {"type": "text", "text": "Go on."},
    ]}


async def test_an_image_without_text_is_the_image_alone(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "ok"}, {"content": "ok"}]})
    only = [Message(role="user", images=[ImagePart(media_type="image/png", data=DATA)])]
    for api_format in FORMATS:
        provider = provider_for(server, api_format, False)
        await provider.complete(only, [])
        await provider.aclose()
    openai, anthropic = (r["body"]["messages"][0]["content"] for r in server.requests)
    assert openai == [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{DATA}"}}]
    assert anthropic == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DATA}}]


@pytest.mark.parametrize("api_format", FORMATS)
async def test_a_text_only_model_gets_a_note_instead(scripted_server: StartServer, api_format: ApiFormat) -> None:
    server = scripted_server({"turns": [{"content": "I cannot see it."}]})
    provider = provider_for(server, api_format, True, model="MiniMax-M2.7")
    completion = await provider.complete(conversation_with_images(), [])
    await provider.aclose()
    assert completion.message.content == "I cannot see it."
    body = server.requests[0]["body"]
    raw = json.dumps(body)
    assert DATA not in raw and JPEG_DATA not in raw and "image_url" not in raw and '"type": "image"' not in raw
    note = "[image omitted: MiniMax-M2.7 does not accept images]"
    messages = body["messages"]
    if api_format == "openai":
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user"]
        assert messages[1] == {"role": "user", "content": f"What is in this screenshot?\n\n{note}"}
        assert messages[3]["content"] == f"Attached plot.jpg (JPEG, 2.0 KB).\n\n{note}"
    else:
        assert messages[0] == {"role": "user", "content": [
            {"type": "text", "text": f"What is in this screenshot?\n\n{note}"}]}
        assert messages[2]["content"][0] == {
            "type": "tool_result", "tool_use_id": "c1", "content": f"Attached plot.jpg (JPEG, 2.0 KB).\n\n{note}"}


async def test_an_unknown_model_is_sent_images(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "ok"}]})
    provider = provider_for(server, "openai", False, model="local-vl-model")
    await provider.complete(conversation_with_images()[:2], [])
    await provider.aclose()
    assert server.requests[0]["body"]["messages"][1]["content"][1]["type"] == "image_url"


def test_profiles_say_which_models_take_images() -> None:
    assert profile_for("MiniMax-M3").supports_images
    assert profile_for("minimax/MiniMax-M3-preview").supports_images
    for text_only in ("MiniMax-M2.7", "MiniMax-M2.7-highspeed", "MiniMax-M2.5", "MiniMax-M2"):
        assert not profile_for(text_only).supports_images, text_only
    assert GENERIC_PROFILE.supports_images and profile_for("qwen-vl").supports_images


def test_messages_stay_backward_compatible_and_images_round_trip() -> None:
    old = Message.model_validate_json('{"role": "user", "content": "from an old log"}')
    assert old.images == []
    image = ImagePart(media_type="image/png", data=DATA, path="shots/red.png")
    message = Message(role="tool", tool_call_id="c1", content="Attached.", images=[image])
    assert Message.model_validate_json(message.model_dump_json()) == message
    assert image.size == len(PNG) and image.label() == "[image: shots/red.png (1 KB)]"
    assert image.data_url() == f"data:image/png;base64,{DATA}"
    assert tool_images({"image": image.model_dump()}) == [image]
    assert tool_images({"path": "a.txt"}) == [] and tool_images({"image": "not an image"}) == []
