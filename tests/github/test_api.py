"""The GitHub client against the fake server: shapes, auth, pagination, errors and rate limits."""

from __future__ import annotations

import time

import pytest

from m3code.github.api import GitHubClient
from m3code.github.errors import GitHubApiError
from m3code.github.issue import closes_ref, issue_task
from m3code.github.refs import RepoRef
from tests.github.conftest import GitHubServer
from tests.github.fake_github import Fault
from tests.github.helpers import READ_TOKEN, WRITE_TOKEN, assert_no_secret

REPO = RepoRef("octo", "widgets")


def test_an_issue_and_all_its_comment_pages_become_a_task(github: GitHubServer) -> None:
    repo = github.app.add_repo("octo", "widgets", private=True)
    number = github.app.add_issue(repo, "Slugs keep capitals", "`slugify('A')` gives `A`.",
                                  [("alice", "Seen on 1.2 too."), ("maintainer", "/m3code please fix"),
                                   ("bob", "Also for Ünïcode?"), ("carol", "+1"), ("dave", "Last one.")])
    with GitHubClient(github.url, WRITE_TOKEN, per_page=2) as client:
        task = issue_task(client, REPO, number)
    assert task.startswith("# Slugs keep capitals\n\n`slugify('A')` gives `A`.")
    for text in ("Seen on 1.2 too.", "### @maintainer (member)", "/m3code please fix", "Ünïcode", "Last one."):
        assert text in task
    assert task.index("alice") < task.index("bob") < task.index("dave")
    pages = github.app.api_requests("GET", "/comments")
    assert len(pages) == 3 and pages[0]["query"]["per_page"] == ["2"] and pages[2]["query"]["page"] == ["3"]
    for request in github.app.api_requests():
        assert request["headers"]["authorization"] == f"Bearer {WRITE_TOKEN}"
        assert request["headers"]["x-github-api-version"] == "2022-11-28"
        assert request["headers"]["accept"] == "application/vnd.github+json"
    assert closes_ref(task, REPO) == f"#{number}"
    assert closes_ref(task, RepoRef("other", "repo")) == f"octo/widgets#{number}"


def test_public_issues_read_without_a_token_private_ones_do_not(github: GitHubServer) -> None:
    public = github.app.add_repo("octo", "widgets")
    number = github.app.add_issue(public, "Public", None, [])
    with GitHubClient(github.url, None) as client:
        assert "(The issue has no description.)" in issue_task(client, REPO, number)
        assert "authorization" not in github.app.requests[-1]["headers"]
        public.private = True
        with pytest.raises(GitHubApiError, match="does not exist, or the token cannot see it") as caught:
            client.get_issue(REPO, number)
    assert caught.value.status == 404


def test_errors_say_what_happened_and_what_to_fix(github: GitHubServer) -> None:
    github.app.add_repo("octo", "widgets")
    with GitHubClient(github.url, "ghp_" + "0" * 36) as client, pytest.raises(GitHubApiError) as bad:
        client.get_repo(REPO)
    assert bad.value.status == 401 and "Bad credentials" in str(bad.value) and "GITHUB_TOKEN" in str(bad.value)
    assert_no_secret(str(bad.value), "ghp_" + "0" * 36)

    with GitHubClient(github.url, READ_TOKEN) as client, pytest.raises(GitHubApiError) as forbidden:
        client.create_pull(REPO, title="t", head="x", base="main", body="b", draft=False)
    assert forbidden.value.status == 403 and "pull-requests: write" in str(forbidden.value)

    with GitHubClient(github.url, WRITE_TOKEN) as client:
        with pytest.raises(GitHubApiError) as missing:
            client.get_repo(RepoRef("octo", "nope"))
        assert missing.value.status == 404 and "--repo" in str(missing.value)
        with pytest.raises(GitHubApiError) as invalid:
            client.create_pull(REPO, title="t", head="no-such-branch", base="main", body="b", draft=False)
        assert invalid.value.status == 422 and "field=head" in str(invalid.value) and "--base" in str(invalid.value)


def test_rate_limits_are_waited_out_until_the_reset(github: GitHubServer) -> None:
    github.app.add_repo("octo", "widgets")
    reset = str(int(time.time()))  # already reached: one second of margin is all the wait
    github.app.faults.append(Fault("GET", "/repos/octo/widgets", 403,
                                   {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "x"},
                                   {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}))
    github.app.faults.append(Fault("GET", "/repos/octo/widgets", 429, {"message": "slow down"},
                                   {"retry-after": "1"}))
    said: list[str] = []
    began = time.monotonic()
    with GitHubClient(github.url, WRITE_TOKEN, say=said.append) as client:
        assert client.get_repo(REPO)["default_branch"] == "main"
    assert time.monotonic() - began >= 1.5
    assert len(github.app.api_requests("GET")) == 3 and len(said) == 2 and "403" in said[0]


def test_a_rate_limit_too_far_away_fails_with_the_reset_time(github: GitHubServer) -> None:
    github.app.add_repo("octo", "widgets")
    github.app.faults.append(Fault("GET", "/repos/octo/widgets", 403, {"message": "API rate limit exceeded"},
                                   {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3600)}))
    began = time.monotonic()
    with GitHubClient(github.url, WRITE_TOKEN, max_wait=30) as client, pytest.raises(GitHubApiError) as caught:
        client.get_repo(REPO)
    assert time.monotonic() - began < 5
    assert "rate limit" in str(caught.value) and "UTC" in str(caught.value) and "Rerun" in str(caught.value)


def test_an_unreachable_api_is_reported_with_its_url() -> None:
    with GitHubClient("http://127.0.0.1:9", WRITE_TOKEN, sleep=lambda _s: None) as client, \
            pytest.raises(GitHubApiError, match=r"127\.0\.0\.1:9 cannot be reached.*--github-api-url"):
        client.get_repo(REPO)
