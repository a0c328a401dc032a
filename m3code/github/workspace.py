"""The job's work in the local repository: is the tree clean, commit what the job changed, describe it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import git

from m3code.github.errors import GitHubFeatureError, SetupError

# The harness's own folder (sessions, worktrees, its .gitignore): never committed, never makes a tree dirty.
# Excluded whole, as the team's step commits do: naming ignored paths inside it would make `git add` fail.
HARNESS_EXCLUDES = (".m3code",)
# Caches the job's test runs leave behind in repositories that do not ignore them.
CACHE_EXCLUDES = ("**/__pycache__/**", "**/*.pyc", "**/.pytest_cache/**", "**/.mypy_cache/**",
                  "**/.ruff_cache/**")
FALLBACK_IDENTITY = ("m3code", "m3code@noreply.invalid")  # only when git has none configured (bare CI runners)


def pathspec() -> list[str]:
    return [".", *(f":(exclude){p}" for p in HARNESS_EXCLUDES), *(f":(exclude,glob){p}" for p in CACHE_EXCLUDES)]


@dataclass
class Head:
    commit: str
    branch: str | None  # None when detached


def open_repo(workspace: Path) -> git.Repo:
    try:
        repo = git.Repo(workspace, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise SetupError(f"{workspace} is not in a git repository; a pull request needs one (git init, or "
                         "check out the repository first).") from exc
    if repo.bare or repo.working_tree_dir is None:
        raise SetupError(f"{workspace} is a bare git repository; work in a checkout.")
    return repo


def head(repo: git.Repo) -> Head:
    try:
        commit = repo.head.commit.hexsha
    except ValueError as exc:
        raise SetupError("The repository has no commits yet; commit a starting point before running with --pr."
                         ) from exc
    return Head(commit, None if repo.head.is_detached else repo.active_branch.name)


def changed_paths(repo: git.Repo) -> list[str]:
    """Paths with changes (tracked or not), leaving out the harness's own files and test caches."""
    out = repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *pathspec())
    # -z entries: "XY path", and a rename adds the old path as the next entry.
    entries, paths, skip = out.split("\0"), [], False
    for entry in entries:
        if skip or not entry:
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths


def commit_work(repo: git.Repo, branch: str, message: str) -> str | None:
    """Switch to `branch` (made at HEAD, carrying the changes), commit the job's changes on it; the new sha.

    None when there was nothing to commit. The branch is switched to even then, so the work is found there.
    """
    current = None if repo.head.is_detached else repo.active_branch.name
    if current != branch:
        if branch in repo.heads:
            if changed_paths(repo):
                raise GitHubFeatureError(f"The branch {branch} exists already and the working tree has changes; "
                                         f"switch to it (`git switch {branch}`) and run `m3code pr open` again.")
            repo.git.switch(branch)
        else:
            repo.git.switch("-c", branch)
    if not changed_paths(repo):
        return None
    try:
        repo.git.add("-A", "--", *pathspec())
        with repo.git.custom_environment(**_identity(repo)):
            repo.git.commit("-q", "-m", message)
    except git.GitCommandError as exc:
        raise GitHubFeatureError(f"git commit failed on {branch}: {_stderr(exc)}. The changes are staged there; "
                                 "fix the cause (a commit hook?) and run `m3code pr open` again.") from exc
    return repo.head.commit.hexsha


def _identity(repo: git.Repo) -> dict[str, str]:
    """Author and committer for the commit: git's own when configured, else m3code's."""
    reader = repo.config_reader()
    env: dict[str, str] = {}
    name, email = FALLBACK_IDENTITY
    for role in ("AUTHOR", "COMMITTER"):
        if not (os.environ.get(f"GIT_{role}_NAME") or reader.get_value("user", "name", "")):
            env[f"GIT_{role}_NAME"] = name
        if not (os.environ.get(f"GIT_{role}_EMAIL") or reader.get_value("user", "email", "")):
            env[f"GIT_{role}_EMAIL"] = email
    return env


def diff_stat(repo: git.Repo, base: str, tip: str) -> str:
    return str(repo.git.diff("--stat", f"{base}..{tip}")).strip("\n")


def commit_subjects(repo: git.Repo, base: str, tip: str) -> list[str]:
    out = str(repo.git.log("--format=%h %s", "--reverse", f"{base}..{tip}")).strip()
    return out.splitlines() if out else []


def _stderr(exc: git.GitCommandError) -> str:
    text = str(exc.stderr or exc.stdout or exc).strip()
    return text.removeprefix("stderr:").strip().strip("'").strip()
