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
sandbox_app = typer.Typer(help="Build, check and clean up the sandboxes commands run in.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sessions_app, name="sessions")
app.add_typer(sandbox_app, name="sandbox")

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
    sandbox: Annotated[str | None, typer.Option(help="Where commands run: auto | docker | bwrap | local.")] = None,
    policy: Annotated[str | None, typer.Option(help="read-only | workspace-write | full-access")] = None,
    network: Annotated[bool | None, typer.Option("--network/--no-network",
                                                 help="Let sandboxed commands use the network.")] = None,
    max_turns: Annotated[int | None, typer.Option(help="Stop after this many model turns.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Stop after spending this many USD.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop after this many tokens (in + out).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    stream: Annotated[bool | None, typer.Option("--stream/--no-stream", help="Stream model output.")] = None,
    solo: Annotated[bool | None, typer.Option("--solo/--team",
                                              help="One agent, or the planner/producers/verifier team.")] = None,
    parallel: Annotated[int | None, typer.Option(help="Team steps that may run at once.")] = None,
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
    flags = {"model": model, "base_url": base_url, "api_format": api_format, "thinking": thinking,
             "sandbox": sandbox, "policy": policy, "network": network, "max_turns": max_turns,
             "max_cost": max_cost, "max_tokens": max_tokens, "timeout": timeout, "stream": stream,
             "mode": None if solo is None else ("solo" if solo else "team"),
             "parallel": parallel}
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
    send(folder, text.strip())
    print(f"Sent to session {folder.name}; the job takes it at its next step boundary.")


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
