"""What can go wrong on the way to a pull request, each with the exit code it ends in."""

from __future__ import annotations

# `run --pr`: the job finished but its pull request could not be opened (its commits stay on the local branch).
EXIT_PUBLISH_FAILED = 4
EXIT_SETUP = 2


class GitHubFeatureError(Exception):
    """Says what happened and what to fix; `exit_code` is what the command ends with."""

    exit_code = EXIT_PUBLISH_FAILED


class SetupError(GitHubFeatureError):
    """Found before any work is done: a missing token, a dirty tree, an unknown repository."""

    exit_code = EXIT_SETUP


class GitHubApiError(GitHubFeatureError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PushError(GitHubFeatureError):
    pass
