"""The `m3code` command line. Imports stay light here: each command imports what it needs when run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from m3code import __version__

app = typer.Typer(
    name="m3code",
    help="An agentic coding harness for MiniMax M3. With no command, opens the app in this terminal.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
sessions_app = typer.Typer(help="List and inspect sessions.", no_args_is_help=True)
runtime_app = typer.Typer(help="Tools for the local M3 runtime.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Build, check and clean up the sandboxes commands run in.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sessions_app, name="sessions")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(runtime_app, name="runtime")

Workspace = Annotated[Path, typer.Option("--workspace", "-w", help="The repository to work in.")]
# --- GitHub / CI options, shared by `run` and `pr open` ---
BaseBranch = Annotated[str | None, typer.Option("--base", help="Branch the pull request merges into "
                                                               "(default: the repository's default branch).")]
Draft = Annotated[bool, typer.Option("--draft", help="Open the pull request as a draft.")]
RepoOption = Annotated[str | None, typer.Option("--repo", metavar="OWNER/NAME",
                                                help="The GitHub repository (default: from the remote's URL).")]
RemoteOption = Annotated[str, typer.Option("--remote", help="The git remote to push the branch to.")]
ApiUrl = Annotated[str | None, typer.Option("--github-api-url", help="GitHub API base (default "
                                            "https://api.github.com; Enterprise: https://HOST/api/v3).")]
# --- end GitHub / CI options ---
# --- job options, shared by `run` and the app (bare `m3code`) ---
Model = Annotated[str | None, typer.Option(help="Model name.")]
BaseUrl = Annotated[str | None, typer.Option(help="API base URL (any OpenAI-compatible server).")]
ApiFormat = Annotated[str | None, typer.Option(help="openai | anthropic")]
Thinking = Annotated[str | None, typer.Option(help="enabled | adaptive | disabled")]
SandboxOption = Annotated[str | None, typer.Option("--sandbox",
                                                   help="Where commands run: auto | docker | bwrap | local.")]
PolicyOption = Annotated[str | None, typer.Option("--policy", help="read-only | workspace-write | full-access")]
Network = Annotated[bool | None, typer.Option("--network/--no-network", help="Let sandboxed commands use the network.")]
MaxTurns = Annotated[int | None, typer.Option(help="Stop after this many model turns.")]
MaxCost = Annotated[float | None, typer.Option(help="Stop after spending this many USD.")]
MaxTokens = Annotated[int | None, typer.Option(help="Stop after this many tokens (in + out).")]
Timeout = Annotated[float | None, typer.Option(help="Stop after this many seconds.")]
Stream = Annotated[bool | None, typer.Option("--stream/--no-stream", help="Stream model output.")]
Solo = Annotated[bool | None, typer.Option("--solo/--team", help="One agent, or the planner/producers/verifier team.")]
Parallel = Annotated[int | None, typer.Option(help="Team steps that may run at once.")]
Resume = Annotated[str | None, typer.Option(help="Continue this session id.")]


def _job_flags(model: str | None, base_url: str | None, api_format: str | None, thinking: str | None,
               sandbox: str | None, policy: str | None, network: bool | None, max_turns: int | None,
               max_cost: float | None, max_tokens: int | None, timeout: float | None, stream: bool | None,
               solo: bool | None, parallel: int | None) -> dict[str, Any]:
    return {"model": model, "base_url": base_url, "api_format": api_format, "thinking": thinking,
            "sandbox": sandbox, "policy": policy, "network": network, "max_turns": max_turns,
            "max_cost": max_cost, "max_tokens": max_tokens, "timeout": timeout, "stream": stream,
            "mode": None if solo is None else ("solo" if solo else "team"), "parallel": parallel}
# --- end job options ---


def _version(value: bool) -> None:
    if value:
        print(f"m3code {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    workspace: Workspace = Path("."),
    resume: Annotated[str | None, typer.Option(help="Reopen this session in the app.")] = None,
    model: Model = None,
    base_url: BaseUrl = None,
    api_format: ApiFormat = None,
    thinking: Thinking = None,
    sandbox: SandboxOption = None,
    policy: PolicyOption = None,
    network: Network = None,
    max_turns: MaxTurns = None,
    max_cost: MaxCost = None,
    max_tokens: MaxTokens = None,
    timeout: Timeout = None,
    stream: Stream = None,
    solo: Solo = None,
    parallel: Parallel = None,
) -> None:
    """Options given here (before any command) are the app's: `m3code --model M` opens the app with M."""
    flags = _job_flags(model, base_url, api_format, thinking, sandbox, policy, network, max_turns, max_cost,
                       max_tokens, timeout, stream, solo, parallel)
    given = any(v is not None for v in flags.values()) or resume is not None or workspace != Path(".")
    if ctx.invoked_subcommand is not None:
        if given:
            _fail(f"options before `{ctx.invoked_subcommand}` belong to the app; put them after the command.")
        return
    _open_app(workspace, resume, flags)


def _open_app(workspace: Path, resume: str | None, flags: dict[str, Any]) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail("the app needs a terminal. For a job without one, use `m3code run TASK.md` (see `m3code --help`).")
    if not workspace.is_dir():
        _fail(f"workspace {workspace} is not a directory.")
    if any(v is not None for v in flags.values()):  # bad flags fail here; a bad config file is said in the app
        from m3code.config import ConfigFileError, load_config

        try:
            load_config(workspace, flags)
        except ConfigFileError as exc:
            _fail(str(exc))
    if resume is not None:
        from m3code.session.log import SessionNotFound, find_session

        try:
            find_session(workspace, resume)
        except SessionNotFound as exc:
            _fail(str(exc))
    from m3code.tui import AppOptions, open_app

    raise typer.Exit(open_app(AppOptions(workspace=workspace, flags=flags, resume=resume)))


def _fail(message: str, code: int = 2) -> None:
    print(f"m3code: {message}", file=sys.stderr)
    raise typer.Exit(code)


@app.command()
def run(
    task: Annotated[Path | None, typer.Argument(help="Markdown file with the task.")] = None,
    workspace: Workspace = Path("."),
    resume: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    model: Model = None,
    base_url: BaseUrl = None,
    api_format: ApiFormat = None,
    thinking: Thinking = None,
    sandbox: SandboxOption = None,
    policy: PolicyOption = None,
    network: Network = None,
    max_turns: MaxTurns = None,
    max_cost: MaxCost = None,
    max_tokens: MaxTokens = None,
    timeout: Timeout = None,
    stream: Stream = None,
    solo: Solo = None,
    parallel: Parallel = None,
    output: Annotated[str, typer.Option(help="text (progress on stderr) | jsonl (events on stdout)")] = "text",
    # --- GitHub / CI (m3code/github) ---
    pr: Annotated[bool, typer.Option("--pr", help="When done, push the work as branch m3code/<slug> and open "
                                                  "a pull request (token: GITHUB_TOKEN or GH_TOKEN).")] = False,
    from_issue: Annotated[str | None, typer.Option("--from-issue", metavar="OWNER/NAME#N",
                                                   help="Take the task from a GitHub issue and its comments.")] = None,
    base: BaseBranch = None,
    draft: Draft = False,
    repo: RepoOption = None,
    remote: RemoteOption = "origin",
    github_api_url: ApiUrl = None,
    # --- end GitHub / CI ---
) -> None:
    """Run a headless job: the agent works on TASK until done, then prints its answer on stdout."""
    if sum(x is not None for x in (task, resume, from_issue)) != 1:
        _fail("give a task file, --from-issue OWNER/NAME#N or --resume SESSION_ID (one of them).")
    if output not in ("text", "jsonl"):
        _fail(f"--output must be text or jsonl, not {output!r}.")
    flags = _job_flags(model, base_url, api_format, thinking, sandbox, policy, network, max_turns, max_cost,
                       max_tokens, timeout, stream, solo, parallel)
    from m3code.run import RunRequest

    request = RunRequest(workspace=workspace, task_file=task, resume=resume, output=output,  # type: ignore[arg-type]
                         flags=flags)
    # --- GitHub / CI (m3code/github) ---
    if pr or from_issue:
        request.hooks, request.task_text = _github_run_setup(workspace, pr, from_issue, resume, flags, base, draft,
                                                             repo, remote, github_api_url)
    elif base or draft or repo or remote != "origin" or github_api_url:
        _fail("--base, --draft, --repo, --remote and --github-api-url go with --pr (or --from-issue).")
    # --- end GitHub / CI ---
    _run_job(request)


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


@app.command()
def steer(session_id: str, text: str, workspace: Workspace = Path(".")) -> None:
    """Send a requirement or correction to a running (or stopped) job; it takes it at its next step."""
    from m3code.session.inbox import send
    from m3code.session.log import SessionNotFound, find_session

    try:
        folder = find_session(workspace, session_id)
    except SessionNotFound as exc:
        _fail(str(exc))
    if not text.strip():
        _fail("the steering text is empty.")
    from m3code.session.log import read_events
    from m3code.session.state import rebuild

    ended = rebuild(list(read_events(folder))).ended
    if ended is not None and ended.status == "done":
        _fail(f"session {folder.name} has finished; steering reaches only a running or stopped job. Start a new "
              f"job, or continue this one in the app: m3code --resume {folder.name}")
    send(folder, text.strip())
    print(f"Sent to session {folder.name}; the job takes it at its next step boundary.")


def _runtime_missing(exc: ImportError) -> None:
    _fail(f"the local runtime needs its extra packages ({exc.name} is missing): pip install 'm3code[runtime]'.")


@app.command()
def serve(
    model: Annotated[Path, typer.Option(help="Checkpoint directory (config.json, safetensors, tokenizer).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: Annotated[str, typer.Option(help="cuda | cpu")] = "cuda",
    dtype: Annotated[str, typer.Option(help="bfloat16 | float16 | float32 | auto (as stored)")] = "bfloat16",
    served_name: Annotated[str | None, typer.Option(help="Model name the API reports.")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Longest context served, in tokens.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Output tokens when a request sets none.")] = None,
) -> None:
    """Serve an M3 checkpoint over the OpenAI API (chat completions, streaming, tools) on local GPUs."""
    if not (model / "config.json").is_file():
        _fail(f"{model} is not a checkpoint directory (no config.json). `m3code runtime tiny --out DIR` makes one.")
    try:
        from runtime.server import serve as run_server
    except ImportError as exc:
        _runtime_missing(exc)
    try:
        run_server(model, host=host, port=port, device=device, dtype=dtype, model_name=served_name,
                   max_model_len=max_model_len, default_max_tokens=max_tokens)
    except ValueError as exc:  # a bad --dtype, found before the port opens
        _fail(str(exc))


@runtime_app.command("tiny")
def runtime_tiny(
    out: Annotated[Path, typer.Option(help="Directory to write the checkpoint to.")],
    layout: Annotated[str, typer.Option(help="release (the published layout) | text (transformers' text model)")]
    = "release",
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
) -> None:
    """Write a tiny random M3 checkpoint with a tokenizer and chat template, for tests and demos."""
    if layout not in ("release", "text"):
        _fail(f"--layout must be release or text, not {layout!r}.")
    try:
        from runtime.tiny import write_tiny_checkpoint
    except ImportError as exc:
        _runtime_missing(exc)
    path = write_tiny_checkpoint(out, layout=layout, seed=seed)  # type: ignore[arg-type]
    print(f"Wrote a tiny M3 checkpoint to {path}. Serve it with: m3code serve --model {path} --device cpu")


@sandbox_app.command("doctor")
def sandbox_doctor() -> None:
    """Which sandbox backends work here; for each that does not, why and the fix."""
    from sandbox import doctor

    statuses = doctor()
    for status in statuses:
        mark = "ok " if status.works else "no "
        print(f"{mark} {status.name:7s} {status.detail}")
        if not status.works and status.fix:
            print(f"    fix: {status.fix}")
    raise typer.Exit(0 if any(s.works for s in statuses if s.name != "local") else 1)


@sandbox_app.command("build")
def sandbox_build(force: Annotated[bool, typer.Option(help="Rebuild even if the image is current.")] = False) -> None:
    """Build the m3code-sandbox image (from sandbox/Dockerfile, or offline with debootstrap)."""
    from sandbox import SandboxError
    from sandbox.docker import connect
    from sandbox.image import build_image

    try:
        built = build_image(connect(), force=force, log=print)
    except SandboxError as exc:
        _fail(str(exc), 1)
    how = "already current" if built.method == "cached" else f"built with {built.method} in {built.seconds:.0f} s"
    print(f"{built.tag}: {how}.")


@sandbox_app.command("prune")
def sandbox_prune(all_owners: Annotated[bool, typer.Option("--all", help="Also other users' sandboxes.")] = False,
                  ) -> None:
    """Remove sandboxes left behind by sessions that died (e.g. after kill -9)."""
    from sandbox import SandboxError, prune

    try:
        removed = prune(all_owners=all_owners)
    except SandboxError as exc:
        _fail(str(exc), 1)
    for item in removed:
        print(f"removed {item}")
    print(f"Removed {len(removed)} leftover sandbox(es)." if removed else "Nothing to remove.")


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


# --- GitHub / CI: `run --pr`, `run --from-issue`, `m3code pr open` (the work lives in m3code/github) ---
pr_app = typer.Typer(help="Pull requests of finished sessions.", no_args_is_help=True)
app.add_typer(pr_app, name="pr")


def _github_run_setup(workspace: Path, pr: bool, from_issue: str | None, resume: str | None,
                      flags: dict[str, Any], base: str | None, draft: bool, repo: str | None, remote: str,
                      github_api_url: str | None) -> tuple[Any, str | None]:
    from m3code.github.errors import GitHubFeatureError
    from m3code.github.publish import PrOptions
    from m3code.github.setup import RunGitHubOptions, prepare_run

    options = PrOptions(base=base, draft=draft, repo=repo, api_url=github_api_url, remote=remote)
    try:
        return prepare_run(workspace, RunGitHubOptions(pr=pr, from_issue=from_issue, pr_options=options,
                                                       resume=resume, flags=flags))
    except GitHubFeatureError as exc:
        _fail(str(exc), exc.exit_code)
        raise  # unreachable: _fail exits


@pr_app.command("open")
def pr_open(
    session_id: Annotated[str | None, typer.Argument(help="The session (default: the newest).")] = None,
    workspace: Workspace = Path("."),
    base: BaseBranch = None,
    draft: Draft = False,
    repo: RepoOption = None,
    remote: RemoteOption = "origin",
    github_api_url: ApiUrl = None,
) -> None:
    """Push a finished session's work as branch m3code/<slug> and open (or update) its pull request."""
    from m3code.github.commands import open_pr
    from m3code.github.errors import GitHubFeatureError
    from m3code.github.publish import PrOptions

    options = PrOptions(base=base, draft=draft, repo=repo, api_url=github_api_url, remote=remote)
    try:
        code = open_pr(workspace, session_id, options)
    except GitHubFeatureError as exc:
        _fail(str(exc), exc.exit_code)
    raise typer.Exit(code)
# --- end GitHub / CI ---


def main() -> None:
    app()
