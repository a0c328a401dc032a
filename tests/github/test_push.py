"""Pushing with a token over real git: to a bare repo on disk, and over HTTP to the fake's git endpoint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from m3code.github.errors import PushError
from m3code.github.masking import Masker
from m3code.github.push import auth_env, push_branch, push_target
from tests.github.conftest import GitHubServer
from tests.github.helpers import READ_TOKEN, WRITE_TOKEN, assert_no_secret, bare_remote, connect, protect
from tests.github.helpers import git as run_git

BRANCH = "m3code/add-notes-abc123"


def _work(tmp_path: Path, bare: Path, url: str | None = None) -> git.Repo:
    path = tmp_path / "work"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n")
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", "start")
    connect(path, bare, url)
    run_git(path, "switch", "-q", "-c", BRANCH)
    (path / "notes.txt").write_text("notes\n")
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", "Add notes")
    return git.Repo(path)


def _push(repo: git.Repo, token: str | None) -> None:
    push_branch(repo, BRANCH, push_target(repo, "origin", token), token, Masker([token]), retry="m3code pr open s1")


def test_push_over_https_sends_the_token_only_in_a_header(tmp_path: Path, github: GitHubServer) -> None:
    bare = bare_remote(tmp_path / "remotes")
    github.app.add_repo("octo", "widgets", git_dir=bare)
    repo = _work(tmp_path, bare, f"{github.url}/octo/widgets.git")
    _push(repo, WRITE_TOKEN)
    assert run_git(bare, "log", "--format=%s", BRANCH) == "Add notes\nstart"
    pushes = [r for r in github.app.requests if r["git"] and "receive-pack" in r["path"] + str(r["query"])]
    assert pushes and all(r["headers"]["authorization"].lower().startswith("basic ") for r in pushes)
    # Nothing of the token stays behind: not in the repo's config, not in its remote URL.
    assert_no_secret((Path(repo.git_dir) / "config").read_text(), WRITE_TOKEN)
    assert repo.active_branch.tracking_branch() is not None  # pushed by remote name: tracking is set up


def test_a_token_without_push_rights_is_named_and_masked(tmp_path: Path, github: GitHubServer) -> None:
    bare = bare_remote(tmp_path / "remotes")
    github.app.add_repo("octo", "widgets", git_dir=bare)
    repo = _work(tmp_path, bare, f"{github.url}/octo/widgets.git")
    with pytest.raises(PushError) as caught:
        _push(repo, READ_TOKEN)
    message = str(caught.value)
    assert "may not push" in message and "contents: write" in message and "403" in message
    assert f"safe on the local branch {BRANCH}" in message and "m3code pr open s1" in message
    assert_no_secret(message, READ_TOKEN)
    assert repo.heads[BRANCH].commit.message.strip() == "Add notes"  # the work is still here
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", BRANCH], cwd=bare).returncode != 0

    with pytest.raises(PushError, match="did not accept the credentials"):
        _push(repo, "ghp_" + "9" * 36)
    with pytest.raises(PushError, match="did not accept the credentials"):
        _push(repo, None)  # nothing waits for a password: git fails at once


def test_non_fast_forward_and_protected_branches_are_explained(tmp_path: Path) -> None:
    bare = bare_remote(tmp_path / "remotes")
    repo = _work(tmp_path, bare)
    # Someone else pushed a different commit to the same branch name.
    other = tmp_path / "other"
    run_git(tmp_path, "clone", "-q", str(bare), str(other))
    run_git(other, "switch", "-q", "-c", BRANCH)
    (other / "theirs.txt").write_text("theirs\n")
    run_git(other, "add", "-A")
    run_git(other, "commit", "-q", "-m", "Theirs")
    run_git(other, "push", "-q", "origin", BRANCH)
    with pytest.raises(PushError, match="non-fast-forward") as caught:
        _push(repo, WRITE_TOKEN)
    assert "--force-with-lease" in str(caught.value)

    run_git(other, "push", "-q", "origin", f":{BRANCH}")
    protect(bare)
    with pytest.raises(PushError, match="branch protection") as caught:
        _push(repo, WRITE_TOKEN)
    assert "GH006" in str(caught.value)  # git's own words are quoted


def test_ssh_remotes_are_pushed_over_https_with_the_token(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "r")
    repo.create_remote("origin", "git@ghe.example.com:team/tool.git")
    target = push_target(repo, "origin", WRITE_TOKEN)
    assert target.url == "https://ghe.example.com/team/tool.git" and not target.by_name
    assert push_target(repo, "origin", None).url == "git@ghe.example.com:team/tool.git"
    env = auth_env(target.url, WRITE_TOKEN)
    keys = [env[f"GIT_CONFIG_KEY_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert keys == ["http.https://ghe.example.com/.extraheader"] * 2 and env["GIT_CONFIG_VALUE_0"] == ""
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    with pytest.raises(Exception, match="no git remote 'upstream'"):
        push_target(repo, "upstream", WRITE_TOKEN)
