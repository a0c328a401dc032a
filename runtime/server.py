"""`m3code serve`: an OpenAI-compatible HTTP server for a local MiniMax-M3 checkpoint.

A plain ASGI app under uvicorn (already a dependency; the three routes need no framework). The model loads on a
background thread after the socket is open, so /health and requests answer 503 until it is ready. Requests go to one
EngineWorker, which batches whatever is in flight into each forward pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runtime.openai_api import (
    ApiError,
    ChatRequest,
    chunk_body,
    completion_body,
    completion_id,
    delta_messages,
    finish_reason,
    parse_chat_request,
    usage,
)

log = logging.getLogger("runtime.server")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DTYPES = ("auto", "bfloat16", "float16", "float32")


def resolve_dtype(dtype: Any) -> Any:
    """'bfloat16' | 'float16' | 'float32' | 'auto' (keep the stored dtype) | a torch.dtype | None."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    return None if dtype == "auto" else getattr(torch, dtype)


class _Runtime:
    """Everything that exists once the model is loaded."""

    def __init__(self, model_dir: Path, device: str, dtype: Any, max_model_len: int | None,
                 max_batch_tokens: int) -> None:
        from runtime.chat import ChatTemplate
        from runtime.engine import Engine, EngineWorker
        from runtime.loading import load_model
        from runtime.tokenizer import Tokenizer

        self.tokenizer = Tokenizer(model_dir)
        self.template = ChatTemplate.from_directory(model_dir)
        self.model = load_model(model_dir, device=device, dtype=resolve_dtype(dtype))
        eos = set(self.model.config.eos_token_ids)
        named = self.tokenizer.named_token_id("eos_token")
        if named is not None:
            eos.add(named)
        self.engine = Engine(
            self.model,
            tokenizer=self.tokenizer,
            eos_token_ids=tuple(sorted(eos)),
            max_model_len=max_model_len,
            max_batch_tokens=max_batch_tokens,
        )
        self.worker = EngineWorker(self.engine)


class App:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cuda",
        dtype: Any = "bfloat16",
        model_name: str | None = None,
        max_model_len: int | None = None,
        max_batch_tokens: int = 2048,
        default_max_tokens: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        # Output cap for requests that set none (else they may run to the context limit).
        self.default_max_tokens = default_max_tokens
        self.model_name = model_name or self.model_dir.resolve().name
        self._load_args = (self.model_dir, device, dtype, max_model_len, max_batch_tokens)
        self.runtime: _Runtime | None = None
        self.load_error: str | None = None
        self.created = int(time.time())
        self._loader: threading.Thread | None = None

    def start_loading(self) -> None:
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="m3-load", daemon=True)
            self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        self.start_loading()
        assert self._loader is not None
        self._loader.join(timeout)
        return self.runtime is not None

    def _load(self) -> None:
        started = time.monotonic()
        try:
            self.runtime = _Runtime(*self._load_args)
            log.info("model %s ready in %.1fs", self.model_name, time.monotonic() - started)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            log.error("loading %s failed: %s", self.model_dir, self.load_error)

    def shutdown(self) -> None:
        if self.runtime is not None:
            self.runtime.worker.stop()

    # ---- ASGI ----

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except ApiError as e:
            await _json(send, e.status, e.body())
        except Exception as e:  # the server keeps serving; the client gets OpenAI's error shape
            log.exception("request failed")
            await _json(send, 500, ApiError(500, f"internal error: {e}", kind="server_error").body())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_loading()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"].rstrip("/")
        routes = {"/health": "GET", "/v1/models": "GET", "/v1/chat/completions": "POST"}
        if path not in routes:
            raise ApiError(404, f"no route {path}", kind="not_found_error")
        if method != routes[path]:
            raise ApiError(405, f"{path} takes {routes[path]}")
        if path == "/v1/models":
            await _json(send, 200, self._models())
        elif path == "/health":
            status, state = self._health()
            await _json(send, status, {"status": state, **({"error": self.load_error} if self.load_error else {})})
        else:
            body = await _read_body(receive)
            await self._chat(body, receive, send)

    def _health(self) -> tuple[int, str]:
        if self.runtime is not None:
            return 200, "ok"
        return (500, "failed") if self.load_error else (503, "loading")

    def _models(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.model_name, "object": "model", "created": self.created,
                                 "owned_by": "m3code"}
        if self.runtime is not None:
            entry["max_model_len"] = self.runtime.engine.max_model_len
        return {"object": "list", "data": [entry]}

    def _ready(self) -> _Runtime:
        if self.runtime is None:
            if self.load_error:
                raise ApiError(500, f"model failed to load: {self.load_error}", kind="server_error")
            raise ApiError(503, "the model is still loading", kind="service_unavailable_error")
        return self.runtime

    async def _chat(self, raw: bytes, receive: Receive, send: Send) -> None:
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError as e:
            raise ApiError(400, f"the request body is not JSON: {e}") from None
        request = parse_chat_request(body)
        rt = self._ready()
        from runtime.cache import ContextOverflowError
        from runtime.chat import ChatError

        def tokenize() -> list[int]:
            prompt = rt.template.render(request.messages, request.tools, thinking_mode=request.thinking_mode)  # type: ignore[arg-type]
            return rt.tokenizer.encode(prompt)

        try:  # off the event loop: a long conversation takes a while to render and tokenize
            prompt_ids = await asyncio.to_thread(tokenize)
        except ChatError as e:
            raise ApiError(400, str(e), param="messages") from None
        if request.params.max_tokens is None and self.default_max_tokens:
            room = rt.engine.max_model_len - len(prompt_ids)
            request.params.max_tokens = max(1, min(self.default_max_tokens, room))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def on_output(_seq: Any, out: Any) -> None:  # engine thread
            loop.call_soon_threadsafe(queue.put_nowait, out)

        try:
            seq = rt.worker.submit(prompt_ids, request.params, on_output)
        except ContextOverflowError as e:
            raise ApiError(400, str(e), param="messages", code="context_length_exceeded") from None
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        watcher = asyncio.create_task(_watch_disconnect(receive))
        try:
            if request.stream:
                await self._stream(request, queue, watcher, send, len(prompt_ids))
            else:
                await self._complete(request, queue, watcher, send, len(prompt_ids))
        finally:
            watcher.cancel()
            if not seq.finished:
                rt.worker.abort(seq)

    async def _next(self, queue: asyncio.Queue[Any], watcher: asyncio.Task[None]) -> Any:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        return None  # the client went away

    async def _complete(
        self, request: ChatRequest, queue: asyncio.Queue[Any], watcher: asyncio.Task[None], send: Send,
        prompt_tokens: int,
    ) -> None:
        from runtime.markup import parse_output

        text, tokens = [], 0
        while True:
            out = await self._next(queue, watcher)
            if out is None:
                return
            text.append(out.text)
            tokens += out.token_id is not None
            if out.finished:
                break
        if out.finish_reason == "error":
            raise ApiError(500, "generation failed", kind="server_error")
        parsed = parse_output("".join(text), request.tools, starts_in_reasoning=request.thinking_mode == "enabled")
        reason = finish_reason(out.finish_reason, bool(parsed.tool_calls))
        await _json(send, 200, completion_body(completion_id(), self.model_name, parsed, reason, prompt_tokens,
                                               tokens))

    async def _stream(
        self, request: ChatRequest, queue: asyncio.Queue[Any], watcher: asyncio.Task[None], send: Send,
        prompt_tokens: int,
    ) -> None:
        from runtime.markup import OutputParser

        cid = completion_id()
        parser = OutputParser(request.tools, starts_in_reasoning=request.thinking_mode == "enabled")
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})

        async def event(data: Any) -> None:
            payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            await send({"type": "http.response.body", "body": f"data: {payload}\n\n".encode(), "more_body": True})

        await event(chunk_body(cid, self.model_name, {"role": "assistant", "content": ""}))
        tools_sent, tokens = 0, 0
        while True:
            out = await self._next(queue, watcher)
            if out is None:
                return
            tokens += out.token_id is not None
            parsed = parser.feed(out.text)
            if out.finished:
                parsed.extend(parser.finish())
            for delta in delta_messages(parsed, tools_sent):
                await event(chunk_body(cid, self.model_name, delta))
            tools_sent += len(parsed.tool_calls)
            if out.finished:
                break
        if out.finish_reason == "error":
            await event({"error": {"message": "generation failed", "type": "server_error"}})
        else:
            reason = finish_reason(out.finish_reason, tools_sent > 0)
            await event(chunk_body(cid, self.model_name, {}, reason))
            if request.include_usage:
                await event({**chunk_body(cid, self.model_name, {}), "choices": [],
                             "usage": usage(prompt_tokens, tokens)})
        await event("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _watch_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cuda",
    dtype: Any = "bfloat16",
    *,
    model_name: str | None = None,
    max_model_len: int | None = None,
    default_max_tokens: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve `model_dir` until interrupted (blocking). The model loads after the port is open."""
    import uvicorn

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    resolve_dtype(dtype)  # a bad --dtype fails now, not after the port is open
    if not (Path(model_dir) / "config.json").is_file():
        raise SystemExit(f"{model_dir} has no config.json")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = App(model_dir, device=device, dtype=dtype, model_name=model_name, max_model_len=max_model_len,
              default_max_tokens=default_max_tokens)
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
