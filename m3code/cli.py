"""The `m3code` command line. Imports stay light here: each command imports what it needs when run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from m3code import __version__

app = typer.Typer(
    name="m3code",
    help="An agentic coding harness for MiniMax M3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
sessions_app = typer.Typer(help="List and inspect sessions.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sessions_app, name="sessions")

Workspace = Annotated[Path, typer.Option("--workspace", "-w", help="The repository to work in.")]


def _version(value: bool) -> None:
    if value:
        print(f"m3code {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    pass


def _fail(message: str, code: int = 2) -> None:
    print(f"m3code: {message}", file=sys.stderr)
    raise typer.Exit(code)


@app.command()
def run(
    task: Annotated[Path | None, typer.Argument(help="Markdown file with the task.")] = None,
    workspace: Workspace = Path("."),
    resume: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="API base URL (any OpenAI-compatible server).")] = None,
    api_format: Annotated[str | None, typer.Option(help="openai | anthropic")] = None,
    thinking: Annotated[str | None, typer.Option(help="enabled | adaptive | disabled")] = None,
    sandbox: Annotated[str | None, typer.Option(help="Where commands run: local.")] = None,
    max_turns: Annotated[int | None, typer.Option(help="Stop after this many model turns.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Stop after spending this many USD.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    stream: Annotated[bool | None, typer.Option("--stream/--no-stream", help="Stream model output.")] = None,
    output: Annotated[str, typer.Option(help="text (progress on stderr) | jsonl (events on stdout)")] = "text",
) -> None:
    """Run a headless job: the agent works on TASK until done, then prints its answer on stdout."""
    if (task is None) == (resume is None):
        _fail("give a task file, or --resume SESSION_ID (not both).")
    if output not in ("text", "jsonl"):
        _fail(f"--output must be text or jsonl, not {output!r}.")
    flags = {"model": model, "base_url": base_url, "api_format": api_format, "thinking": thinking,
             "sandbox": sandbox, "max_turns": max_turns, "max_cost": max_cost, "timeout": timeout,
             "stream": stream}
    from m3code.run import RunRequest

    _run_job(RunRequest(workspace=workspace, task_file=task, resume=resume, output=output,  # type: ignore[arg-type]
                        flags=flags))


def _run_job(request: Any) -> None:
    import asyncio

    from m3code.run import UsageError, execute

    try:
        code, answer = asyncio.run(execute(request))
    except UsageError as exc:
        _fail(str(exc))
    if answer and request.output == "text":
        print(answer)
    raise typer.Exit(code)


@app.command()
def demo(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to put the demo repository.")] = None,
    output: Annotated[str, typer.Option(help="text | jsonl")] = "text",
) -> None:
    """Replay a scripted model session on an example repository: no API key, no network."""
    from m3code.demo import prepare_demo

    try:
        request, server = prepare_demo(directory, output)
    except FileExistsError as exc:
        _fail(str(exc))
    try:
        _run_job(request)
    finally:
        server.stop()


@config_app.command("show")
def config_show(workspace: Workspace = Path(".")) -> None:
    """Print every setting, its effective value and where it came from (secrets masked)."""
    from m3code.config import ConfigFileError, describe, load_config

    try:
        loaded = load_config(workspace)
    except ConfigFileError as exc:
        _fail(str(exc))
    rows = describe(loaded)
    width = max(len(k) for k, _, _ in rows)
    vwidth = max(len(v) for _, v, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value:<{vwidth}}  ({source})")


@sessions_app.command("list")
def sessions_list(workspace: Workspace = Path(".")) -> None:
    """Sessions of this repository, newest first."""
    from m3code.session.summary import list_sessions

    rows = list_sessions(workspace)
    if not rows:
        print("No sessions yet. Start one with `m3code run TASK.md`.")
    for row in rows:
        print(row)


@sessions_app.command("show")
def sessions_show(session_id: str, workspace: Workspace = Path(".")) -> None:
    """The transcript of one session: task, tool calls, results and the answer."""
    from m3code.session.log import SessionNotFound
    from m3code.session.summary import show_session

    try:
        print(show_session(workspace, session_id))
    except SessionNotFound as exc:
        _fail(str(exc))


def main() -> None:
    app()
