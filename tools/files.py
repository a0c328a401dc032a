"""File tools: read with line ranges, write, edit by exact string replacement, several edits at once."""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import Field

from tools.base import Permission, Tool, ToolArgs, ToolContext, ToolError, ToolResult
from tools.editing import EditError, Replacement, replace_exact
from tools.image import sniff_image
from tools.paths import display_path, resolve_path
from tools.textfile import (
    MAX_LINE_CHARS,
    decode_text,
    format_size,
    line_ending,
    number_lines,
    numbered_excerpt,
    split_lines,
    unified_diff,
)
from tools.walk import walk_files

DEFAULT_READ_LINES = 2000
MAX_WHOLE_READ_BYTES = 5 * 1024 * 1024  # bigger files are read in parts (offset/limit) or grepped
_MAX_NAME_SEARCH = 20_000  # files looked at when suggesting where a missing file might be


class ReadArgs(ToolArgs):
    path: str = Field(description="The file to read: relative to the workspace, or absolute inside it.")
    offset: int | None = Field(
        default=None, ge=1,
        description="The line number to start at (1-based). Leave out to start at the first line.",
    )
    limit: int | None = Field(
        default=None, ge=1,
        description=f"How many lines to show (default {DEFAULT_READ_LINES}).",
    )


class ReadTool(Tool[ReadArgs]):
    name = "read"
    description = (
        "Read a text file of the workspace. Shows lines numbered like `cat -n` (number, tab, line); the "
        f"number and tab are not part of the file. Shows up to {DEFAULT_READ_LINES} lines from the start, "
        "or from `offset`; a footer says which lines were shown and how to read more. Lines longer than "
        f"{MAX_LINE_CHARS} characters are cut. Directories and binary files are refused: use glob to list "
        "files and grep to search them."
    )
    Args = ReadArgs
    permission = Permission.READ

    async def run(self, args: ReadArgs, ctx: ToolContext) -> ToolResult:
        path = resolve_path(args.path, ctx.workspace)
        name = display_path(path, ctx.workspace)
        _require_file(path, ctx.workspace)
        size = path.stat().st_size
        if size > MAX_WHOLE_READ_BYTES and args.offset is None and args.limit is None:
            raise ToolError(
                f"{name} is {format_size(size)}, too large to read whole (the limit is "
                f"{format_size(MAX_WHOLE_READ_BYTES)}). Read part of it with offset and limit, or search it "
                "with grep."
            )
        data = await ctx.sandbox.read(path)
        lines = split_lines(_decode(data, name).removeprefix("\ufeff"))
        if not lines:
            return ToolResult(f"{name} is empty ({format_size(len(data))}).",
                              data={"path": name, "total_lines": 0})
        start = args.offset or 1
        if start > len(lines):
            raise ToolError(f"offset {start} is past the end of {name}, which has {len(lines)} lines.")
        shown = lines[start - 1 : start - 1 + (args.limit or DEFAULT_READ_LINES)]
        end = start + len(shown) - 1
        body, cut = number_lines(shown, start)
        if end < len(lines):
            footer = f"[Lines {start}-{end} of {len(lines)}. To read more, call read with offset={end + 1}.]"
        else:
            footer = f"[Lines {start}-{end} of {len(lines)}; end of file.]"
        if cut:
            footer += f" [{cut} long line(s) cut at {MAX_LINE_CHARS} characters.]"
        return ToolResult(
            f"{body}\n{footer}",
            data={"path": name, "start_line": start, "end_line": end, "total_lines": len(lines)},
        )


class WriteArgs(ToolArgs):
    path: str = Field(description="The file to write: relative to the workspace, or absolute inside it.")
    content: str = Field(description="The complete new content of the file.")


class WriteTool(Tool[WriteArgs]):
    name = "write"
    description = (
        "Create a file, or replace all of an existing file's content. Missing parent folders are created. "
        "To change part of an existing file, prefer edit or multi_edit: they send only the change. An "
        "existing file that uses CRLF line endings keeps them."
    )
    Args = WriteArgs
    permission = Permission.WRITE

    async def run(self, args: WriteArgs, ctx: ToolContext) -> ToolResult:
        path = resolve_path(args.path, ctx.workspace)
        name = display_path(path, ctx.workspace)
        if path.is_dir():
            raise ToolError(f"{name} is a directory; give the path of a file inside it.")
        existed = path.exists()
        old_data = await ctx.sandbox.read(path) if existed else b""
        old = decode_text(old_data)
        content = args.content
        if old is not None and line_ending(old) == "\r\n" and "\r\n" not in content:
            content = content.replace("\n", "\r\n")
        line_count = len(split_lines(content))
        if existed and old == content:
            return ToolResult(f"{name} already has exactly this content; nothing was written.",
                              data={"path": name, "created": False, "lines": line_count, "diff": ""})
        await ctx.sandbox.write(path, content.encode("utf-8"))
        if not existed:
            message = f"Created {name} ({line_count} lines)."
        else:
            was = f"{len(split_lines(old))} lines" if old is not None else format_size(len(old_data))
            message = f"Overwrote {name} ({line_count} lines; it had {was})."
        return ToolResult(
            message,
            data={"path": name, "created": not existed, "lines": line_count,
                  "diff": unified_diff(old or "", content, name)},
        )


class EditArgs(ToolArgs):
    path: str = Field(description="The file to edit: relative to the workspace, or absolute inside it.")
    old_string: str = Field(
        description=(
            "The exact text to replace, character for character, including indentation and line breaks. "
            "It must occur exactly once in the file unless replace_all is true, so include enough "
            "surrounding lines to make it unique. Do not include the line numbers that read shows."
        )
    )
    new_string: str = Field(description="The text to put in its place (must differ from old_string).")
    replace_all: bool = Field(
        default=False, description="Replace every occurrence of old_string instead of requiring exactly one."
    )


class EditTool(Tool[EditArgs]):
    name = "edit"
    description = (
        "Edit a file by replacing an exact string: old_string must match the file's text exactly "
        "(whitespace included) and occur once, unless replace_all is true. Read the file first so that "
        "old_string is copied from its current content. For several changes to one file use multi_edit; "
        "to create a file use write."
    )
    Args = EditArgs
    permission = Permission.WRITE

    async def run(self, args: EditArgs, ctx: ToolContext) -> ToolResult:
        path, name, text = await _load_for_edit(args.path, ctx)
        try:
            result = replace_exact(text, args.old_string, args.new_string, replace_all=args.replace_all)
        except EditError as exc:
            raise ToolError(f"Could not edit {name}: {exc}") from exc
        await ctx.sandbox.write(path, result.text.encode("utf-8"))
        plural = "occurrence" if result.count == 1 else "occurrences"
        return ToolResult(
            f"Edited {name}: replaced {result.count} {plural}. "
            f"{_excerpt_heading(result)}\n"
            + numbered_excerpt(result.text, result.start_line, result.end_line),
            data={"path": name, "replacements": result.count, "diff": unified_diff(text, result.text, name)},
        )


class EditSpec(ToolArgs):
    old_string: str = Field(description="The exact text to replace, as in edit.")
    new_string: str = Field(description="The text to put in its place.")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one.")


class MultiEditArgs(ToolArgs):
    path: str = Field(description="The file to edit: relative to the workspace, or absolute inside it.")
    edits: list[EditSpec] = Field(
        min_length=1,
        description=(
            "Edits applied one after another, each to the text as the edits before it left it. Each "
            "follows edit's rules. If any edit fails, none is written."
        ),
    )


class MultiEditTool(Tool[MultiEditArgs]):
    name = "multi_edit"
    description = (
        "Make several exact-string edits to one file in one step. Edits apply in order, each to the "
        "result of the previous ones, so a later old_string must match the text after earlier edits. "
        "All or nothing: if any edit fails, the file is left unchanged and the error names the edit."
    )
    Args = MultiEditArgs
    permission = Permission.WRITE

    async def run(self, args: MultiEditArgs, ctx: ToolContext) -> ToolResult:
        path, name, original = await _load_for_edit(args.path, ctx)
        text = original
        summary: list[str] = []
        for index, edit in enumerate(args.edits):
            try:
                result = replace_exact(text, edit.old_string, edit.new_string, replace_all=edit.replace_all)
            except EditError as exc:
                seen = " (it was matched against the text as the earlier edits left it)" if index else ""
                raise ToolError(
                    f"Could not edit {name}: edit {index + 1} of {len(args.edits)} (edits[{index}]) failed"
                    f"{seen}: {exc} No changes were written; fix that edit and send all the edits again."
                ) from exc
            text = result.text
            summary.append(f"edits[{index}]: {result.count} replacement(s) at line {result.start_line}")
        await ctx.sandbox.write(path, text.encode("utf-8"))
        return ToolResult(
            f"Applied {len(args.edits)} edits to {name}:\n" + "\n".join(summary),
            data={"path": name, "edits": len(args.edits), "diff": unified_diff(original, text, name)},
        )


def _require_file(path: Path, workspace: Path) -> None:
    if not path.exists():
        raise ToolError(_missing_file_message(path, workspace))
    if path.is_dir():
        name = display_path(path, workspace)
        pattern = "*" if name == "." else f"{name}/*"
        raise ToolError(
            f"{name} is a directory, not a file. "
            f"To list its files, use glob with pattern {pattern!r}."
        )


def _decode(data: bytes, name: str) -> str:
    text = decode_text(data)
    if text is None:
        raise ToolError(
            f"{name} is a binary file ({format_size(len(data))}), not UTF-8 text, so it cannot be shown "
            "or edited as text." + (" It is an image: use the image tool to look at it." if sniff_image(data) else "")
        )
    return text


async def _load_for_edit(raw_path: str, ctx: ToolContext) -> tuple[Path, str, str]:
    """The resolved path, its display name and its text."""
    path = resolve_path(raw_path, ctx.workspace)
    _require_file(path, ctx.workspace)
    name = display_path(path, ctx.workspace)
    return path, name, _decode(await ctx.sandbox.read(path), name)


def _excerpt_heading(result: Replacement) -> str:
    where = f"line {result.start_line}" if result.start_line == result.end_line else (
        f"lines {result.start_line}-{result.end_line}")
    more = " (the first of them)" if result.count > 1 else ""
    return f"The edited text is at {where}{more}:"


def _missing_file_message(path: Path, workspace: Path) -> str:
    """Says the file does not exist and, when it can, where a file of a similar name is."""
    name = display_path(path, workspace)
    suggestions: list[str] = []
    folder = path.parent
    if folder.is_dir():
        siblings = [entry.name for entry in folder.iterdir()]
        suggestions += [
            display_path(folder / match, workspace)
            for match in difflib.get_close_matches(path.name, siblings, n=3, cutoff=0.6)
        ]
    suggestions += [
        display_path(found, workspace) for found in _same_name_elsewhere(path, workspace) if found != path
    ]
    message = f"File not found: {name}."
    if suggestions:
        return message + " Did you mean " + " or ".join(dict.fromkeys(suggestions)) + "?"
    if not folder.is_dir():
        message += f" Its folder {display_path(folder, workspace)} does not exist either."
    return message + " Use glob to find files."


def _same_name_elsewhere(path: Path, workspace: Path, limit: int = 3) -> list[Path]:
    found: list[Path] = []
    for seen, candidate in enumerate(walk_files(workspace.resolve())):
        if seen >= _MAX_NAME_SEARCH or len(found) >= limit:
            break
        if candidate.name == path.name:
            found.append(candidate)
    return found

