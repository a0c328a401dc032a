"""Search tools: grep (regex over file contents) and glob (file names by pattern)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult
from tools.globs import compile_glob
from tools.paths import display_path, resolve_path
from tools.textfile import SNIFF_BYTES, split_lines
from tools.walk import SKIP_DIRS, list_files

MAX_GREP_FILE_BYTES = 20 * 1024 * 1024  # bigger files are skipped (and counted)
MAX_GREP_LINE_CHARS = 500  # matching lines are cut to this when shown
MAX_GLOB_RESULTS = 500
_SKIPPED_NOTE = (
    f"Files ignored by git and the folders {', '.join(sorted(SKIP_DIRS))} are not searched; "
    "pass one of them as path to search inside it."
)


class GrepArgs(ToolArgs):
    pattern: str = Field(
        description=(
            "A Python regular expression (re module syntax), matched against each line separately. "
            r"Escape regex characters for a literal search, e.g. 'foo\(' for 'foo('."
        )
    )
    path: str = Field(
        default=".", description="A folder to search (recursively) or a single file. Default: the workspace."
    )
    glob: str | None = Field(
        default=None,
        description=(
            "Only search files matching this glob, e.g. '*.py' or '*.{ts,tsx}' (matched against the file "
            "name) or 'src/**/*.py' (matched against the path relative to `path`)."
        ),
    )
    case_insensitive: bool = Field(default=False, description="Ignore upper/lower case when matching.")
    output_mode: Literal["content", "files", "count"] = Field(
        default="content",
        description=(
            "'content': matching lines as path:line:text; 'files': only the paths of files that match; "
            "'count': the number of matching lines per file."
        ),
    )
    context: int = Field(
        default=0, ge=0, le=20,
        description="Lines of context to show before and after each match (content mode only).",
    )
    max_results: int = Field(
        default=200, ge=1, le=5000,
        description="The most matching lines (content mode) or files (files and count modes) to report.",
    )


class GrepTool(Tool[GrepArgs]):
    name = "grep"
    description = (
        "Search file contents with a regular expression, line by line, under a folder or in one file. "
        "Content mode prints `path:line:text` for matches (context lines as `path-line-text`, groups "
        "separated by `--`); paths are relative to the workspace. Binary files, files ignored by git, "
        "and .git, node_modules, .venv and __pycache__ folders are skipped. Use it instead of running grep "
        "or rg through bash."
    )
    Args = GrepArgs
    permission = Permission.READ

    async def run(self, args: GrepArgs, ctx: ToolContext) -> ToolResult:
        try:
            regex = re.compile(args.pattern, re.IGNORECASE if args.case_insensitive else 0)
        except re.error as exc:
            raise ToolError(
                f"Invalid regular expression {args.pattern!r}: {exc}. Use Python re syntax."
            ) from exc
        root = resolve_path(args.path, ctx.workspace)
        if not root.exists():
            raise ToolError(f"{display_path(root, ctx.workspace)} does not exist. Use glob to find files.")
        search = _Search(regex, args, ctx.workspace.resolve())
        await asyncio.to_thread(search.run, root)
        return search.result(display_path(root, ctx.workspace))


@dataclass
class _Search:
    regex: re.Pattern[str]
    args: GrepArgs
    workspace: Path
    lines: list[str] = field(default_factory=list)
    files: int = 0  # files with a match
    matches: int = 0
    capped: bool = False
    skipped_large: int = 0

    def run(self, root: Path) -> None:
        name_filter = _glob_filter(self.args.glob, root)
        for path in list_files(root, self.workspace):
            if name_filter is not None and not name_filter(path):
                continue
            if self.capped:
                return
            self._search_file(path)

    def _search_file(self, path: Path) -> None:
        try:
            if path.stat().st_size > MAX_GREP_FILE_BYTES:
                self.skipped_large += 1
                return
            data = path.read_bytes()
        except OSError:
            return  # vanished or unreadable since listing: nothing to report for it
        if b"\0" in data[:SNIFF_BYTES]:
            return
        lines = split_lines(data.decode("utf-8", errors="replace"))
        hits = [number for number, line in enumerate(lines, start=1) if self.regex.search(line)]
        if not hits:
            return
        name = display_path(path, self.workspace)
        mode = self.args.output_mode
        full = self.matches if mode == "content" else self.files
        if full >= self.args.max_results:
            self.capped = True
            return
        self.files += 1
        if mode == "files":
            self.lines.append(name)
        elif mode == "count":
            self.lines.append(f"{name}:{len(hits)}")
            self.matches += len(hits)
        else:
            room = self.args.max_results - self.matches
            if len(hits) > room:
                hits, self.capped = hits[:room], True
            self.matches += len(hits)
            self._add_content(name, lines, hits)

    def _add_content(self, name: str, lines: list[str], hits: list[int]) -> None:
        context = self.args.context
        hit_set = set(hits)
        last_shown = 0
        for number in hits:
            first = max(1, number - context, last_shown + 1)
            # "--" between groups, as grep does: a new file or a gap within this one.
            if context and self.lines and (last_shown == 0 or first > last_shown + 1):
                self.lines.append("--")
            for shown in range(first, min(len(lines), number + context) + 1):
                if shown <= last_shown:
                    continue
                text = lines[shown - 1]
                if len(text) > MAX_GREP_LINE_CHARS:
                    text = text[:MAX_GREP_LINE_CHARS] + f" … [{len(text)} characters]"
                separator = ":" if shown in hit_set else "-"
                self.lines.append(f"{name}{separator}{shown}{separator}{text}")
                last_shown = shown

    def result(self, where: str) -> ToolResult:
        data = {"matches": self.matches, "files": self.files, "capped": self.capped}
        if not self.lines:
            return ToolResult(f"No matches for {self.args.pattern!r} in {where}. {_SKIPPED_NOTE}", data=data)
        notes: list[str] = []
        if self.capped:
            unit = "matching lines" if self.args.output_mode == "content" else "files"
            notes.append(
                f"[Results capped at {self.args.max_results} {unit}; there are more. Narrow the pattern, "
                "path or glob, or raise max_results.]"
            )
        if self.args.output_mode == "count":
            notes.append(f"[{self.matches} matching lines in {self.files} files.]")
        if self.skipped_large:
            notes.append(f"[{self.skipped_large} files over {MAX_GREP_FILE_BYTES // 2**20} MB were skipped.]")
        return ToolResult("\n".join(self.lines + notes), data=data)


def _glob_filter(pattern: str | None, root: Path) -> Callable[[Path], bool] | None:
    if not pattern:
        return None
    regex = compile_glob(pattern)
    if "/" in pattern:
        return lambda path: regex.fullmatch(path.relative_to(root).as_posix()) is not None
    return lambda path: regex.fullmatch(path.name) is not None


class GlobArgs(ToolArgs):
    pattern: str = Field(
        description=(
            "A glob matched against paths relative to `path`: '*' and '?' stay within one folder, '**' "
            "spans folders. E.g. '**/*.py' (every Python file), 'src/*.ts' (only directly in src), "
            "'**/test_*.{py,pyi}'."
        )
    )
    path: str = Field(default=".", description="The folder to search in. Default: the workspace.")


class GlobTool(Tool[GlobArgs]):
    name = "glob"
    description = (
        "Find files by name pattern, newest first (by modification time). Returns paths relative to the "
        f"workspace, at most {MAX_GLOB_RESULTS}. Only files are listed, not folders. Files ignored by git "
        "and .git, node_modules, .venv and __pycache__ folders are skipped."
    )
    Args = GlobArgs
    permission = Permission.READ

    async def run(self, args: GlobArgs, ctx: ToolContext) -> ToolResult:
        root = resolve_path(args.path, ctx.workspace)
        where = display_path(root, ctx.workspace)
        if not root.is_dir():
            raise ToolError(f"{where} is not a folder; glob searches inside a folder.")
        pattern = args.pattern.strip()
        if Path(pattern).is_absolute():
            pattern = display_path(resolve_path(pattern, root), root)
        regex = compile_glob(pattern)
        found = await asyncio.to_thread(_glob, root, ctx.workspace.resolve(), regex)
        data = {"count": len(found), "capped": len(found) > MAX_GLOB_RESULTS}
        if not found:
            return ToolResult(f"No files match {args.pattern!r} in {where}. {_SKIPPED_NOTE}", data=data)
        shown = [display_path(path, ctx.workspace) for path in found[:MAX_GLOB_RESULTS]]
        text = "\n".join(shown)
        if len(found) > MAX_GLOB_RESULTS:
            text += (
                f"\n[Showing the {MAX_GLOB_RESULTS} newest of {len(found)} matching files. Narrow the "
                "pattern or path to see the rest.]"
            )
        return ToolResult(text, data=data)


def _glob(root: Path, workspace: Path, regex: re.Pattern[str]) -> list[Path]:
    files = list_files(root, workspace)
    matched = [path for path in files if regex.fullmatch(path.relative_to(root).as_posix())]
    return sorted(matched, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
