"""Text helpers shared by the file tools: decoding, lines, line numbers, diffs."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

SNIFF_BYTES = 8192  # a NUL byte in this much of the start marks a file as binary
MAX_LINE_CHARS = 2000  # longer lines are cut when shown to the model
MAX_DIFF_CHARS = 200_000  # diffs go into the event log; a rewritten huge file should not bloat it

# Lines end at "\n" only: str.splitlines would also split at \x0c, \x1c, \u2028 and others, which would
# put our line numbers out of step with every editor's and with grep's.
_LINE_END = re.compile(r"\r?\n")


def decode_text(data: bytes) -> str | None:
    """The file's text, or None when it is binary (a NUL byte near the start, or not UTF-8)."""
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def split_lines(text: str) -> list[str]:
    """Lines without their endings ("\\n" or "\\r\\n"); a final newline does not start another line."""
    if not text:
        return []
    lines = _LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


def keepends_lines(text: str) -> list[str]:
    """Lines with their endings, split at "\\n" only."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def line_ending(text: str) -> str:
    """The file's line ending: "\\r\\n" when most of its lines end that way, else "\\n"."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf > text.count("\n") - crlf else "\n"


def line_of(text: str, index: int) -> int:
    """The 1-based line number of the character at `index`."""
    return text.count("\n", 0, index) + 1


def number_lines(lines: Sequence[str], first: int) -> tuple[str, int]:
    """Lines in `cat -n` style starting at number `first`; also how many long lines were cut."""
    out: list[str] = []
    cut = 0
    for number, line in enumerate(lines, start=first):
        if len(line) > MAX_LINE_CHARS:
            cut += 1
            line = f"{line[:MAX_LINE_CHARS]} … [line cut: {len(line)} characters in all]"
        out.append(f"{number:>6}\t{line}")
    return "\n".join(out), cut


def numbered_excerpt(text: str, start: int, end: int, *, context: int = 3, max_lines: int = 40) -> str:
    """Lines start..end of `text` (1-based, inclusive) with `context` lines around, numbered."""
    lines = split_lines(text)
    lo = max(1, start - context)
    hi = min(len(lines), end + context, lo + max_lines - 1)
    body, _ = number_lines(lines[lo - 1 : hi], lo)
    return body


def unified_diff(old: str, new: str, name: str) -> str:
    """A unified diff of two versions of the file `name` (for the UI and the log), capped in size."""
    diff = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in difflib.unified_diff(
            keepends_lines(old), keepends_lines(new), fromfile=f"a/{name}", tofile=f"b/{name}"
        )
    )
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n[diff cut at {MAX_DIFF_CHARS} characters]\n"
    return diff


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
