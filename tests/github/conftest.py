"""The fake GitHub server, started per test on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.github.asgi_thread import ThreadedServer
from tests.github.fake_github import FakeGitHub
from tests.github.helpers import READ_TOKEN, WRITE_TOKEN


class GitHubServer:
    def __init__(self) -> None:
        self.app = FakeGitHub({WRITE_TOKEN: "write", READ_TOKEN: "read"})
        self.server = ThreadedServer(self.app).start()
        self.url = self.server.url
        self.app.base_url = self.url


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    # Tests decide about CI mode and tokens themselves, whatever the machine running them has set.
    for var in ("CI", "GITHUB_ACTIONS", "GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY",
                "GITHUB_OUTPUT", "GIT_CONFIG_COUNT"):
        monkeypatch.delenv(var, raising=False)
    server = GitHubServer()
    yield server
    server.server.stop()
