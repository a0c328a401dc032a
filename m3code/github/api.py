"""A small GitHub REST client (httpx): the calls m3code makes, rate limits honoured, errors explained."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from m3code import __version__
from m3code.github.errors import GitHubApiError
from m3code.github.masking import Masker
from m3code.github.refs import RepoRef

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_ATTEMPTS = 4
MAX_RATE_LIMIT_WAIT_S = 600.0  # a CI job may wait out a reset; beyond this it fails and says when to rerun
SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub's advice when a secondary limit names no time


class GitHubClient:
    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        masker: Masker | None = None,
        timeout: float = 30.0,
        max_wait: float = MAX_RATE_LIMIT_WAIT_S,
        per_page: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.has_token = bool(token)
        self.masker = masker or Masker([token])
        self.max_wait = max_wait
        self.per_page = per_page
        self._sleep = sleep
        self._say = say or (lambda _text: None)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": f"m3code/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the calls ------------------------------------------------------------------------------------------

    def get_repo(self, repo: RepoRef) -> dict[str, Any]:
        return self._json("GET", f"/repos/{repo.full}", what=f"read the repository {repo}", repo=repo)

    def get_issue(self, repo: RepoRef, number: int) -> dict[str, Any]:
        return self._json("GET", f"/repos/{repo.full}/issues/{number}", what=f"read issue {repo}#{number}",
                          repo=repo)

    def issue_comments(self, repo: RepoRef, number: int) -> list[dict[str, Any]]:
        return self._pages(f"/repos/{repo.full}/issues/{number}/comments",
                           what=f"read the comments of {repo}#{number}", repo=repo)

    def find_open_pull(self, repo: RepoRef, branch: str) -> dict[str, Any] | None:
        """The open pull request whose head is `branch` of `repo` itself, if there is one."""
        found = self._json("GET", f"/repos/{repo.full}/pulls", what="list pull requests", repo=repo,
                           params={"head": f"{repo.owner}:{branch}", "state": "open"})
        return found[0] if found else None

    def create_pull(self, repo: RepoRef, *, title: str, head: str, base: str, body: str,
                    draft: bool) -> dict[str, Any]:
        return self._json("POST", f"/repos/{repo.full}/pulls", what=f"open a pull request on {repo}", repo=repo,
                          body={"title": title, "head": head, "base": base, "body": body, "draft": draft})

    def update_pull(self, repo: RepoRef, number: int, *, title: str, body: str) -> dict[str, Any]:
        return self._json("PATCH", f"/repos/{repo.full}/pulls/{number}", repo=repo,
                          what=f"update pull request #{number} on {repo}", body={"title": title, "body": body})

    # -- plumbing -------------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, what: str, repo: RepoRef, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> Any:
        return self._send(method, path, what=what, repo=repo, params=params, body=body).json()

    def _pages(self, path: str, *, what: str, repo: RepoRef) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": self.per_page}
        while url:
            response = self._send("GET", url, what=what, repo=repo, params=params)
            items.extend(response.json())
            following = response.links.get("next", {}).get("url")
            url, params = following, None  # the next link carries its own query
        return items

    def _send(self, method: str, path: str, *, what: str, repo: RepoRef, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = self._http.request(method, path, params=params, json=body)
            except httpx.TransportError as exc:
                if attempt + 1 == MAX_ATTEMPTS:
                    raise GitHubApiError(self.masker.mask(
                        f"Could not {what}: {self.api_url} cannot be reached ({type(exc).__name__}: {exc}). "
                        "Check the network and --github-api-url.")) from exc
                self._wait(2.0**attempt, f"{type(exc).__name__} reaching {self.api_url}")
                continue
            if response.status_code < 400:
                return response
            delay = retry_delay(response, attempt)
            if delay is None or attempt + 1 == MAX_ATTEMPTS:
                raise GitHubApiError(self.masker.mask(explain(response, what, repo, self.has_token, self.api_url)),
                                     response.status_code)
            if delay > self.max_wait:
                raise GitHubApiError(rate_limited(response, what, delay), response.status_code)
            self._wait(delay, f"GitHub answered {response.status_code} ({_message(response) or 'no message'})")
        raise AssertionError("unreachable")

    def _wait(self, delay: float, reason: str) -> None:
        self._say(f"GitHub: {reason}; retrying in {delay:.0f}s")
        self._sleep(delay)


def retry_delay(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before trying again, by GitHub's documented rate-limit headers; None: do not retry."""
    status, headers = response.status_code, response.headers
    if status in (403, 429):
        retry_after = headers.get("retry-after", "")
        if retry_after.isdigit():
            return float(retry_after)
        reset = headers.get("x-ratelimit-reset", "")
        if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
            return max(0.0, int(reset) - time.time()) + 1.0  # +1: the reset second itself, and clock skew
        if status == 429 or "rate limit" in _message(response).lower():
            return SECONDARY_LIMIT_WAIT_S * 2**attempt
        return None
    if status >= 500:
        return 2.0**attempt
    return None


def rate_limited(response: httpx.Response, what: str, delay: float) -> str:
    when = datetime.fromtimestamp(time.time() + delay, UTC).strftime("%H:%M:%S UTC")
    return (f"Could not {what}: GitHub's rate limit for this token is used up until {when} "
            f"({delay / 60:.0f} min away, longer than m3code waits). Rerun after that, or use a token with a "
            "higher limit (a GitHub App or the Actions GITHUB_TOKEN).")


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def _details(response: httpx.Response) -> str:
    """GitHub's own words: the message and each validation error."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message", ""))]
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            parts.append(err.get("message") or " ".join(f"{k}={err[k]}" for k in ("resource", "field", "code")
                                                         if k in err))
        else:
            parts.append(str(err))
    return "; ".join(p for p in parts if p)


def explain(response: httpx.Response, what: str, repo: RepoRef, has_token: bool, api_url: str) -> str:
    status, said = response.status_code, _details(response)
    head = f"Could not {what}: GitHub answered {status} ({said or 'no message'})."
    if status == 401:
        fix = ("The token was rejected: it is wrong, expired or revoked. Set GITHUB_TOKEN (or GH_TOKEN) to a valid "
               "token." if has_token else "Set GITHUB_TOKEN (or GH_TOKEN) to a token that can read this repository.")
    elif status == 403:
        fix = (f"The token may not do this on {repo}. It needs read access to issues and, to open pull requests, "
               "`contents: write` and `pull-requests: write` (classic tokens: the `repo` scope). In GitHub Actions "
               "grant them under `permissions:`, and allow Actions to create pull requests in the repository "
               "settings (Actions > General > Workflow permissions).")
    elif status == 404:
        fix = (f"{repo} (or the issue) does not exist, or the token cannot see it: check --repo / --from-issue, "
               f"the token's access to private repositories, and --github-api-url (now {api_url}).")
    elif status == 422:
        fix = ("GitHub refused the request as invalid: check that --base names a branch of the repository and "
               "that the branch has commits the base lacks.")
    elif status >= 500:
        fix = "GitHub is failing; rerun later (`m3code pr open SESSION_ID` retries just this step)."
    else:
        fix = "Check the token, --repo and --github-api-url."
    return f"{head} {fix}"
