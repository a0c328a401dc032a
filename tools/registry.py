"""The standard tool set, and what the model is told about each tool."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.base import Tool
from tools.files import EditTool, MultiEditTool, ReadTool, WriteTool
from tools.image import ImageTool
from tools.search import GlobTool, GrepTool
from tools.shell import BashTool


def default_tools() -> dict[str, Tool[Any]]:
    """Every standard tool by name: read, write, edit, multi_edit, grep, glob, bash, image."""
    tools: list[Tool[Any]] = [
        ReadTool(), WriteTool(), EditTool(), MultiEditTool(), GrepTool(), GlobTool(), BashTool(), ImageTool(),
    ]
    return {tool.name: tool for tool in tools}


def tool_specs(tools: dict[str, Tool[Any]] | Iterable[Tool[Any]]) -> list[dict[str, Any]]:
    """{name, description, parameters} for each tool, in the shape of m3code's ToolSpec.

    Plain dicts: tools/ does not import the app (the arrows go m3code -> tools -> sandbox).
    """
    listed = tools.values() if isinstance(tools, dict) else tools
    return [
        {"name": tool.name, "description": tool.description, "parameters": tool.schema()} for tool in listed
    ]
