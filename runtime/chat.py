"""Rendering OpenAI-style chat requests into an M3 prompt with the checkpoint's own chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

ThinkingMode = Literal["enabled", "disabled", "adaptive"]
THINKING_MODES = ("enabled", "disabled", "adaptive")
_THINK_PAIRS = (("<mm:think>", "</mm:think>"), ("<think>", "</think>"))
_ROLES = ("system", "developer", "user", "assistant", "tool")


class ChatError(ValueError):
    """The request's messages cannot be rendered (the server answers 400)."""


def load_template(directory: str | Path) -> str:
    """The chat template: chat_template.jinja, else tokenizer_config.json's `chat_template` (string or named list)."""
    d = Path(directory)
    if (d / "chat_template.jinja").is_file():
        return (d / "chat_template.jinja").read_text()
    config_path = d / "tokenizer_config.json"
    if config_path.is_file():
        template = json.loads(config_path.read_text()).get("chat_template")
        if isinstance(template, list):
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str):
            return template
    raise FileNotFoundError(f"no chat template in {d} (chat_template.jinja or tokenizer_config.json)")


def split_reasoning(content: str) -> tuple[str, str]:
    """Inline `<mm:think>…</mm:think>` (or `<think>`) at the start of a message -> (reasoning, rest)."""
    for begin, end in _THINK_PAIRS:
        if end in content:
            head, rest = content.split(end, 1)
            return head.split(begin, 1)[-1].strip("\n"), rest.lstrip("\n")
    return "", content


def _text(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, str | list):
        return content
    raise ChatError(f"message content must be a string or a list of parts, not {type(content).__name__}")


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages -> what the template expects: tool-call arguments as objects, reasoning split out."""
    if not isinstance(messages, list) or not messages:
        raise ChatError("messages must be a non-empty list")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ChatError(f"messages[{i}] needs a role in {', '.join(_ROLES)}")
        m = dict(message)
        m["content"] = _text(m.get("content"))
        if m["role"] == "assistant":
            details = m.get("reasoning_details") or []
            reasoning = m.get("reasoning_content") or m.get("reasoning") or "".join(
                str(d.get("text", "")) for d in details if isinstance(d, dict)
            )
            if isinstance(m["content"], str) and not reasoning:
                reasoning, m["content"] = split_reasoning(m["content"])
            m["reasoning_content"] = reasoning
            calls = []
            for call in m.get("tool_calls") or []:
                fn = dict(call.get("function") or {})
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        fn["arguments"] = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError as e:
                        raise ChatError(f"messages[{i}] tool call arguments are not JSON: {e}") from None
                if not isinstance(fn.get("arguments", {}), dict):
                    raise ChatError(f"messages[{i}] tool call arguments must be a JSON object")
                calls.append({**call, "function": fn})
            m["tool_calls"] = calls
        out.append(m)
    return out


class ChatTemplate:
    def __init__(self, source: str) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        # The same environment settings transformers uses for chat templates.
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        self.template = env.from_string(source)

    @classmethod
    def from_directory(cls, directory: str | Path) -> ChatTemplate:
        return cls(load_template(directory))

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        thinking_mode: ThinkingMode = "adaptive",
        add_generation_prompt: bool = True,
    ) -> str:
        if thinking_mode not in THINKING_MODES:
            raise ChatError(f"thinking mode must be one of {', '.join(THINKING_MODES)}")
        try:
            return self.template.render(
                messages=normalize_messages(messages),
                tools=tools or None,
                add_generation_prompt=add_generation_prompt,
                thinking_mode=thinking_mode,
            )
        except ChatError:
            raise
        except Exception as e:  # template errors are the request's fault as far as the client is concerned
            raise ChatError(f"chat template failed: {e}") from e


def _raise(message: str) -> None:
    raise ChatError(message)
