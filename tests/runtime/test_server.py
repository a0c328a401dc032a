"""The OpenAI-compatible server over real HTTP, driven by the official `openai` client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from runtime import engine as engine_module  # noqa: E402
from runtime.markup import NS  # noqa: E402
from runtime.server import App  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, app: App, *, lifespan: str = "on") -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.shutdown()


@pytest.fixture(scope="module")
def served(release_checkpoint: Path) -> Iterator[Running]:
    running = Running(App(release_checkpoint, device="cpu", dtype="float32", model_name="tiny-m3",
                          max_model_len=2048))
    assert running.app.wait_loaded(60), running.app.load_error
    yield running
    running.stop()


def test_models_and_health(served: Running) -> None:
    models = served.client.models.list()
    assert [m.id for m in models.data] == ["tiny-m3"]
    health = httpx.get(served.url + "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_completion_and_stream_agree(served: Running) -> None:
    messages = [{"role": "user", "content": "Write a function."}]
    full = served.client.chat.completions.create(
        model="tiny-m3", messages=messages, max_completion_tokens=12, temperature=0
    )
    choice = full.choices[0]
    assert choice.finish_reason == "length" and full.usage is not None and full.usage.completion_tokens == 12
    assert full.usage.prompt_tokens > 20
    chunks = list(served.client.chat.completions.create(
        model="tiny-m3", messages=messages, max_completion_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert content == (choice.message.content or "")
    assert reasoning == (getattr(choice.message, "reasoning_content", None) or "")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_seed_and_stop(served: Running) -> None:
    def ask(**kw: Any) -> str:
        r = served.client.chat.completions.create(
            model="tiny-m3", messages=[{"role": "user", "content": "hello"}], max_completion_tokens=10, **kw
        )
        return (r.choices[0].message.content or "") + "|" + (getattr(r.choices[0].message, "reasoning_content",
                                                                       None) or "")

    assert ask(temperature=1.0, top_p=0.95, seed=5) == ask(temperature=1.0, top_p=0.95, seed=5)
    greedy = served.client.chat.completions.create(
        model="tiny-m3", messages=[{"role": "user", "content": "hello"}], max_completion_tokens=10, temperature=0,
        extra_body={"thinking": {"type": "disabled"}},
    ).choices[0].message.content or ""
    assert len(greedy) > 4
    stopped = served.client.chat.completions.create(
        model="tiny-m3", messages=[{"role": "user", "content": "hello"}], max_completion_tokens=10, temperature=0,
        stop=[greedy[2:4]], extra_body={"thinking": {"type": "disabled"}},
    ).choices[0]
    assert stopped.finish_reason == "stop" and stopped.message.content == greedy[: greedy.find(greedy[2:4])]


def test_concurrent_requests_are_batched_and_correct(served: Running) -> None:
    prompts = [f"request number {i}" for i in range(4)]

    def ask(text: str) -> str:
        r = served.client.chat.completions.create(
            model="tiny-m3", messages=[{"role": "user", "content": text}], max_completion_tokens=8, temperature=0
        )
        return repr(r.choices[0].message)

    solo = [ask(p) for p in prompts]
    steps: list[int] = []
    engine = served.app.runtime.engine  # type: ignore[union-attr]
    original = engine.step

    def counting_step() -> Any:
        steps.append(len(engine.running))
        return original()

    engine.step = counting_step  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(ask, prompts))
    finally:
        engine.step = original  # type: ignore[method-assign]
    assert together == solo
    assert max(steps) > 1  # some forward passes carried several requests


def test_errors_in_openai_shape(served: Running) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        served.client.chat.completions.create(model="tiny-m3", messages=[])
    assert bad.value.status_code == 400 and "messages" in str(bad.value)
    with pytest.raises(openai.BadRequestError) as role:
        served.client.chat.completions.create(model="tiny-m3", messages=[{"role": "wizard", "content": "x"}])
    assert "role" in str(role.value)
    with pytest.raises(openai.BadRequestError) as long:
        served.client.chat.completions.create(model="tiny-m3", messages=[{"role": "user", "content": "word " * 3000}])
    assert long.value.code == "context_length_exceeded" and "maximum context of 2048" in str(long.value)
    with pytest.raises(openai.BadRequestError):
        served.client.chat.completions.create(model="tiny-m3", messages=[{"role": "user", "content": "x"}],
                                              max_completion_tokens=10_000)
    raw = httpx.post(served.url + "/v1/chat/completions", content=b"{not json")
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(served.url + "/nope").status_code == 404


def test_503_while_loading(release_checkpoint: Path) -> None:
    running = Running(App(release_checkpoint, device="cpu"), lifespan="off")  # lifespan off: never loads
    try:
        health = httpx.get(running.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        with pytest.raises(openai.InternalServerError) as err:
            running.client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 503
    finally:
        running.stop()


SCRIPTED = (
    "<mm:think>The user wants the weather; call the tool.</mm:think>Let me check."
    f'{NS}<tool_call>\n{NS}<invoke name="get_weather">{NS}<city>Paris{NS}</city>{NS}<days>3{NS}</days>'
    f"{NS}</invoke>\n{NS}</tool_call>"
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]


@pytest.fixture
def scripted(served: Running, monkeypatch: pytest.MonkeyPatch) -> Running:
    """The engine 'samples' a hand-written M3 reply (then eos): the markup path runs end to end over HTTP."""
    rt = served.app.runtime
    assert rt is not None
    script = [*rt.tokenizer.encode(SCRIPTED), min(rt.engine.eos_token_ids)]
    position: dict[int, int] = {}

    def fake_sample(logits: Any, params: Any, generator: Any) -> int:
        seq = next(s for s in rt.engine.running if s.params is params)
        i = position.get(seq.id, 0)
        position[seq.id] = i + 1
        return script[i]

    monkeypatch.setattr(engine_module, "sample", fake_sample)
    return served


def test_tool_calls_and_reasoning(scripted: Running) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = scripted.client.chat.completions.create(model="tiny-m3", messages=messages, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert getattr(choice.message, "reasoning_content", None) == "The user wants the weather; call the tool."
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris", "days": 3}'


def test_tool_calls_streamed(scripted: Running) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    chunks = list(scripted.client.chat.completions.create(model="tiny-m3", messages=messages, tools=TOOLS,
                                                          stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "Let me check."
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas).startswith("The user wants")
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [(c.index, c.function.name, c.function.arguments) for c in calls] == [
        (0, "get_weather", '{"city": "Paris", "days": 3}')
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
