"""The agent loop: call the model, run its tool calls, feed the results back, until it stops.

Everything the loop learns goes through the session (and so into the event log) before it is acted on:
a tool call is logged as started before it runs and its result is logged before the next model call, so a
killed job can resume without running a finished call twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from m3code.agent.context import (
    SUMMARY_PROMPT,
    estimate_tokens,
    render_for_summary,
    split_for_compaction,
)
from m3code.providers.base import Provider
from m3code.providers.types import Done, Message, StreamEvent, ToolCall, ToolSpec, Usage, tool_images
from m3code.session.events import (
    AssistantMessage,
    Compaction,
    SteeringEvent,
    ToolCallStarted,
    ToolResultEvent,
)
from m3code.session.session import Session
from m3code.session.state import steering_message
from tools.base import Tool, ToolContext, ToolResult, call_tool

Status = Literal["done", "failed", "budget", "interrupted"]

INTERRUPTED_CALL = (
    "This call was interrupted: the session stopped while it ran, so it may have taken effect in part or "
    "not at all. Check the current state before running it again."
)


# The same reply (text and tool calls, ids aside) this many times in a row means the agent is stuck.
REPEAT_LIMIT = 3


@dataclass
class Budget:
    max_turns: int = 200
    max_cost: float | None = None
    max_tokens: int | None = None  # input + output, over the whole job
    deadline: float | None = None  # time.monotonic() value


@dataclass
class Outcome:
    status: Status
    final_answer: str = ""
    reason: str = ""


class BudgetExhausted(Exception):
    pass


class Agent:
    def __init__(
        self,
        provider: Provider,
        tools: dict[str, Tool[Any]],
        ctx: ToolContext,
        session: Session,
        system_prompt: str,
        task: str,
        *,
        budget: Budget,
        context_window: int,
        compact_at: float = 0.8,
        turns_done: int = 0,
        usage: Usage | None = None,
        name: str = "main",
        inbox: Callable[[], list[str]] | None = None,
    ) -> None:
        self.provider = provider
        self.tools = tools
        self.ctx = ctx
        self.session = session
        self.system = Message(role="system", content=system_prompt)
        self.task = task
        self.budget = budget
        self.context_window = context_window
        self.compact_at = compact_at
        self.turns = turns_done
        self.usage = usage or Usage()
        self.name = name
        # New words from the person (steering), taken between turns.
        self.inbox = inbox
        self.specs = [ToolSpec(name=t.name, description=t.description, parameters=t.schema())
                      for t in tools.values()]

    # -- the loop ---------------------------------------------------------------------------------------

    def _live(self, event: StreamEvent) -> None:
        """Hand a stream event (delta, retry) to the views, tagged with this agent."""
        if not isinstance(event, Done):
            event.agent = self.name
        self.session.emit(event)

    async def run(self, history: list[Message], pending: list[ToolCall] | None = None) -> Outcome:
        """Continue `history` (everything after the system prompt) until the model answers without tools.

        `pending` are calls of the last assistant turn still to run (when resuming).
        """
        if pending:
            history.extend(await self.run_tool_calls(pending))
        replies: list[tuple[str, list[tuple[str, str]]]] = []
        while True:
            self._check_budget()
            for text in self.inbox() if self.inbox else []:
                self.session.emit(SteeringEvent(text=text, agent=self.name), sync=True)
                history.append(steering_message(text))
            history = await self._maybe_compact(history)
            completion = await self.provider.complete([self.system, *history], self.specs, on_event=self._live)
            self.turns += 1
            self.usage = self.usage + completion.usage
            message = completion.message
            self.session.emit(AssistantMessage(message=message, usage=completion.usage, agent=self.name,
                                               stop_reason=completion.stop_reason), sync=True)
            history.append(message)
            replies.append((message.content, [(c.name, c.arguments) for c in message.tool_calls]))
            if len(replies) >= REPEAT_LIMIT and all(r == replies[-1] for r in replies[-REPEAT_LIMIT:]):
                return Outcome("failed", message.content,
                               f"loop breaker: the model gave the same reply {REPEAT_LIMIT} times in a row")
            if not message.tool_calls:
                if completion.stop_reason == "max_tokens":
                    return Outcome("failed", message.content, "the model hit its output token limit")
                return Outcome("done", message.content)
            history.extend(await self.run_tool_calls(message.tool_calls))

    def _check_budget(self) -> None:
        b = self.budget
        if self.turns >= b.max_turns:
            raise BudgetExhausted(f"reached --max-turns {b.max_turns}")
        if b.max_cost is not None and self.usage.cost_usd >= b.max_cost:
            raise BudgetExhausted(f"spent ${self.usage.cost_usd:.4f} of --max-cost ${b.max_cost:.4f}")
        used = self.usage.input_tokens + self.usage.output_tokens
        if b.max_tokens is not None and used >= b.max_tokens:
            raise BudgetExhausted(f"used {used} tokens of --max-tokens {b.max_tokens}")
        if b.deadline is not None and time.monotonic() >= b.deadline:
            raise BudgetExhausted("reached --timeout")

    # -- tools ------------------------------------------------------------------------------------------

    async def run_tool_calls(self, calls: list[ToolCall]) -> list[Message]:
        """Run one turn's calls: consecutive read-only calls together, anything else alone, in order."""
        results: list[Message] = []
        batch: list[ToolCall] = []
        for call in calls:
            tool = self.tools.get(call.name)
            if tool is not None and tool.read_only:
                batch.append(call)
                continue
            results += await asyncio.gather(*(self._run_one(c) for c in batch))
            batch = []
            results.append(await self._run_one(call))
        results += await asyncio.gather(*(self._run_one(c) for c in batch))
        self.session.log.sync()
        return results

    async def _run_one(self, call: ToolCall) -> Message:
        # Flushed (so a killed process leaves it behind), not fsynced: the turn's results are synced together.
        self.session.emit(ToolCallStarted(call_id=call.id, name=call.name, arguments=call.arguments,
                                          agent=self.name))
        began = time.monotonic()
        result = await call_tool(self.tools, call.name, call.arguments, self.ctx)
        return self.record_result(call, result, time.monotonic() - began)

    def record_result(self, call: ToolCall, result: ToolResult, duration: float = 0.0) -> Message:
        self.session.emit(ToolResultEvent(call_id=call.id, name=call.name, output=result.output,
                                          is_error=result.is_error, data=result.data, duration=duration,
                                          agent=self.name))
        return Message(role="tool", tool_call_id=call.id, name=call.name, content=result.output,
                       is_error=result.is_error,
                       images=tool_images(result.data))  # images: the `image` tool's data["image"] (logged above)

    # -- context ----------------------------------------------------------------------------------------

    async def _maybe_compact(self, history: list[Message]) -> list[Message]:
        size = estimate_tokens([self.system, *history])
        if size < self.compact_at * self.context_window or len(history) < 4:
            return history
        # history[0] is the task (after an earlier compaction: the task and that summary).
        old, recent = split_for_compaction(history, keep_recent=6)
        if len(old) < 2:
            return history
        request = [
            Message(role="system", content=SUMMARY_PROMPT),
            Message(role="user", content=render_for_summary(old)),
        ]
        completion = await self.provider.complete(request, [], on_event=None)
        self.usage = self.usage + completion.usage
        summary = completion.message.content.strip()
        merged = Message(role="user", content=f"{self.task}\n\n## Summary of the work so far\n\n{summary}")
        new_history = [merged, *recent]
        self.session.emit(Compaction(summary=summary, messages=new_history, tokens_before=size,
                                     usage=completion.usage, agent=self.name), sync=True)
        return new_history
