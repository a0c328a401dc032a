"""Turning a path the model gave into a host path inside the workspace, and back for display."""

from __future__ import annotations

import os
from pathlib import Path

from tools.base import ToolError


def resolve_path(raw: str, workspace: Path) -> Path:
    """The real (symlink-free) absolute path that `raw` names, refused unless it lies in the workspace.

    Relative paths are taken from the workspace. The result is fully resolved, so what was checked is what
    gets opened: `..` and symlinks cannot lead out of the workspace.
    """
    text = raw.strip()
    if not text:
        raise ToolError("The path is empty; give a file path relative to the workspace.")
    root = workspace.resolve()
    given = Path(os.path.expanduser(text))
    candidate = given if given.is_absolute() else root / given
    lexical = Path(os.path.normpath(candidate))
    if not (_inside(lexical, root) or _inside(lexical, Path(os.path.normpath(workspace.absolute())))):
        raise ToolError(f"{raw} is outside the workspace ({root}); only paths inside it can be used.")
    resolved = candidate.resolve()
    if not _inside(resolved, root):
        raise ToolError(
            f"{raw} is outside the workspace ({root}): it leads through a symlink to {resolved}. "
            "Only paths inside the workspace can be used."
        )
    return resolved


def display_path(path: Path, workspace: Path) -> str:
    """`path` relative to the workspace when it is inside it ("." for the workspace itself)."""
    root = workspace.resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        return str(path)
    return relative.as_posix() or "."


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
