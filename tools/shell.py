"""The bash tool: one shell command in the sandbox, with a timeout and its output capped."""

from __future__ import annotations

import re

from pydantic import Field

from sandbox.base import ExecResult
from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolResult

DEFAULT_TIMEOUT_S = 120
MAX_TIMEOUT_S = 600
MAX_OUTPUT_CHARS = 30_000
HEAD_SHARE = 1 / 3  # of the cap kept from the start; the rest from the end, where errors and summaries are
# Commands run without a terminal: pagers and credential prompts would wait forever for input.
NONINTERACTIVE_ENV = {
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "DEBIAN_FRONTEND": "noninteractive",
}
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class BashArgs(ToolArgs):
    command: str = Field(min_length=1, description="The bash command line to run in the workspace folder.")
    timeout: int = Field(
        default=DEFAULT_TIMEOUT_S, ge=1, le=MAX_TIMEOUT_S,
        description=(
            "Seconds before the command and all its child processes are killed "
            f"(default {DEFAULT_TIMEOUT_S}, at most {MAX_TIMEOUT_S})."
        ),
    )
    description: str | None = Field(
        default=None, description="A few words saying what the command does, shown to the user."
    )


class BashTool(Tool[BashArgs]):
    name = "bash"
    description = (
        "Run a bash command in the workspace folder and return its output and exit code. Each call is a "
        "fresh shell: `cd` and variables do not carry over to the next call. There is no terminal and no "
        f"input: interactive programs will not work. Output over {MAX_OUTPUT_CHARS} characters is cut in the "
        "middle (the start and the end are kept); redirect long output to a file and read or grep it. "
        "Prefer the read, grep, glob and edit tools over cat, grep, find and sed."
    )
    Args = BashArgs
    permission = Permission.EXECUTE

    async def run(self, args: BashArgs, ctx: ToolContext) -> ToolResult:
        result = await ctx.sandbox.exec(
            args.command, cwd=ctx.workspace, env=NONINTERACTIVE_ENV, timeout=args.timeout,
            on_output=ctx.on_output,
        )
        output, cut = cap_output(_combine(result))
        data = {
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "stdout_len": len(result.stdout),
            "stderr_len": len(result.stderr),
            "cut_chars": cut,
            "sandbox_truncated": result.truncated,
            "description": args.description,
        }
        if result.timed_out:
            return ToolResult(
                f"The command timed out: it was killed, with its child processes, after {args.timeout} s. "
                f"Output so far:\n{output}",
                is_error=True, data=data,
            )
        return ToolResult(
            f"{output}\nExit code: {result.exit_code}", is_error=result.exit_code != 0, data=data
        )


def _combine(result: ExecResult) -> str:
    stdout = _ANSI_ESCAPE.sub("", result.stdout).rstrip("\n")
    stderr = _ANSI_ESCAPE.sub("", result.stderr).rstrip("\n")
    if not stderr:
        return stdout or "(no output)"
    if not stdout:
        return f"[stderr]\n{stderr}"
    return f"[stdout]\n{stdout}\n[stderr]\n{stderr}"


def cap_output(text: str, cap: int = MAX_OUTPUT_CHARS) -> tuple[str, int]:
    """`text` cut in the middle to at most about `cap` characters, at line breaks; also how much was cut."""
    if len(text) <= cap:
        return text, 0
    head_end = int(cap * HEAD_SHARE)
    tail_start = len(text) - (cap - head_end)
    # Cut at line breaks when one is near, so no line is shown half.
    newline = text.rfind("\n", max(0, head_end - 500), head_end)
    head_end = newline + 1 if newline != -1 else head_end
    newline = text.find("\n", tail_start, tail_start + 500)
    tail_start = newline + 1 if newline != -1 else tail_start
    cut = tail_start - head_end
    lines = text.count("\n", head_end, tail_start)
    marker = (
        f"[... {cut} characters ({lines} lines) cut from the middle: output is capped at {cap} characters, "
        "keeping the start and the end ...]\n"
    )
    head = text[:head_end] if text[:head_end].endswith("\n") else text[:head_end] + "\n"
    return head + marker + text[tail_start:], cut
