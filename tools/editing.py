"""Exact string replacement in a file's text, with errors that help the model fix its next attempt."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from tools.textfile import line_ending, line_of, number_lines, split_lines

MAX_LISTED_LINES = 20  # line numbers listed for an ambiguous old_string
SIMILARITY_CUTOFF = 0.6  # below this a line or window is not "similar" enough to show
_ANCHORS = 3  # how many of old_string's lines are used to find candidate regions
_LINE_NUMBER_PREFIX = re.compile(r"^\s*\d+\t", re.MULTILINE)


class EditError(Exception):
    """The edit cannot be applied; the message says why and what to try."""


@dataclass(frozen=True)
class Replacement:
    text: str  # the whole text after the edit
    count: int  # occurrences replaced
    start_line: int  # first line of the first replacement, in the new text
    end_line: int  # its last line


def replace_exact(text: str, old: str, new: str, *, replace_all: bool = False) -> Replacement:
    """Replace `old` by `new` in `text`: the one occurrence, or every one when `replace_all`.

    The model sees files with "\\n" line ends; in a CRLF file its strings are matched and written with
    "\\r\\n", so the file keeps its line endings.
    """
    if not old:
        raise EditError("old_string is empty. To create a file or replace all of its content, use write.")
    if old == new:
        raise EditError("old_string and new_string are identical, so there is nothing to change.")
    for old_form, new_form in _line_ending_forms(text, old, new):
        count = text.count(old_form)
        if count == 0:
            continue
        if count > 1 and not replace_all:
            raise EditError(_ambiguous_message(text, old_form, count))
        first = text.index(old_form)
        if replace_all:
            new_text = text.replace(old_form, new_form)
        else:
            new_text = text[:first] + new_form + text[first + len(old_form) :]
        start = line_of(new_text, first)
        return Replacement(new_text, count, start, start + new_form.count("\n"))
    raise EditError(not_found_message(text, old))


def _line_ending_forms(text: str, old: str, new: str) -> list[tuple[str, str]]:
    """(old, new) pairs to try in order: first in the file's own line ending, then exactly as given."""
    lf_old, lf_new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    if line_ending(text) == "\r\n":
        forms = [(lf_old.replace("\n", "\r\n"), lf_new.replace("\n", "\r\n")), (old, new)]
    else:
        forms = [(old, new), (lf_old, lf_new)]
    return list(dict.fromkeys(forms))


def _ambiguous_message(text: str, old: str, count: int) -> str:
    lines: list[int] = []
    index = text.find(old)
    while index != -1 and len(lines) < MAX_LISTED_LINES:
        lines.append(line_of(text, index))
        index = text.find(old, index + len(old))
    listed = ", ".join(map(str, lines)) + (f", and {count - len(lines)} more" if count > len(lines) else "")
    return (
        f"old_string occurs {count} times (starting on lines {listed}). Include more of the surrounding "
        "lines in old_string so that it matches exactly one place, or set replace_all to true to replace "
        "every occurrence."
    )


def not_found_message(text: str, old: str) -> str:
    """Why `old` matched nothing, quoting the most similar lines of `text` when there are some."""
    message = "old_string was not found in the file."
    lines = split_lines(text)
    wanted = split_lines(old.replace("\r\n", "\n"))
    nearest = _nearest_window(lines, wanted)
    if nearest is None:
        message += " No similar lines were found either; read the file to see its current content."
    else:
        start, end, ratio = nearest
        shown, _ = number_lines(lines[start - 1 : end], start)
        message += f" The most similar text is at lines {start}-{end} ({ratio:.0%} similar):\n{shown}\n"
        if ratio == 1.0:
            message += (
                "These lines differ from old_string only in whitespace: copy the indentation (tabs or "
                "spaces) and trailing spaces exactly as they are in the file."
            )
        else:
            message += (
                "Check for differences in whitespace, indentation and exact characters, and read the file "
                "again if it may have changed since you last read it."
            )
    if _LINE_NUMBER_PREFIX.search(old):
        message += (
            " old_string seems to contain line numbers copied from read's output; leave out the number "
            "and the tab before each line."
        )
    return message


def _nearest_window(lines: list[str], wanted: list[str]) -> tuple[int, int, float] | None:
    """(first line, last line, similarity) of the region of `lines` most like `wanted`, if any is close.

    Comparing every window character by character is too slow for big files, so candidate regions are
    anchored on file lines similar to old_string's most distinctive (longest) lines.
    """
    if not lines or not wanted:
        return None
    size = min(len(wanted), len(lines))
    stripped = [line.strip() for line in lines]
    anchors = sorted(
        ((offset, line.strip()) for offset, line in enumerate(wanted) if line.strip()),
        key=lambda anchor: -len(anchor[1]),
    )[:_ANCHORS]
    starts = {
        max(0, min(index - offset, len(lines) - size))
        for offset, anchor in anchors
        for index in _similar_lines(stripped, anchor)
    }
    target = "\n".join(line.strip() for line in wanted)
    best: tuple[int, int, float] | None = None
    for start in sorted(starts):
        window = "\n".join(stripped[start : start + size])
        ratio = SequenceMatcher(None, window, target, autojunk=False).ratio()
        if ratio >= SIMILARITY_CUTOFF and (best is None or ratio > best[2]):
            best = (start + 1, start + size, ratio)
    return best


def _similar_lines(lines: list[str], anchor: str, limit: int = 5) -> list[int]:
    """Indices of the `limit` lines most similar to `anchor` (cheap upper bounds first, as difflib does)."""
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(anchor)
    best: list[tuple[float, int]] = []  # a min-heap of (ratio, -index): the weakest kept candidate on top
    cutoff = SIMILARITY_CUTOFF
    for index, line in enumerate(lines):
        matcher.set_seq1(line)
        if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
            continue
        ratio = matcher.ratio()
        if ratio < cutoff:
            continue
        heapq.heappush(best, (ratio, -index))
        if len(best) > limit:
            heapq.heappop(best)
        if len(best) == limit:
            cutoff = max(cutoff, best[0][0])  # later lines must beat the weakest kept one
    return [-negated for _, negated in sorted(best, reverse=True)]
