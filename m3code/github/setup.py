"""Checks and preparation before a job with --pr or --from-issue: everything that can be refused is, up front."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3code.config import ConfigFileError, load_config
from m3code.github.api import DEFAULT_API_URL, GitHubClient
from m3code.github.ci import SANDBOX_WORDS, ci_mode, hide_own_environment, take_secrets
from m3code.github.errors import GitHubApiError, GitHubFeatureError, SetupError
from m3code.github.issue import issue_task
from m3code.github.job import GitHubJob, PrPlan
from m3code.github.masking import Masker
from m3code.github.publish import PrOptions, resolve_target, start_checkpoint
from m3code.github.push import push_target
from m3code.github.refs import api_url_for_host, parse_issue
from m3code.github.workspace import changed_paths, head, open_repo
from m3code.session.log import SessionNotFound, find_session, read_events

NO_TOKEN = ("--pr needs a GitHub token: set GITHUB_TOKEN or GH_TOKEN (in GitHub Actions: "
            "`env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` with `permissions: contents: write, "
            "pull-requests: write`).")


@dataclass
class RunGitHubOptions:
    pr: bool = False
    from_issue: str | None = None
    pr_options: PrOptions = field(default_factory=PrOptions)
    resume: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)  # the run's setting flags, to know mode and sandbox


def prepare_run(workspace: Path, opts: RunGitHubOptions,
                environ: MutableMapping[str, str] | None = None) -> tuple[GitHubJob, str | None]:
    """The hooks for the job and the task text from the issue (None without --from-issue). Raises SetupError."""
    env = os.environ if environ is None else environ
    ci = ci_mode(env)
    # The token leaves the environment the job's commands inherit; m3code keeps it in memory only.
    token, removed = take_secrets(env)
    if removed and environ is None:
        hide_own_environment()  # ... and from what they could read of this process
    masker = Masker(removed)
    sources, settings = _settings(workspace, opts.flags)
    if ci and sources.get("sandbox") == "default":
        raise SetupError("In CI, name the sandbox the agent's commands run in: --sandbox docker (isolated) or "
                         "--sandbox local (no isolation: the runner itself is the boundary).")
    if ci:
        kind = str(settings.get("sandbox", "local"))
        print(f"m3code: CI mode: nothing waits for input; sandbox {kind} ({SANDBOX_WORDS.get(kind, kind)}); the "
              "GitHub token is withheld from the agent's commands; secrets are masked in logs.", file=sys.stderr)

    task_text = None
    if opts.from_issue:
        issue = parse_issue(opts.from_issue)
        api_url = opts.pr_options.api_url or env.get("GITHUB_API_URL") or _remote_api_url(workspace, opts)
        with GitHubClient(api_url, token, masker=masker) as client:
            try:
                task_text = issue_task(client, *issue)
            except GitHubApiError as exc:
                raise SetupError(str(exc)) from exc

    plan = None
    if opts.pr:
        if not token:
            raise SetupError(NO_TOKEN)
        mode = _mode(workspace, opts, settings)
        with open_repo(workspace) as git_repo:
            start = head(git_repo)
            if opts.resume:
                _check_resume(workspace, opts.resume, git_repo, mode)
            elif mode == "solo" and changed_paths(git_repo):
                raise SetupError(_dirty(changed_paths(git_repo)))
            target = resolve_target(git_repo, opts.pr_options, token, masker, env)
        plan = PrPlan(workspace, target, token, start, draft=opts.pr_options.draft)
    return GitHubJob(masker, plan), task_text


def _remote_api_url(workspace: Path, opts: RunGitHubOptions) -> str:
    """The API of the host the remote points at (GitHub Enterprise), else github.com's."""
    try:
        with open_repo(workspace) as git_repo:
            hosted = push_target(git_repo, opts.pr_options.remote, None).hosted
    except GitHubFeatureError:
        return DEFAULT_API_URL
    return api_url_for_host(hosted.host) if hosted is not None else DEFAULT_API_URL


def _settings(workspace: Path, flags: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        loaded = load_config(workspace, flags)
    except ConfigFileError:
        return {}, {}  # the job reports a bad config itself, with its file and line
    return loaded.sources, loaded.settings.model_dump()


def _mode(workspace: Path, opts: RunGitHubOptions, settings: dict[str, Any]) -> str:
    if opts.resume:
        try:
            folder = find_session(workspace, opts.resume)
            return str(getattr(next(read_events(folder)), "mode", "solo"))
        except (SessionNotFound, StopIteration, ValueError):
            return "solo"  # `run` itself says what is wrong with the session
    return str(settings.get("mode", "solo"))


def _check_resume(workspace: Path, session_id: str, git_repo: Any, mode: str) -> None:
    try:
        folder = find_session(workspace, session_id)
    except SessionNotFound:
        return
    events = list(read_events(folder))
    ended = [e for e in events if getattr(e, "type", "") == "session_ended"]
    if ended and ended[-1].status == "done":
        raise SetupError(f"Session {folder.name} is finished; open its pull request with "
                         f"`m3code pr open {folder.name}`.")
    if mode == "solo" and start_checkpoint(events) is None and changed_paths(git_repo):
        raise SetupError(f"Session {folder.name} was started without --pr and the working tree has changes: "
                         "m3code cannot tell the job's from yours. Finish it without --pr, then review the "
                         f"changes and run `m3code pr open {folder.name}`.")


def _dirty(paths: list[str]) -> str:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return (f"--pr needs a clean working tree, so that only the job's changes go into the pull request; these "
            f"have uncommitted changes: {shown}. Commit or stash them (`git stash -u`) and run again.")
