"""What a session changed, and taking a step back: /diff and /undo.

A solo agent edits the working tree directly, so before each request the app snapshots the tree as a
commit object (through a scratch index: the person's index, HEAD and branches are never touched) under
`refs/m3code/checkpoints/<session>/<n>`. /diff compares the first snapshot with the tree now; /undo puts
back the files as they were before the last request. A team's work is on its job branch: /diff shows
the branch against where it started, /undo reverts the last accepted step's commit there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from m3code.config import repo_root
from m3code.team.gitwork import job_branch

REF_ROOT = "refs/m3code/checkpoints"
MESSAGE = "m3code checkpoint"


class CheckpointError(Exception):
    pass


def _git(root: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, input=input,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise CheckpointError(proc.stderr.strip() or f"git {args[0]} failed")
    return proc.stdout


def is_repo(workspace: Path) -> bool:
    root = repo_root(workspace)
    return (root / ".git").exists()


def snapshot(workspace: Path) -> str:
    """A commit holding the working tree as it is now (untracked files too, ignored ones not)."""
    root = repo_root(workspace)
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "index"
        real = Path(_git(root, "rev-parse", "--git-path", "index").strip())
        real = real if real.is_absolute() else root / real
        if real.is_file():
            shutil.copyfile(real, index)  # keeps stat data: only changed files are hashed again
        env = {"GIT_INDEX_FILE": str(index)}
        _git(root, "add", "-A", "--", ".", ":(exclude).m3code", env=env)
        tree = _git(root, "write-tree", env=env).strip()
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD").strip() if _has_head(root) else ""
    parents = ["-p", head] if head else []
    ident = {"GIT_AUTHOR_NAME": "m3code", "GIT_AUTHOR_EMAIL": "m3code@localhost",
             "GIT_COMMITTER_NAME": "m3code", "GIT_COMMITTER_EMAIL": "m3code@localhost"}
    return _git(root, "commit-tree", tree, *parents, "-m", MESSAGE, env=ident).strip()


def _has_head(root: Path) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True).returncode == 0


def checkpoints(workspace: Path, session_id: str) -> list[tuple[int, str]]:
    """(n, commit) of a session's snapshots, oldest first."""
    root = repo_root(workspace)
    out = _git(root, "for-each-ref", "--format=%(refname) %(objectname)", f"{REF_ROOT}/{session_id}/")
    found = []
    for line in out.splitlines():
        ref, _, commit = line.partition(" ")
        tail = ref.rsplit("/", 1)[-1]
        if tail.isdigit():
            found.append((int(tail), commit))
    return sorted(found)


def record(workspace: Path, session_id: str) -> str:
    """Snapshot the tree before a request of the session."""
    commit = snapshot(workspace)
    taken = checkpoints(workspace, session_id)
    n = taken[-1][0] + 1 if taken else 1
    if taken and _tree(workspace, taken[-1][1]) == _tree(workspace, commit):
        return taken[-1][1]  # nothing changed since the last one
    _git(repo_root(workspace), "update-ref", f"{REF_ROOT}/{session_id}/{n}", commit)
    return commit


def _tree(workspace: Path, commit: str) -> str:
    return _git(repo_root(workspace), "rev-parse", f"{commit}^{{tree}}").strip()


def session_diff(workspace: Path, session_id: str) -> str:
    """Solo: the tree now against the tree before the session's first request."""
    taken = checkpoints(workspace, session_id)
    if not taken:
        return ""
    return _git(repo_root(workspace), "diff", "--stat", "--patch", taken[0][1], snapshot(workspace))


def undo_last(workspace: Path, session_id: str) -> list[str]:
    """Solo: put back the files as they were before the last request; returns the paths restored."""
    root = repo_root(workspace)
    taken = checkpoints(workspace, session_id)
    if not taken:
        raise CheckpointError("nothing to undo: this session has no checkpoint yet")
    n, before = taken[-1]
    now = snapshot(workspace)
    changed = _git(root, "diff", "--name-status", "--no-renames", before, now).splitlines()
    if not changed and len(taken) > 1:  # the last request changed nothing: step back over it
        _git(root, "update-ref", "-d", f"{REF_ROOT}/{session_id}/{n}")
        return undo_last(workspace, session_id)
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(root, "read-tree", before, env=env)
        paths = []
        for line in changed:
            status, _, path = line.partition("\t")
            paths.append(path)
            if status == "A":  # created by the agent: remove it
                (root / path).unlink(missing_ok=True)
            else:
                _git(root, "checkout-index", "-f", "--", path, env=env)
    _git(root, "update-ref", "-d", f"{REF_ROOT}/{session_id}/{n}")
    return paths


def team_diff(workspace: Path, session_id: str) -> str:
    root = repo_root(workspace)
    branch = job_branch(session_id)
    try:
        base = _git(root, "merge-base", "HEAD", branch).strip()
    except CheckpointError:
        return ""
    return _git(root, "diff", "--stat", "--patch", base, branch)


def team_undo(workspace: Path, session_id: str, commit: str) -> str:
    """Revert an accepted step's commit on the job branch (in a scratch worktree); returns the new tip."""
    root = repo_root(workspace)
    branch = job_branch(session_id)
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        _git(root, "worktree", "add", "-q", str(tree), branch)
        try:
            _git(tree, "-c", "user.name=m3code", "-c", "user.email=m3code@localhost", "revert", "--no-edit", commit)
            return _git(tree, "rev-parse", "HEAD").strip()
        finally:
            _git(root, "worktree", "remove", "--force", str(tree))
