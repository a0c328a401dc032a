"""Views of the event stream for `m3code run`: human progress on stderr, or JSON lines on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from m3code.providers.types import Retrying
from m3code.session.events import (
    AssistantMessage,
    Compaction,
    ErrorEvent,
    PlanEvent,
    SessionEnded,
    SessionResumed,
    SessionStarted,
    SteeringEvent,
    StepEvent,
    ToolCallStarted,
    ToolResultEvent,
    VerdictEvent,
)


def _one_line(text: str, width: int = 100) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def summarise_arguments(raw: str) -> str:
    """The argument a person most wants to see for a call: the command, the path, the pattern."""
    try:
        args = json.loads(raw)
    except ValueError:
        return _one_line(raw, 80)
    if not isinstance(args, dict):
        return _one_line(raw, 80)
    for key in ("command", "path", "pattern", "file_path"):
        if isinstance(args.get(key), str):
            return _one_line(args[key], 80)
    return _one_line(raw, 80)


def result_summary(event: ToolResultEvent) -> str:
    """One line for a tool result: what a person glancing at the progress wants to know."""
    data = event.data
    if data.get("timed_out"):
        return _one_line(event.output, 90)
    if "exit_code" in data:  # a command: its exit code and the last thing it printed
        body = [line for line in event.output.strip().splitlines()[:-1] if line.strip()]
        last = _one_line(body[-1], 80) if body else ""
        return f"exit {data['exit_code']}" + (f" · {last}" if last else "")
    if "total_lines" in data and not event.is_error:
        return f"{data.get('path', '')}: lines {data.get('start_line', 1)}-{data.get('end_line', 0)} " \
               f"of {data['total_lines']}"
    text = event.output.strip()
    first = _one_line(text.splitlines()[0], 90) if text else ""
    lines = text.count("\n") + 1
    return first + (f" ({lines} lines)" if lines > 1 else "")


class ProgressPrinter:
    """Readable progress for a person watching a headless job."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stderr
        tty = self.out.isatty()
        self.dim = "\033[2m" if tty else ""
        self.red = "\033[31m" if tty else ""
        self.green = "\033[32m" if tty else ""
        self.reset = "\033[0m" if tty else ""
        self._prefix = ""

    def _say(self, text: str) -> None:
        print(self._prefix + text, file=self.out, flush=True)

    def __call__(self, event: Any) -> None:
        d, r = self.dim, self.reset
        # In a team job, say whose line it is (on every line this event prints, and only on those).
        who = getattr(event, "agent", "main")
        agent_line = who not in ("main", "team") and isinstance(event, (AssistantMessage, ToolCallStarted,
                                                                         ToolResultEvent))
        self._prefix = f"{d}[{who}]{r} " if agent_line else ""
        if isinstance(event, PlanEvent):
            self._say(f"plan v{event.version}" + (f" ({event.reason[:120]})" if event.reason else "") + ":")
            for step in event.steps:
                after = f" {d}after {', '.join(step.depends_on)}{r}" if step.depends_on else ""
                self._say(f"  {step.id}. {step.title}{after}")
        elif isinstance(event, StepEvent):
            mark = {"passed": f"{self.green}✓{r}", "failed": f"{self.red}✗{r}"}.get(event.state, "·")
            commit = f" {d}{event.commit[:10]}{r}" if event.commit and event.state == "passed" else ""
            detail = f" {d}{event.detail}{r}" if event.detail else ""
            self._say(f"{mark} step {event.step_id} {event.state} (attempt {event.attempt}){commit}{detail}")
        elif isinstance(event, VerdictEvent):
            color = self.green if event.verdict == "PASS" else self.red
            self._say(f"  verdict on {event.step_id}: {color}{event.verdict}{r} {d}{_one_line(event.findings, 120)}{r}")
        elif isinstance(event, SteeringEvent):
            self._say(f"steering taken: {event.text}")
        elif isinstance(event, SessionStarted):
            self._say(f"{d}m3code {event.mode} session {event.session_id} · {event.model} via {event.base_url} · "
                      f"sandbox {event.sandbox or '?'} · {event.workspace}{r}")
        elif isinstance(event, SessionResumed):
            self._say(f"{d}resumed; {len(event.interrupted_calls)} interrupted call(s) reported to the model{r}")
        elif isinstance(event, AssistantMessage):
            if event.message.reasoning:
                self._say(f"{d}thinking: {_one_line(event.message.reasoning, 160)}{r}")
            if event.message.tool_calls and event.message.content.strip():
                self._say(event.message.content.strip())
        elif isinstance(event, ToolCallStarted):
            self._say(f"→ {event.name} {d}{summarise_arguments(event.arguments)}{r}")
        elif isinstance(event, ToolResultEvent):
            mark = f"{self.red}✗{r}" if event.is_error else f"{self.green}✓{r}"
            self._say(f"  {mark} {d}{result_summary(event)}{r}")
        elif isinstance(event, Retrying):
            self._say(f"{d}  ↻ retry {event.attempt} in {event.delay:.1f}s: {event.reason}{r}")
        elif isinstance(event, Compaction):
            self._say(f"{d}… compacted the history ({event.tokens_before} tokens) into a summary{r}")
        elif isinstance(event, ErrorEvent):
            self._say(f"{self.red}error:{r} {event.message}")
        elif isinstance(event, SessionEnded):
            u = event.usage
            cost = f" · ${u.cost_usd:.4f}" if u.cost_usd else ""
            self._say(f"{d}{event.status} · {u.input_tokens} tokens in, {u.output_tokens} out{cost}{r}")


class JsonlPrinter:
    """Every event, live ones included, as one JSON object per line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stdout

    def __call__(self, event: Any) -> None:
        self.out.write(event.model_dump_json() + "\n")
        self.out.flush()
