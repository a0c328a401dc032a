"""A fake GitHub on 127.0.0.1: the REST endpoints m3code uses, with GitHub's documented request and response
shapes and errors, plus git's smart HTTP (through `git http-backend`) so real pushes reach a real bare repo.

Tokens are checked as GitHub checks them: `Authorization: Bearer|token TOKEN` on the API, HTTP basic auth
(any user, the token as password) on git.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

DOCS = "https://docs.github.com/rest"
Json = dict[str, Any]


@dataclass
class FakeRepo:
    owner: str
    name: str
    git_dir: Path | None = None  # the bare repository behind it: branches for PR checks, and git over HTTP
    default_branch: str = "main"
    private: bool = False
    issues: dict[int, Json] = field(default_factory=dict)
    comments: dict[int, list[Json]] = field(default_factory=dict)
    pulls: list[Json] = field(default_factory=list)

    @property
    def full(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Fault:
    """Answer the next `times` requests matching method and path with this instead."""

    method: str
    path: str
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class FakeGitHub:
    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens  # token -> "write" | "read"
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Json] = []
        self.faults: list[Fault] = []
        self.next_number = 100
        self.base_url = ""  # set by the test once the server listens

    def add_repo(self, owner: str, name: str, **kwargs: Any) -> FakeRepo:
        repo = self.repos[f"{owner}/{name}"] = FakeRepo(owner, name, **kwargs)
        return repo

    def add_issue(self, repo: FakeRepo, title: str, body: str | None, comments: list[tuple[str, str]]) -> int:
        number = self.next_number = self.next_number + 1
        repo.issues[number] = {
            "id": 9000 + number, "node_id": f"I_{number}", "number": number, "title": title, "body": body,
            "state": "open", "user": {"login": "reporter", "id": 7, "type": "User"}, "labels": [],
            "comments": len(comments), "html_url": f"https://github.com/{repo.full}/issues/{number}",
            "url": f"{self.base_url}/repos/{repo.full}/issues/{number}", "author_association": "NONE",
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z",
        }
        repo.comments[number] = [
            {"id": 500 + i, "node_id": f"IC_{i}", "body": text, "user": {"login": login, "id": 8, "type": "User"},
             "author_association": "MEMBER" if login == "maintainer" else "NONE",
             "created_at": f"2026-01-0{3 + i % 6}T00:00:00Z", "updated_at": "2026-01-03T00:00:00Z",
             "html_url": f"https://github.com/{repo.full}/issues/{number}#issuecomment-{500 + i}"}
            for i, (login, text) in enumerate(comments)
        ]
        return number

    def api_requests(self, method: str | None = None, path_part: str = "") -> list[Json]:
        return [r for r in self.requests if not r["git"] and (method is None or r["method"] == method)
                and path_part in r["path"]]

    # -- ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Json, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        # GitHub Enterprise Server serves the same API under /api/v3.
        path, query = scope["path"].removeprefix("/api/v3"), parse_qs(scope["query_string"].decode())
        git = re.match(r"^/([^/]+)/([^/]+)\.git/(info/refs|git-upload-pack|git-receive-pack)$", path)
        record = {"method": scope["method"], "path": path, "raw_path": scope["path"], "query": query,
                  "headers": headers, "git": bool(git), "json": None}
        if not git and body:
            record["json"] = json.loads(body)
        self.requests.append(record)
        if git:
            reply = await self._git(scope, headers, body, git)
        else:
            reply = self._fault(scope["method"], path) or self._api(scope["method"], path, query, headers,
                                                                     record["json"])
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
        await send({"type": "http.response.body", "body": reply.body})

    # -- REST -----------------------------------------------------------------------------------------------

    def _fault(self, method: str, path: str) -> Reply | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path == path:
                fault.times -= 1
                return self._json(fault.status, fault.body, fault.headers)
        return None

    def _json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> Reply:
        headers = {"content-type": "application/json; charset=utf-8", "x-github-media-type": "github.v3",
                   "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-used": "1",
                   "x-ratelimit-reset": str(int(time.time()) + 3600), "x-ratelimit-resource": "core",
                   "x-github-request-id": "0000:1111:2222", **(extra or {})}
        return Reply(status, json.dumps(body).encode(), [(k.encode(), v.encode()) for k, v in headers.items()])

    def _error(self, status: int, message: str, **extra: Any) -> Reply:
        return self._json(status, {"message": message, "documentation_url": DOCS, "status": str(status), **extra})

    def _token_role(self, headers: dict[str, str]) -> tuple[str | None, Reply | None]:
        auth = headers.get("authorization")
        if auth is None:
            return None, None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.tokens:
            return None, self._error(401, "Bad credentials")
        return self.tokens[token], None

    def _api(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
             data: Any) -> Reply:
        if not headers.get("user-agent"):
            return self._error(403, "Request forbidden by administrative rules. Please make sure your request "
                                    "has a User-Agent header")
        role, refused = self._token_role(headers)
        if refused:
            return refused
        found = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)?$", path)
        repo = self.repos.get(f"{found.group(1)}/{found.group(2)}") if found else None
        if found is None or repo is None or (repo.private and role is None):
            return self._error(404, "Not Found")
        rest = found.group(3) or ""
        writes = method in ("POST", "PATCH", "PUT", "DELETE")
        if writes and role is None:
            return self._error(401, "Requires authentication")
        if writes and role != "write":
            return self._error(403, "Resource not accessible by personal access token")
        if method == "GET" and rest == "":
            return self._json(200, self._repo_json(repo, role))
        if issue := re.fullmatch(r"/issues/(\d+)", rest):
            item = repo.issues.get(int(issue.group(1)))
            return self._json(200, item) if method == "GET" and item else self._error(404, "Not Found")
        if issue := re.fullmatch(r"/issues/(\d+)/comments", rest):
            if method != "GET" or int(issue.group(1)) not in repo.issues:
                return self._error(404, "Not Found")
            return self._page(path, query, repo.comments.get(int(issue.group(1)), []))
        if rest == "/pulls" and method == "GET":
            return self._json(200, self._list_pulls(repo, query))
        if rest == "/pulls" and method == "POST":
            return self._create_pull(repo, data)
        if (pull := re.fullmatch(r"/pulls/(\d+)", rest)) and method == "PATCH":
            return self._update_pull(repo, int(pull.group(1)), data)
        return self._error(404, "Not Found")

    def _repo_json(self, repo: FakeRepo, role: str | None) -> Json:
        data: Json = {"id": 4242, "node_id": "R_1", "name": repo.name, "full_name": repo.full,
                      "private": repo.private, "owner": {"login": repo.owner, "id": 1, "type": "Organization"},
                      "html_url": f"https://github.com/{repo.full}", "default_branch": repo.default_branch,
                      "url": f"{self.base_url}/repos/{repo.full}"}
        if role is not None:
            data["permissions"] = {"admin": False, "maintain": False, "push": role == "write", "triage": True,
                                   "pull": True}
        return data

    def _page(self, path: str, query: dict[str, list[str]], items: list[Json]) -> Reply:
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.base_url}{path}?{urlencode({"per_page": per_page, "page": page + 1})}>; rel="next"')
            links.append(f'<{self.base_url}{path}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"')
        return self._json(200, chunk, {"link": ", ".join(links)} if links else None)

    def _list_pulls(self, repo: FakeRepo, query: dict[str, list[str]]) -> list[Json]:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        return [p for p in repo.pulls if (state == "all" or p["state"] == state)
                and (head is None or p["head"]["label"] == head) and (base is None or p["base"]["ref"] == base)]

    def _branch_sha(self, repo: FakeRepo, branch: str) -> str | None:
        if repo.git_dir is None:
            return None
        found = subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd=repo.git_dir,
                               capture_output=True, text=True)
        return found.stdout.strip() or None

    def _invalid(self, field_name: str, code: str = "invalid") -> Reply:
        return self._error(422, "Validation Failed",
                           errors=[{"resource": "PullRequest", "field": field_name, "code": code}])

    def _create_pull(self, repo: FakeRepo, data: Any) -> Reply:
        if not isinstance(data, dict):
            return self._error(400, "Problems parsing JSON")
        for name in ("title", "head", "base"):
            if not isinstance(data.get(name), str) or not data[name]:
                return self._invalid(name, "missing_field")
        owner, _, branch = data["head"].rpartition(":")
        owner = owner or repo.owner
        head_sha, base_sha = self._branch_sha(repo, branch), self._branch_sha(repo, data["base"])
        if head_sha is None:
            return self._invalid("head")
        if base_sha is None:
            return self._invalid("base")
        label = f"{owner}:{branch}"
        if any(p["head"]["label"] == label and p["base"]["ref"] == data["base"] and p["state"] == "open"
               for p in repo.pulls):
            return self._error(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom", "message": f"A pull request already exists for {label}."}])
        ahead = subprocess.run(["git", "rev-list", "--count", f"{base_sha}..{head_sha}"], cwd=repo.git_dir,
                               capture_output=True, text=True).stdout.strip()
        if ahead == "0":
            return self._error(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom",
                "message": f"No commits between {data['base']} and {branch}"}])
        number = self.next_number = self.next_number + 1
        pull = {
            "url": f"{self.base_url}/repos/{repo.full}/pulls/{number}", "id": 70000 + number,
            "node_id": f"PR_{number}", "html_url": f"https://github.com/{repo.full}/pull/{number}",
            "number": number, "state": "open", "locked": False, "title": data["title"], "body": data.get("body"),
            "draft": bool(data.get("draft", False)), "user": {"login": "m3code-bot", "id": 3, "type": "Bot"},
            "head": {"label": label, "ref": branch, "sha": head_sha, "repo": {"full_name": repo.full}},
            "base": {"label": f"{repo.owner}:{data['base']}", "ref": data["base"], "sha": base_sha,
                     "repo": {"full_name": repo.full}},
            "created_at": "2026-01-05T00:00:00Z", "updated_at": "2026-01-05T00:00:00Z",
        }
        repo.pulls.append(pull)
        return self._json(201, pull, {"location": pull["url"]})

    def _update_pull(self, repo: FakeRepo, number: int, data: Any) -> Reply:
        pull = next((p for p in repo.pulls if p["number"] == number), None)
        if pull is None:
            return self._error(404, "Not Found")
        for key in ("title", "body", "state"):
            if isinstance(data, dict) and key in data:
                pull[key] = data[key]
        pull["updated_at"] = "2026-01-06T00:00:00Z"
        return self._json(200, pull)

    # -- git smart HTTP -------------------------------------------------------------------------------------

    async def _git(self, scope: Json, headers: dict[str, str], body: bytes, found: re.Match[str]) -> Reply:
        repo = self.repos.get(f"{found.group(1)}/{found.group(2)}")
        if repo is None or repo.git_dir is None:
            return Reply(404, b"Repository not found.\n", [(b"content-type", b"text/plain")])
        query = scope["query_string"].decode()
        pushing = found.group(3) == "git-receive-pack" or "service=git-receive-pack" in query
        token = _basic_password(headers.get("authorization", ""))
        role = self.tokens.get(token) if token else None
        if (pushing or repo.private) and role is None:
            return Reply(401, b"Invalid username or token.\n",
                         [(b"www-authenticate", b'Basic realm="GitHub"'), (b"content-type", b"text/plain")])
        if pushing and role != "write":
            return Reply(403, f"Permission to {repo.full}.git denied to m3code-bot.\n".encode(),
                         [(b"content-type", b"text/plain")])
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(repo.git_dir.parent.parent),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": f"/{repo.git_dir.parent.name}/{repo.git_dir.name}/"
               f"{found.group(3)}", "QUERY_STRING": query, "REQUEST_METHOD": scope["method"],
               "CONTENT_TYPE": headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": "m3code-bot", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": headers.get("content-encoding", ""),
               "GIT_PROTOCOL": headers.get("git-protocol", "")}
        proc = await asyncio.create_subprocess_exec("git", "http-backend", stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, env=env)
        out, _ = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n") if b"\r\n\r\n" in out else out.partition(b"\n\n")
        status, reply_headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                reply_headers.append((name.strip().lower().encode(), value.strip().encode()))
        return Reply(status, payload, reply_headers)


def _basic_password(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value).decode().partition(":")[2]
    except ValueError:
        return None
