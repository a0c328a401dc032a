"""Parsing M3's generated text into OpenAI fields: reasoning_content, content and tool_calls.

Streaming-safe: `feed` takes text in arbitrary pieces (a marker may be split anywhere) and returns only what is
certain; text that might be the start of a marker is held back until the next piece or `finish`. A tool call is
emitted whole, when its `</invoke>` arrives. Format: NOTES.md, "Chat format".
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

NS = "]<]minimax[>["
THINK_BEGIN, THINK_END = "<mm:think>", "</mm:think>"
_ALT_THINK = ("<think>", "</think>")
TOOL_BEGIN, TOOL_END = NS + "<tool_call>", NS + "</tool_call>"
INVOKE_END = NS + "</invoke>"


@dataclass
class ToolCall:
    name: str
    arguments: str  # a JSON object, as OpenAI sends it
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def to_openai(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": "function", "function": {"name": self.name,
                                                                               "arguments": self.arguments}}
        if index is not None:
            out["index"] = index
        return out


@dataclass
class Delta:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content or self.tool_calls)

    def extend(self, other: Delta) -> None:
        self.reasoning += other.reasoning
        self.content += other.content
        self.tool_calls.extend(other.tool_calls)


def _partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a marker (may complete later)."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


def _find_first(text: str, markers: tuple[str, ...]) -> tuple[int, str] | None:
    hits = [(i, m) for m in markers if (i := text.find(m)) >= 0]
    return min(hits) if hits else None


class OutputParser:
    """One per generated message. `starts_in_reasoning`: the prompt ended inside `<mm:think>` (thinking enabled)."""

    def __init__(self, tools: list[dict[str, Any]] | None = None, *, starts_in_reasoning: bool = False) -> None:
        self.schemas = _tool_schemas(tools or [])
        self.state = "reasoning" if starts_in_reasoning else "start"
        self.buffer = ""
        self._after_think = False  # strip newlines that separate reasoning from the answer

    def feed(self, text: str) -> Delta:
        self.buffer += text
        out = Delta()
        while self._advance(out, final=False):
            pass
        return out

    def finish(self) -> Delta:
        """End of generation: release what was held back; unterminated tool markup is returned as content."""
        out = Delta()
        while self._advance(out, final=True):
            pass
        if self.buffer:
            if self.state == "reasoning":
                out.reasoning += self.buffer
            else:
                out.content += self.buffer
            self.buffer = ""
        return out

    def _advance(self, out: Delta, *, final: bool) -> bool:
        """Consume what can be decided from the buffer; True when the state changed and parsing should go on."""
        buf = self.buffer
        if self.state == "start":
            stripped = buf.lstrip()
            openers = (THINK_BEGIN, _ALT_THINK[0], THINK_END, _ALT_THINK[1])
            for marker in openers:
                if stripped.startswith(marker):
                    self.buffer = stripped[len(marker) :]
                    self.state = "reasoning" if marker in (THINK_BEGIN, _ALT_THINK[0]) else "content"
                    self._after_think = self.state == "content"
                    return True
            if not final and (not stripped or any(m.startswith(stripped) for m in openers)):
                return False
            self.state = "content"
            return True
        if self.state == "reasoning":
            hit = _find_first(buf, (THINK_END, _ALT_THINK[1]))
            if hit:
                i, marker = hit
                out.reasoning += buf[:i]
                self.buffer = buf[i + len(marker) :]
                self.state, self._after_think = "content", True
                return True
            keep = 0 if final else _partial_suffix(buf, (THINK_END, _ALT_THINK[1]))
            out.reasoning += buf[: len(buf) - keep]
            self.buffer = buf[len(buf) - keep :]
            return False
        if self.state == "content":
            if self._after_think:
                if not buf.strip("\n") and not final:
                    return False
                buf = self.buffer = buf.lstrip("\n")
                self._after_think = False
            hit = _find_first(buf, (TOOL_BEGIN,))
            if hit:
                out.content += buf[: hit[0]]
                self.buffer = buf[hit[0] + len(TOOL_BEGIN) :]
                self.state = "tools"
                return True
            keep = 0 if final else _partial_suffix(buf, (TOOL_BEGIN,))
            out.content += buf[: len(buf) - keep]
            self.buffer = buf[len(buf) - keep :]
            return False
        # state "tools": whole invokes come out as they complete; the block's end returns to content.
        end = buf.find(INVOKE_END)
        block_end = buf.find(TOOL_END)
        if end >= 0 and (block_end < 0 or end < block_end):
            call = self._parse_invoke(buf[:end])
            if call is not None:
                out.tool_calls.append(call)
            else:
                out.content += buf[: end + len(INVOKE_END)]
            self.buffer = buf[end + len(INVOKE_END) :]
            return True
        if block_end >= 0:
            leftover = buf[:block_end].strip()
            if leftover:
                out.content += leftover
            self.buffer = buf[block_end + len(TOOL_END) :]
            self.state = "content"
            return True
        if final and buf.strip():
            out.content += TOOL_BEGIN + buf  # an unfinished call is shown, not lost
            self.buffer = ""
        return False

    def _parse_invoke(self, text: str) -> ToolCall | None:
        text = text.strip()
        head = NS + '<invoke name="'
        if not text.startswith(head):
            return None
        close = text.find('">', len(head))
        if close < 0:
            return None
        name = text[len(head) : close]
        schema = self.schemas.get(name, {})
        arguments = _parse_elements(text[close + 2 :], schema)
        if not isinstance(arguments, dict):
            arguments = {}
        return ToolCall(name=name, arguments=json.dumps(arguments, ensure_ascii=False))


def parse_output(
    text: str, tools: list[dict[str, Any]] | None = None, *, starts_in_reasoning: bool = False
) -> Delta:
    """Parse a whole generated message at once."""
    parser = OutputParser(tools, starts_in_reasoning=starts_in_reasoning)
    out = parser.feed(text)
    out.extend(parser.finish())
    return out


def _tool_schemas(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    schemas = {}
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            schemas[fn["name"]] = fn.get("parameters") or {}
    return schemas


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    options = schema.get("anyOf") or schema.get("oneOf") or []
    return [t for option in options if isinstance(option, dict) for t in _types(option)]


def _child_schema(schema: dict[str, Any], tag: str) -> dict[str, Any]:
    if "array" in _types(schema) and tag == "item":
        items = schema.get("items")
        return items if isinstance(items, dict) else {}
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(props.get(tag), dict):
        return dict(props[tag])
    for option in schema.get("anyOf") or schema.get("oneOf") or []:
        if isinstance(option, dict) and (found := _child_schema(option, tag)):
            return found
    return {}


def _scalar(text: str, schema: dict[str, Any]) -> Any:
    """A leaf's text by its declared type; strings (and undeclared values) stay text."""
    kinds = [k for k in _types(schema) if k != "null"]
    if not kinds or "string" in kinds:
        return text
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return text
    ok: dict[str, type | tuple[type, ...]] = {"integer": int, "number": (int, float), "boolean": bool,
                                              "object": dict, "array": list}
    return value if any(isinstance(value, ok.get(k, object)) for k in kinds) else text


def _parse_elements(body: str, schema: dict[str, Any]) -> Any:
    """`NS<tag>…NS</tag>` sequences -> a dict (repeated tags become lists) or, for all-`item` children, a list."""
    # Each chunk after a namespace token starts with an opening or closing tag, then maybe text.
    stack: list[tuple[str, list[tuple[str, Any]], list[str], dict[str, Any]]] = [("", [], [], schema)]
    for i, chunk in enumerate(body.split(NS)):
        if i == 0:
            if chunk.strip():
                stack[-1][2].append(chunk)
            continue
        closing = chunk.startswith("</")
        gt = chunk.find(">")
        tag = chunk[2 if closing else 1 : gt] if gt >= 0 else chunk.lstrip("</")
        rest = chunk[gt + 1 :] if gt >= 0 else ""
        if closing:
            # Pop to the matching open tag (tolerating unclosed children).
            while len(stack) > 1:
                name, children, texts, sch = stack.pop()
                stack[-1][1].append((name, _value(children, texts, sch)))
                if name == tag:
                    break
        elif chunk.startswith("<"):
            stack.append((tag, [], [], _child_schema(stack[-1][3], tag)))
        if rest:
            stack[-1][2].append(rest)
    while len(stack) > 1:
        name, children, texts, sch = stack.pop()
        stack[-1][1].append((name, _value(children, texts, sch)))
    _, children, _texts, _ = stack[0]
    return _value(children, [], schema) if children else {}


def _value(children: list[tuple[str, Any]], texts: list[str], schema: dict[str, Any]) -> Any:
    if not children:
        return _scalar("".join(texts), schema)
    if all(name == "item" for name, _ in children) and ("array" in _types(schema) or not _types(schema)):
        return [v for _, v in children]
    obj: dict[str, Any] = {}
    for name, v in children:
        if name in obj:
            obj[name] = (obj[name] if isinstance(obj[name], list) else [obj[name]]) + [v]
        else:
            obj[name] = v
    return obj
