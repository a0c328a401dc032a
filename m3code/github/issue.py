"""`--from-issue OWNER/NAME#N`: a GitHub issue's title, body and comments, written as a task."""

from __future__ import annotations

import re
from typing import Any

from m3code.github.api import GitHubClient
from m3code.github.errors import SetupError
from m3code.github.refs import RepoRef, parse_issue

# The line that marks a task as taken from an issue; the PR made from it closes that issue.
SOURCE_LINE = "_From GitHub issue {ref} ({url}), opened by @{login}._"
_SOURCE = re.compile(r"^_From GitHub issue (\S+#\d+) ", re.MULTILINE)


def issue_task(client: GitHubClient, repo: RepoRef, number: int) -> str:
    issue = client.get_issue(repo, number)
    comments = client.issue_comments(repo, number) if issue.get("comments", 1) else []
    return render_issue(repo, issue, comments)


def render_issue(repo: RepoRef, issue: dict[str, Any], comments: list[dict[str, Any]]) -> str:
    """Markdown the model reads as its task; authors and their role are kept, since anyone may comment."""
    title = str(issue.get("title") or f"Issue {repo}#{issue.get('number')}").strip()
    body = str(issue.get("body") or "").strip() or "(The issue has no description.)"
    source = SOURCE_LINE.format(ref=f"{repo}#{issue.get('number')}", url=issue.get("html_url", ""),
                                login=_login(issue))
    lines = [f"# {title}", "", body, "", source]
    if comments:
        lines += ["", "## Comments"]
        for comment in comments:
            role = str(comment.get("author_association") or "").lower().replace("_", " ")
            when = str(comment.get("created_at") or "")[:10]
            lines += ["", f"### @{_login(comment)}" + (f" ({role})" if role and role != "none" else "")
                      + (f", {when}" if when else ""), "", str(comment.get("body") or "").strip()]
    return "\n".join(lines).strip() + "\n"


def _login(item: dict[str, Any]) -> str:
    user = item.get("user")
    return str(user.get("login", "ghost")) if isinstance(user, dict) else "ghost"


def closes_ref(task: str, pr_repo: RepoRef) -> str | None:
    """`#N` (or `OWNER/NAME#N` across repositories) when the task came from an issue, for "Closes ..."."""
    found = _SOURCE.search(task)
    if not found:
        return None
    try:
        repo, number = parse_issue(found.group(1))
    except SetupError:
        return None
    return f"#{number}" if repo == pr_repo else f"{repo}#{number}"
