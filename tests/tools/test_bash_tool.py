"""The bash tool, through the local sandbox."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sandbox.helpers import wait_process_gone
from tests.tools.helpers import RunTool
from tools.base import ToolContext
from tools.shell import MAX_OUTPUT_CHARS, BashArgs, BashTool, cap_output


async def test_output_and_exit_code(workspace: Path, run_tool: RunTool) -> None:
    ok = await run_tool("bash", command="pwd; echo hi")
    assert not ok.is_error
    assert ok.output == f"{workspace.resolve()}\nhi\nExit code: 0"
    failed = await run_tool("bash", command="echo partial; echo boom >&2; exit 2", description="fail")
    assert failed.is_error
    assert failed.output == "[stdout]\npartial\n[stderr]\nboom\nExit code: 2"
    assert failed.data["exit_code"] == 2 and failed.data["description"] == "fail"
    silent = await run_tool("bash", command="true")
    assert silent.output == "(no output)\nExit code: 0"


async def test_timeout_kills_background_children(workspace: Path, run_tool: RunTool) -> None:
    started = time.monotonic()
    result = await run_tool("bash", command="echo before; sleep 30 & echo $! > child.pid; wait", timeout=1)
    assert time.monotonic() - started < 6
    assert result.is_error and result.data["timed_out"]
    assert "killed" in result.output and "after 1 s" in result.output and "before" in result.output
    assert await wait_process_gone(int((workspace / "child.pid").read_text()))


async def test_long_output_is_capped_with_the_cut_stated(run_tool: RunTool) -> None:
    result = await run_tool("bash", command="seq 1 20000")
    assert len(result.output) < MAX_OUTPUT_CHARS + 300
    assert result.output.startswith("1\n2\n") and result.output.endswith("20000\nExit code: 0")
    cut = result.data["cut_chars"]
    assert cut > 0 and f"{cut} characters" in result.output
    assert f"capped at {MAX_OUTPUT_CHARS} characters" in result.output


def test_cap_output_cuts_at_line_breaks() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    capped, cut = cap_output(text, cap=600)
    head, _, tail = capped.partition("[...")
    assert head.endswith("\n") and tail.split("\n", 1)[1].startswith("line ")
    assert len(text) - cut == len(head) + len(tail.split("\n", 1)[1])


async def test_output_streams_to_context_callback(ctx: ToolContext) -> None:
    seen: list[str] = []
    ctx.on_output = seen.append
    result = await BashTool().run(BashArgs(command="echo streamed"), ctx)
    assert "streamed" in result.output and "".join(seen) == "streamed\n"


async def test_timeout_is_bounded(run_tool: RunTool) -> None:
    result = await run_tool("bash", command="true", timeout=601)
    assert result.is_error and "timeout" in result.output
