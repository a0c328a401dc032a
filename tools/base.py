"""What a tool is, and how a raw call from the model becomes a result the model can read."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox.base import Sandbox, SandboxError
from tools.schema import model_schema


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    NETWORK = "network"


class ToolError(Exception):
    """A failure the model should see and can act on (bad path, no match, ...)."""


@dataclass
class ToolContext:
    workspace: Path
    sandbox: Sandbox
    # Receives a command's output as it arrives (for the UI); the model sees only the final result.
    on_output: Callable[[str], None] | None = None


@dataclass
class ToolResult:
    output: str  # text for the model
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # structured detail for the UI and the log


class ToolArgs(BaseModel):
    """Base for argument models: an unknown (say, misspelt) argument is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


A = TypeVar("A", bound=BaseModel)


class Tool(ABC, Generic[A]):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    permission: ClassVar[Permission]

    @abstractmethod
    async def run(self, args: A, ctx: ToolContext) -> ToolResult: ...

    @property
    def read_only(self) -> bool:
        return self.permission is Permission.READ

    def schema(self) -> dict[str, Any]:
        return model_schema(self.Args)


async def call_tool(
    tools: dict[str, Tool[Any]], name: str, raw_arguments: str, ctx: ToolContext
) -> ToolResult:
    """Run one call as the model sent it. The model's mistakes never raise: they become errors it sees."""
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(sorted(tools))
        return ToolResult(f"Unknown tool {name!r}. Available tools: {known}.", is_error=True)
    try:
        payload = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError as exc:
        return ToolResult(
            f"The arguments for {name} are not valid JSON ({exc.msg} at position {exc.pos}). "
            "Send a JSON object matching the tool's schema.",
            is_error=True,
        )
    if not isinstance(payload, dict):
        return ToolResult(f"The arguments for {name} must be a JSON object, got {type(payload).__name__}.",
                          is_error=True)
    try:
        args = tool.Args.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        return ToolResult(f"Invalid arguments for {name}: {problems}.", is_error=True)
    try:
        return await tool.run(args, ctx)
    except ToolError as exc:
        return ToolResult(str(exc), is_error=True)
    except SandboxError as exc:  # the sandbox itself broke (daemon gone, container died): say so, go on
        return ToolResult(f"{name} could not run: {exc}", is_error=True)
    except OSError as exc:
        return ToolResult(f"{name} failed: {exc}", is_error=True)
