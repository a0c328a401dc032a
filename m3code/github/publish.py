"""From a finished session to a pull request: commit the job's work, push its branch, open or update the PR.

Shared by `m3code run --pr` (right after the job) and `m3code pr open` (later, e.g. after fixing a token).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import git

from m3code.github.api import DEFAULT_API_URL, GitHubClient
from m3code.github.body import Report, render_body, report_from_events
from m3code.github.ci import write_outputs
from m3code.github.errors import GitHubApiError, GitHubFeatureError, SetupError
from m3code.github.issue import closes_ref
from m3code.github.masking import Masker
from m3code.github.push import PushTarget, push_branch, push_target
from m3code.github.refs import RepoRef, api_url_for_host, branch_for, parse_repo, shorten
from m3code.github.workspace import Head, changed_paths, commit_subjects, commit_work, diff_stat, head, open_repo
from m3code.session.events import Checkpoint, PullRequestEvent
from m3code.team.gitwork import job_branch

Say = Callable[[str], None]
Emit = Callable[[Any], None]
COMMIT_BODY_LIMIT = 4000


@dataclass
class PrOptions:
    base: str | None = None
    draft: bool = False
    repo: str | None = None
    api_url: str | None = None
    remote: str = "origin"


@dataclass
class Target:
    """Where the pull request goes, settled before any work is done."""

    repo: RepoRef
    api_url: str
    push: PushTarget
    base: str


@dataclass
class Published:
    action: Literal["created", "updated"]
    number: int
    url: str
    branch: str


def resolve_target(git_repo: git.Repo, options: PrOptions, token: str, masker: Masker,
                   environ: Mapping[str, str] | None = None) -> Target:
    """The repository, API and base branch; checks that the token can see the repository and push to it."""
    env = os.environ if environ is None else environ
    push = push_target(git_repo, options.remote, token)
    if options.repo:
        repo = parse_repo(options.repo)
    elif push.hosted is not None:
        repo = push.hosted.repo
    elif env.get("GITHUB_REPOSITORY"):
        repo = parse_repo(env["GITHUB_REPOSITORY"], "GITHUB_REPOSITORY")
    else:
        raise SetupError(f"Cannot tell the GitHub repository from the remote {options.remote!r} "
                         f"({masker.mask(push.url)}); pass --repo OWNER/NAME.")
    api_url = options.api_url or env.get("GITHUB_API_URL") or (
        api_url_for_host(push.hosted.host) if push.hosted is not None else DEFAULT_API_URL)
    with GitHubClient(api_url, token, masker=masker) as client:
        try:
            info = client.get_repo(repo)
        except GitHubApiError as exc:
            raise SetupError(str(exc)) from exc
    if info.get("permissions", {}).get("push") is False:
        raise SetupError(f"The token can read {repo} but not push to it: give it `contents: write` and "
                         "`pull-requests: write` (classic tokens: the `repo` scope).")
    return Target(repo, api_url, push, options.base or str(info.get("default_branch") or "main"))


def start_checkpoint(events: list[Any]) -> Checkpoint | None:
    found = [e for e in events if isinstance(e, Checkpoint) and e.kind == "start"]
    return found[-1] if found else None


def start_event(at: Head) -> Checkpoint:
    return Checkpoint(kind="start", commit=at.commit, branch=at.branch)


def commit_message(report: Report, masker: Masker) -> str:
    body = shorten(report.final_answer.strip(), COMMIT_BODY_LIMIT)
    text = f"{shorten(report.title, 72)}\n\n{body}\n\nm3code-session: {report.session_id}".replace("\n\n\n", "\n\n")
    return masker.mask(text)


def publish(workspace: Path, events: list[Any], target: Target, *, token: str, masker: Masker, emit: Emit,
            say: Say, draft: bool = False) -> Published | None:
    """Commit, push, open the PR. None when the job changed nothing. Raises GitHubFeatureError (masked)."""
    report = report_from_events(events)
    retry = f"m3code pr open {report.session_id}"
    with open_repo(workspace) as repo:
        try:
            made = _job_branch(repo, events, report, masker, emit, say)
            if made is None:
                say("The job changed nothing, so there is no pull request to open.")
                return None
            branch, start = made
            tip = repo.heads[branch].commit.hexsha
            stat, commits = diff_stat(repo, start, tip), commit_subjects(repo, start, tip)
        except git.GitCommandError as exc:
            raise GitHubFeatureError(masker.mask(
                f"git failed while preparing the job's branch: {exc}. Nothing was pushed; the work is where the "
                f"job left it. Fix the repository's state and run `{retry}`.")) from exc
        push_branch(repo, branch, target.push, token, masker, retry=retry)
    say(f"Pushed {branch} to {masker.mask(target.push.url)}.")
    closes = closes_ref(report.task, target.repo)
    body = masker.mask(render_body(report, diff_stat=stat, commits=commits, closes=closes))
    title = masker.mask(report.title)
    with GitHubClient(target.api_url, token, masker=masker, say=say) as client:
        try:
            published = _open_or_update(client, target, branch, title, body, draft)
        except GitHubApiError as exc:
            raise GitHubApiError(f"{exc} The branch {branch} is pushed; run `{retry}` to try again.",
                                 exc.status) from exc
    emit(PullRequestEvent(action=published.action, repo=target.repo.full, number=published.number,
                          url=published.url, branch=branch, base=target.base, draft=draft))
    write_outputs({"pr-url": published.url, "pr-number": str(published.number), "branch": branch,
                   "session-id": report.session_id})
    say(f"Pull request #{published.number} {published.action}: {published.url}")
    return published


def _job_branch(repo: git.Repo, events: list[Any], report: Report, masker: Masker, emit: Emit,
                say: Say) -> tuple[str, str] | None:
    """The branch holding the job's work, made if need be, and the commit the work starts from.

    A team job committed its accepted steps on its own job branch: the PR branch points at its tip. A solo job
    left its changes in the working tree: they are committed on the PR branch, which is switched to.
    """
    start = start_checkpoint(events)
    team = team_branch(repo, events)
    if start is None:  # `pr open` of a job run without --pr: its work starts here
        start = start_event(Head(str(repo.merge_base("HEAD", team)[0]), None) if team else head(repo))
        emit(start)
    earlier = [e for e in events if isinstance(e, Checkpoint) and e.kind == "commit" and e.branch]
    branch = earlier[-1].branch if earlier else branch_for(report.task, report.session_id)
    assert branch is not None
    if team:
        tip = repo.heads[team].commit.hexsha
        if tip == start.commit:
            return None
        if branch not in repo.heads or repo.heads[branch].commit.hexsha != tip:
            repo.create_head(branch, tip, force=True)
            emit(Checkpoint(kind="commit", commit=tip, branch=branch, message=f"the accepted steps of {team}"))
        return branch, start.commit
    paths = changed_paths(repo)
    if not earlier and not paths and head(repo).commit == start.commit:
        return None
    sha = commit_work(repo, branch, commit_message(report, masker))
    if sha:
        emit(Checkpoint(kind="commit", commit=sha, branch=branch, message=shorten(report.title, 72)))
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        say(f"Committed the job's changes ({shown}) as {sha[:10]} on branch {branch}, now checked out.")
    return branch, start.commit


def team_branch(repo: git.Repo, events: list[Any]) -> str | None:
    """The job branch of a team session, where it exists (named as m3code.team.gitwork.JobRepo names it)."""
    started = events[0] if events else None
    if getattr(started, "mode", "solo") != "team":
        return None
    name = job_branch(getattr(started, "session_id", ""))
    return name if name in repo.heads else None


def _open_or_update(client: GitHubClient, target: Target, branch: str, title: str, body: str,
                    draft: bool) -> Published:
    existing = client.find_open_pull(target.repo, branch)
    if existing is None:
        try:
            made = client.create_pull(target.repo, title=title, head=branch, base=target.base, body=body,
                                      draft=draft)
            return Published("created", int(made["number"]), str(made["html_url"]), branch)
        except GitHubApiError as exc:
            # Opened by someone else between our look and our create: update that one instead.
            if exc.status != 422 or "already exists" not in str(exc):
                raise
            existing = client.find_open_pull(target.repo, branch)
            if existing is None:
                raise
    updated = client.update_pull(target.repo, int(existing["number"]), title=title, body=body)
    return Published("updated", int(updated["number"]), str(updated["html_url"]), branch)
