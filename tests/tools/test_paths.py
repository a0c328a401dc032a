"""Confining model-given paths to the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.base import ToolError
from tools.paths import display_path, resolve_path


def test_relative_and_absolute_paths_inside(workspace: Path) -> None:
    root = workspace.resolve()
    assert resolve_path("src/a.py", workspace) == root / "src" / "a.py"
    assert resolve_path(str(workspace / "b.py"), workspace) == root / "b.py"
    assert resolve_path("src/../c.py", workspace) == root / "c.py"
    assert resolve_path(".", workspace) == root


@pytest.mark.parametrize("raw", ["../secret", "src/../../secret", "/etc/passwd", "~/x"])
def test_paths_outside_are_refused(workspace: Path, raw: str) -> None:
    with pytest.raises(ToolError, match="outside the workspace") as caught:
        resolve_path(raw, workspace)
    assert str(workspace.resolve()) in str(caught.value)


def test_symlink_pointing_out_is_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (workspace / "escape").symlink_to(outside)
    (workspace / "file_link").symlink_to(outside / "secret.txt")
    for raw in ("escape/secret.txt", "file_link", "escape/new.txt"):
        with pytest.raises(ToolError, match=r"outside the workspace.*symlink"):
            resolve_path(raw, workspace)


def test_symlink_inside_resolves_to_target(workspace: Path) -> None:
    (workspace / "real.txt").write_text("x")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert resolve_path("alias.txt", workspace) == workspace.resolve() / "real.txt"


def test_empty_path_refused(workspace: Path) -> None:
    with pytest.raises(ToolError, match="empty"):
        resolve_path("  ", workspace)


def test_display_path(workspace: Path) -> None:
    root = workspace.resolve()
    assert display_path(root / "a" / "b.py", workspace) == "a/b.py"
    assert display_path(root, workspace) == "."
    assert display_path(Path("/elsewhere/x"), workspace) == "/elsewhere/x"
