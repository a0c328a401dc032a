"""Names: repositories (OWNER/NAME), issues (OWNER/NAME#N), remote URLs, branch names from task titles."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from m3code.github.errors import SetupError

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_REPO = re.compile(rf"^({_OWNER})/({_NAME})$")
_ISSUE = re.compile(rf"^({_OWNER})/({_NAME})#(\d+)$")
_SCP = re.compile(r"^(?:[^@/]+@)?([^:/]+):(.+)$")  # git@github.com:owner/name.git
BRANCH_PREFIX = "m3code/"
SLUG_WORDS_CHARS = 40


@dataclass(frozen=True)
class RepoRef:
    owner: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.owner}/{self.name}"

    def __str__(self) -> str:
        return self.full


def parse_repo(text: str, what: str = "--repo") -> RepoRef:
    found = _REPO.match(text.strip())
    if not found or found.group(2) in (".", ".."):
        raise SetupError(f"{what} {text!r} is not a repository name; write it as OWNER/NAME, e.g. octo-org/widgets.")
    return RepoRef(found.group(1), found.group(2).removesuffix(".git"))


def parse_issue(text: str) -> tuple[RepoRef, int]:
    found = _ISSUE.match(text.strip())
    if not found:
        raise SetupError(f"--from-issue {text!r} is not an issue; write it as OWNER/NAME#NUMBER, "
                         "e.g. octo-org/widgets#42.")
    return RepoRef(found.group(1), found.group(2).removesuffix(".git")), int(found.group(3))


@dataclass(frozen=True)
class Remote:
    """Where a git remote URL points, when it is a hosted repository (not a path on disk)."""

    scheme: str  # https, http or ssh
    host: str  # with the port when there is one
    repo: RepoRef


def parse_remote_url(url: str) -> Remote | None:
    """The host and OWNER/NAME of https://host/o/n(.git), ssh://git@host/o/n.git or git@host:o/n.git."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git+ssh") or not parts.hostname:
            return None
        host = parts.hostname + (f":{parts.port}" if parts.port and parts.scheme.startswith("http") else "")
        scheme, path = ("ssh" if "ssh" in parts.scheme else parts.scheme), parts.path
    else:
        scp = _SCP.match(url)
        if not scp or url.startswith(("/", ".")):
            return None
        scheme, host, path = "ssh", scp.group(1), scp.group(2)
    pieces = [p for p in path.strip("/").split("/") if p]
    if len(pieces) < 2:
        return None
    try:
        repo = parse_repo(f"{pieces[-2]}/{pieces[-1].removesuffix('.git')}")
    except SetupError:
        return None
    return Remote(scheme, host, repo)


def api_url_for_host(host: str) -> str:
    """The REST API of github.com, or of a GitHub Enterprise Server at `host`."""
    if host in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return f"https://{host}/api/v3"


def task_title(task: str) -> str:
    """The first non-empty line of a task, without markdown heading marks."""
    for line in task.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return "m3code job"


def slugify(text: str, limit: int = SLUG_WORDS_CHARS) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > limit:
            break
        slug = longer
    return slug or (words[0][:limit] if words else "job")


def branch_for(task: str, session_id: str) -> str:
    """`m3code/<slug of the title>-<short session id>`: readable, and unique per session."""
    short = session_id.rsplit("-", 1)[-1]
    return f"{BRANCH_PREFIX}{slugify(task_title(task))}-{short}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
