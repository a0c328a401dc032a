"""Listing the files of a workspace that a search should look at."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Never searched below the search root: tool caches, dependencies and VCS internals.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox"}
)
GIT_TIMEOUT_S = 30.0


def list_files(root: Path, workspace: Path) -> list[Path]:
    """Files under `root` (or `root` itself if it is a file), resolved, never leading out of the workspace.

    In a git repository this is what git would consider (tracked and untracked, minus ignored files);
    elsewhere, or when git lists nothing (say, `root` is an ignored folder), a walk that skips SKIP_DIRS.
    """
    if root.is_file():
        return [root]
    files = _git_files(root) or list(walk_files(root))
    inside = workspace.resolve()
    return [path for path in files if not path.is_symlink() or path.resolve().is_relative_to(inside)]


def _git_files(root: Path) -> list[Path]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listing.returncode != 0:
        return []
    names = dict.fromkeys(os.fsdecode(name) for name in listing.stdout.split(b"\0") if name)
    paths = (root / name for name in names if not SKIP_DIRS.intersection(Path(name).parts[:-1]))
    return [path for path in paths if path.is_file()]  # drops deleted files and submodule folders


def walk_files(root: Path) -> Iterator[Path]:
    """Files under `root` in a stable order, not descending into SKIP_DIRS."""
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name not in SKIP_DIRS)
        base = Path(folder)
        for name in sorted(filenames):
            path = base / name
            if path.is_file():
                yield path
