"""Glob patterns ("src/**/*.py", "*.{ts,tsx}") as regular expressions over "/"-separated paths."""

from __future__ import annotations

import re

MAX_BRACE_EXPANSIONS = 64


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex that fully matches the relative paths `pattern` names.

    `*` and `?` stay within one path component, `**` spans components (`a/**/b` also matches `a/b`),
    `[...]` is a character class (`[!...]` negated), `{x,y}` alternatives.
    """
    alternatives = _expand_braces(pattern.removeprefix("./"))
    return re.compile("(?:" + "|".join(_translate(alt) for alt in alternatives) + r")\Z")


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    expanded: list[str] = []
    for option in match.group(1).split(","):
        expanded.extend(_expand_braces(pattern[: match.start()] + option + pattern[match.end() :]))
        if len(expanded) >= MAX_BRACE_EXPANSIONS:
            break
    return expanded[:MAX_BRACE_EXPANSIONS]


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(f"[{'^' if negate else ''}{re.escape(body)}]".replace("\\-", "-"))
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)
