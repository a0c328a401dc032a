"""`m3code run`: one headless job from a task file (or a resumed session) to a final answer."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from m3code import __version__
from m3code.agent.context import build_system_prompt
from m3code.agent.loop import INTERRUPTED_CALL, Agent, Budget, BudgetExhausted, Outcome
from m3code.config import ConfigFileError, Settings, load_config
from m3code.providers import make_provider
from m3code.providers.base import ProviderSettings
from m3code.providers.profiles import DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_OPENAI_BASE_URL, profile_for
from m3code.providers.types import ImagePart, Message, ProviderError
from m3code.render import JsonlPrinter, ProgressPrinter
from m3code.sandboxing import sandbox_factory
from m3code.session.events import ErrorEvent, SessionEnded, SessionResumed, SessionStarted, UserMessage
from m3code.session.inbox import Inbox, send
from m3code.session.log import SessionNotFound, find_session, new_session_id, read_events, sessions_dir
from m3code.session.session import Session
from m3code.session.state import SessionState, rebuild
from m3code.team.gitwork import GitWorkError, JobRepo
from m3code.team.resume import team_resume
from m3code.team.runner import Team, TeamConfig, TeamError, TeamResume
from sandbox import Sandbox, SandboxError
from tools.base import ToolContext, ToolResult
from tools.bench import BenchTool
from tools.registry import default_tools

SKIPPED_CALL = "Not run: the person stopped the turn before this call started and sent a new message."
EXIT_CODES = {"done": 0, "failed": 1, "budget": 3, "interrupted": 130}
USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the person running the job: exit 2 with this message."""


# --- CI hooks: `run --pr` and `--from-issue` (m3code/github) hang their steps on a job through these ---
class JobHooks(Protocol):
    def open_session(self, session_id: str, folder: Path, listeners: list[Any], settings: Settings) -> Session:
        """The job's session (one that masks secrets)."""
        ...

    def started(self, session: Session) -> None:
        """After the session started or resumed, before any work."""
        ...

    def finished(self, session: Session, status: str, code: int) -> int:
        """After session_ended is logged (e.g. push the work and open a PR); returns the exit code."""
        ...
# --- end CI hooks ---


@dataclass
class RunRequest:
    workspace: Path
    task_file: Path | None = None
    resume: str | None = None
    output: Literal["text", "jsonl", "none"] = "text"  # "none": only `listeners` see the events
    flags: dict[str, Any] = field(default_factory=dict)
    environ: dict[str, str] | None = None
    task_text: str | None = None  # the task itself instead of task_file (--from-issue)
    hooks: JobHooks | None = None  # CI steps around the job (--pr, --from-issue)
    # --- app (m3code/tui): extra views, a further user message, and signals left to the caller ---
    listeners: list[Callable[[Any], None]] = field(default_factory=list)
    # With `resume`: one more user message. A solo session continues its conversation with it; a team
    # session takes it as a requirement (steering), and a finished team re-plans on its branch for it.
    follow_up: str | None = None
    # Images the person attached (`@shot.png`) to task_text or follow_up: they go on that user message.
    images: list[ImagePart] = field(default_factory=list)
    # False: no SIGINT/SIGTERM handlers; cancelling the task awaiting execute() ends the job "interrupted".
    handle_signals: bool = True
    # Wraps every sandbox the job makes (the app's approval gate asks the person before risky commands).
    wrap_sandbox: Callable[[Sandbox], Sandbox] | None = None
    # --- end app ---


def read_task(path: Path) -> str:
    if not path.exists():
        raise UsageError(f"Task file {path} does not exist. Write the task in a markdown file and pass its path.")
    if not path.is_file():
        raise UsageError(f"Task file {path} is not a file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"Task file {path} is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from exc
    if not text.strip():
        raise UsageError(f"Task file {path} is empty. Describe the task in it.")
    return text.strip()


def provider_settings(s: Settings) -> ProviderSettings:
    default_url = DEFAULT_ANTHROPIC_BASE_URL if s.api_format == "anthropic" else DEFAULT_OPENAI_BASE_URL
    base_url = s.base_url or default_url
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"The base URL {base_url!r} is not an http(s) URL. Give one like "
                         "http://127.0.0.1:8000/v1 (OpenAI format) or https://api.minimax.io/anthropic.")
    key = s.api_key.get_secret_value() if s.api_key else None
    if key is None and base_url in (DEFAULT_OPENAI_BASE_URL, DEFAULT_ANTHROPIC_BASE_URL):
        raise UsageError(
            f"No API key for {base_url}. Set MINIMAX_API_KEY (or M3CODE_API_KEY), or point m3code at another "
            "OpenAI-compatible server with --base-url (e.g. a local `m3code serve`, vLLM or SGLang)."
        )
    return ProviderSettings(base_url=base_url, api_key=key, model=s.model, api_format=s.api_format,
                            thinking=s.thinking, stream=s.stream, timeout=s.request_timeout,
                            max_retries=s.max_retries)


def load_resumable(workspace: Path, session_id: str) -> tuple[Path, SessionState]:
    try:
        folder = find_session(workspace, session_id)
    except SessionNotFound as exc:
        raise UsageError(str(exc)) from exc
    return folder, rebuild(list(read_events(folder)))


async def execute(req: RunRequest) -> tuple[int, str]:
    """Run the job; returns (exit code, final answer). Raises UsageError for bad input."""
    workspace = req.workspace.resolve()
    if not workspace.is_dir():
        raise UsageError(f"Workspace {workspace} is not a directory.")
    try:
        settings = load_config(workspace, req.flags, req.environ).settings
    except ConfigFileError as exc:
        raise UsageError(str(exc)) from exc

    state: SessionState | None = None
    if req.resume:
        folder, state = load_resumable(workspace, req.resume)
        session_id, task = folder.name, state.started.task
        if state.ended is not None and state.ended.status == "done" and req.follow_up is None:
            return 0, state.ended.final_answer
    else:
        if req.task_text is not None:
            task = req.task_text
        else:
            assert req.task_file is not None
            task = read_task(req.task_file)
        session_id = new_session_id()
        folder = sessions_dir(workspace) / session_id

    pset = provider_settings(settings)
    mode = state.started.mode if state else settings.mode
    team_repo_error = _team_precheck(workspace) if mode == "team" else None
    if team_repo_error:
        raise UsageError(team_repo_error)
    try:
        make_box = sandbox_factory(settings, workspace)
        sandbox = make_box(workspace)
    except SandboxError as exc:
        raise UsageError(str(exc)) from exc

    box_label = f"{type(sandbox).__name__.removesuffix('Sandbox').lower()} ({sandbox.policy})"
    if req.wrap_sandbox is not None:  # the app's approval gate, around the solo agent's and every team agent's
        wrap, plain = req.wrap_sandbox, make_box
        make_box = lambda path: wrap(plain(path))  # noqa: E731
        sandbox = wrap(sandbox)
    views: list[Callable[[Any], None]] = [] if req.output == "none" else [
        JsonlPrinter() if req.output == "jsonl" else ProgressPrinter()]
    views += req.listeners
    if req.hooks:
        session = req.hooks.open_session(session_id, folder, views, settings)
    else:
        session = Session(session_id, folder, views)
    provider = make_provider(pset)
    context_window = settings.context_window or profile_for(settings.model).context_window
    system_prompt = state.started.system_prompt if state else build_system_prompt(workspace)
    budget = Budget(max_turns=settings.max_turns, max_cost=settings.max_cost, max_tokens=settings.max_tokens,
                    deadline=time.monotonic() + settings.timeout if settings.timeout else None)
    inbox = Inbox(folder, taken=state.steering_taken if state else 0)
    if state is None:
        session.emit(SessionStarted(session_id=session_id, task=task, workspace=str(workspace),
                                    system_prompt=system_prompt, model=pset.model, base_url=pset.base_url,
                                    api_format=pset.api_format, version=__version__, mode=mode,
                                    sandbox=box_label))
        session.emit(UserMessage(content=task, images=req.images), sync=True)
    if req.hooks:
        req.hooks.started(session)

    work: Callable[[], Awaitable[Outcome]]
    if mode == "team":
        team = Team(provider, session, workspace, task, budget,
                    TeamConfig(parallel=settings.parallel, sandbox=make_box, context_window=context_window,
                               compact_at=settings.compact_at, step_turns=settings.max_turns),
                    inbox, usage=state.usage if state else None)
        resume = team_resume(list(read_events(folder))) if state else None
        if state and req.follow_up is not None:
            send(folder, req.follow_up)  # the team takes it as a requirement when it starts
            if resume is not None and state.ended is not None and state.ended.status in ("done", "failed"):
                # A finished team plans afresh on its job branch, which holds the accepted work.
                resume = TeamResume(steps=[], plan_version=resume.plan_version, passed={},
                                    requirements=resume.requirements)
        if state:
            session.emit(SessionResumed(), sync=True)
        work, usage = (lambda: team.run(resume)), (lambda: team.usage)
    else:
        tools = default_tools()
        tools["bench"] = BenchTool(folder / "bench" / "ledger.jsonl")
        agent = Agent(provider, tools, ToolContext(workspace=workspace, sandbox=sandbox), session,
                      system_prompt, task, budget=budget, context_window=context_window,
                      compact_at=settings.compact_at, turns_done=state.turns if state else 0,
                      usage=state.usage if state else None, inbox=inbox)
        history, pending = [Message(role="user", content=task, images=req.images)], []
        if state is not None:
            history = list(state.messages)
            interrupted = state.started_unfinished
            session.emit(SessionResumed(interrupted_calls=[c.id for c in interrupted]), sync=True)
            for call in interrupted:
                history.append(agent.record_result(call, ToolResult(INTERRUPTED_CALL, is_error=True)))
            pending = state.not_started
            if req.follow_up is not None:
                # The person spoke after stopping the turn: its unstarted calls are dropped, not run.
                for call in pending:
                    history.append(agent.record_result(call, ToolResult(SKIPPED_CALL, is_error=True)))
                pending = []
                session.emit(UserMessage(content=req.follow_up, images=req.images), sync=True)
                history.append(Message(role="user", content=req.follow_up, images=req.images))
                agent.turns = 0  # --max-turns counts the turns of each request
        work, usage = (lambda: agent.run(history, pending)), (lambda: agent.usage)

    outcome = await _drive(work, budget, session, req.handle_signals)
    code = EXIT_CODES[outcome.status]
    session.emit(SessionEnded(status=outcome.status, exit_code=code, final_answer=outcome.final_answer,
                              reason=outcome.reason, usage=usage()), sync=True)
    if req.hooks:
        code = await asyncio.to_thread(req.hooks.finished, session, outcome.status, code)
    session.close()
    await provider.aclose()
    await sandbox.close()
    if outcome.status != "done" and req.output == "text" and req.handle_signals:
        print(f"Session {session_id} stopped: {outcome.reason.rstrip('.')}. Continue it with "
              f"`m3code run --resume {session_id}`.", file=sys.stderr)
    return code, outcome.final_answer


def _team_precheck(workspace: Path) -> str | None:
    try:
        JobRepo(workspace, "check")
    except GitWorkError as exc:
        return str(exc)
    return None


async def _drive(work: Callable[[], Awaitable[Outcome]], budget: Budget, session: Session,
                 handle_signals: bool = True) -> Outcome:
    """Run the job, turning budgets, model failures and Ctrl-C/SIGTERM into a recorded outcome.

    Without signal handling (the app), any cancellation of this task is the person stopping the job.
    """
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    stopping: list[str] = [] if handle_signals else ["the person"]
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()

    def stop(name: str) -> None:
        stopping.append(name)
        if task is not None:
            task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        remaining = None if budget.deadline is None else max(0.0, budget.deadline - time.monotonic())
        async with asyncio.timeout(remaining):
            return await work()
    except BudgetExhausted as exc:
        return Outcome("budget", reason=str(exc))
    except TimeoutError:
        return Outcome("budget", reason="reached --timeout")
    except (ProviderError, TeamError, GitWorkError) as exc:
        session.emit(ErrorEvent(message=str(exc), fatal=True), sync=True)
        return Outcome("failed", reason=str(exc))
    except asyncio.CancelledError:
        if not stopping:
            raise
        if task is not None:
            task.uncancel()
        return Outcome("interrupted", reason=f"stopped by {stopping[0]}")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
