"""The git side of a team job: the job branch, a worktree per step, commits, and merging accepted steps.

All of it goes through one lock: git's own locks would make concurrent worktree and cherry-pick commands
fail rather than wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from git import GitCommandError, Repo

from m3code.config import repo_root

IDENTITY = ["-c", "user.name=m3code", "-c", "user.email=m3code@localhost"]


class GitWorkError(Exception):
    pass


def job_branch(session_id: str) -> str:
    """The branch a team job's accepted steps land on."""
    return f"m3code/job-{session_id}"


class JobRepo:
    def __init__(self, workspace: Path, session_id: str) -> None:
        self.root = repo_root(workspace)
        try:
            self.repo = Repo(self.root)
        except Exception as exc:
            raise GitWorkError(
                f"{self.root} is not a git repository: a team job commits each accepted step. "
                "Run `git init` and commit, or use --solo."
            ) from exc
        if not self.repo.head.is_valid():
            raise GitWorkError(f"{self.root} has no commits yet: commit once, or use --solo.")
        self.branch = job_branch(session_id)
        self.trees = self.root / ".m3code" / "worktrees" / session_id
        self.lock = asyncio.Lock()

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        repo = self.repo if cwd is None else Repo(cwd)
        return str(repo.git.execute(["git", *IDENTITY, *args], with_extended_output=False))

    # -- setup ------------------------------------------------------------------------------------------

    def integration(self) -> Path:
        """The worktree of the job branch, created from HEAD the first time."""
        path = self.trees / "job"
        if (path / ".git").exists():
            return path
        self.trees.mkdir(parents=True, exist_ok=True)
        if self.branch in [h.name for h in self.repo.heads]:
            self._git("worktree", "add", "-f", str(path), self.branch)
        else:
            self._git("worktree", "add", "-b", self.branch, str(path), "HEAD")
        return path

    def tip(self) -> str:
        return self._git("rev-parse", self.branch)

    def start(self) -> str:
        """Where the job branch left the person's branch."""
        return self._git("merge-base", "HEAD", self.branch).strip()

    def fresh_tree(self, name: str, at: str) -> Path:
        """A detached worktree at commit `at`, replacing any earlier one of that name."""
        path = self.trees / name
        self.remove(path)
        self._git("worktree", "add", "--detach", "-f", str(path), at)
        return path

    def remove(self, path: Path) -> None:
        if path.exists():
            try:
                self._git("worktree", "remove", "--force", str(path))
            except GitCommandError:
                shutil.rmtree(path, ignore_errors=True)
                self._git("worktree", "prune")

    def cleanup(self) -> None:
        """Remove every worktree of the job but the branch itself, which holds the work."""
        if self.trees.is_dir():
            for path in self.trees.iterdir():
                self.remove(path)
            shutil.rmtree(self.trees, ignore_errors=True)
        self._git("worktree", "prune")

    # -- commits ----------------------------------------------------------------------------------------

    def commit_all(self, tree: Path, message: str) -> str:
        """Commit everything changed in a step's tree; returns the commit (the base if nothing changed)."""
        self._git("add", "-A", "--", ".", ":(exclude).m3code", cwd=tree)
        with contextlib.suppress(GitCommandError):  # nothing to commit: the step changed no file
            self._git("commit", "-q", "-m", message, cwd=tree)
        return self._git("rev-parse", "HEAD", cwd=tree)

    def diff(self, base: str, head: str, limit: int = 30_000) -> str:
        text = self._git("diff", "--stat", "--patch", base, head)
        return text if len(text) <= limit else text[:limit] + f"\n[diff cut at {limit} characters]"

    def accept(self, commit: str, base: str) -> tuple[str | None, list[str]]:
        """Put a step's commit on the job branch. Returns (new tip, []) or (None, conflicting files)."""
        if commit == base:
            return self.tip(), []
        tree = self.integration()
        try:
            self._git("cherry-pick", "--allow-empty", commit, cwd=tree)
        except GitCommandError:
            conflicts = self._git("diff", "--name-only", "--diff-filter=U", cwd=tree).split()
            self._git("cherry-pick", "--abort", cwd=tree)
            return None, conflicts or ["(unknown)"]
        return self.tip(), []
