"""Types shared by the tool tests."""

from collections.abc import Awaitable, Callable

from tools.base import ToolResult

# run_tool("edit", path=..., old_string=...): a call by name with keyword arguments sent as JSON.
RunTool = Callable[..., Awaitable[ToolResult]]
