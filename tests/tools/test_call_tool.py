"""The path from a raw model call to a result: every mistake becomes an error result, never a crash."""

from __future__ import annotations

from typing import Any

from tools.base import ToolContext, call_tool
from tools.registry import default_tools, tool_specs


async def test_unknown_tool(ctx: ToolContext) -> None:
    result = await call_tool(default_tools(), "rm_rf", "{}", ctx)
    assert result.is_error and "Unknown tool 'rm_rf'" in result.output and "read" in result.output


async def test_invalid_json(ctx: ToolContext) -> None:
    result = await call_tool(default_tools(), "read", '{"path": "a.txt"', ctx)
    assert result.is_error and "not valid JSON" in result.output
    listed = await call_tool(default_tools(), "read", '["a.txt"]', ctx)
    assert listed.is_error and "JSON object" in listed.output


async def test_validation_errors(ctx: ToolContext) -> None:
    tools = default_tools()
    missing = await call_tool(tools, "edit", '{"path": "a.txt"}', ctx)
    assert missing.is_error and "old_string: Field required" in missing.output
    wrong_type = await call_tool(tools, "read", '{"path": "a.txt", "offset": "ten"}', ctx)
    assert wrong_type.is_error and "offset" in wrong_type.output
    extra = await call_tool(tools, "read", '{"path": "a.txt", "lines": 5}', ctx)
    assert extra.is_error and "lines: Extra inputs are not permitted" in extra.output


def test_default_tools_and_specs() -> None:
    tools = default_tools()
    assert set(tools) == {"read", "write", "edit", "multi_edit", "grep", "glob", "bash", "image"}
    assert [tool.read_only for tool in tools.values()] == [True, False, False, False, True, True, False, True]
    specs = {spec["name"]: spec for spec in tool_specs(tools)}
    assert set(specs) == set(tools)

    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for value in node.values() for k in keys(value)}
        if isinstance(node, list):
            return {k for item in node for k in keys(item)}
        return set()

    for spec in specs.values():
        assert spec["description"] and spec["parameters"]["type"] == "object"
        assert not {"$ref", "$defs", "title"} & keys(spec["parameters"])
    edit_item = specs["multi_edit"]["parameters"]["properties"]["edits"]["items"]
    assert edit_item["required"] == ["old_string", "new_string"]
