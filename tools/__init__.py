"""The agent's tools: one module per family, each tool a pydantic argument model and an async run."""

from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult, call_tool
from tools.registry import default_tools, tool_specs

__all__ = [
    "Permission",
    "Tool",
    "ToolArgs",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "call_tool",
    "default_tools",
    "tool_specs",
]
