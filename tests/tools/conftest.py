"""Fixtures for the tool tests: a real workspace folder, a local sandbox, and calls through call_tool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.local import LocalSandbox
from tests.tools.helpers import RunTool
from tools.base import ToolContext, ToolResult, call_tool
from tools.registry import default_tools


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
async def ctx(workspace: Path) -> AsyncIterator[ToolContext]:
    sandbox = LocalSandbox(workspace)
    yield ToolContext(workspace=workspace, sandbox=sandbox)
    await sandbox.close()


@pytest.fixture
def run_tool(ctx: ToolContext) -> RunTool:
    """Call a tool the way the agent loop does: by name, with JSON arguments."""
    tools = default_tools()

    async def run(name: str, **arguments: Any) -> ToolResult:
        return await call_tool(tools, name, json.dumps(arguments), ctx)

    return run
