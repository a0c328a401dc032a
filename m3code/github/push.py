"""Pushing the job's branch: the token goes to git in its environment, never on a command line or in a URL."""

from __future__ import annotations

import os
from dataclasses import dataclass

import git

from m3code.github.errors import PushError, SetupError
from m3code.github.masking import Masker, basic_auth_value
from m3code.github.refs import Remote, parse_remote_url

PUSH_TIMEOUT_S = 300
# Nothing may wait for a person: no terminal prompts, no askpass helpers, no credential manager dialogs.
NONINTERACTIVE_GIT = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GCM_INTERACTIVE": "never",
                      "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


@dataclass
class PushTarget:
    remote_name: str
    url: str  # where the push goes
    hosted: Remote | None  # host and OWNER/NAME, when the URL is a hosted repository
    by_name: bool  # push to the remote by name (its tracking refs update), else to `url`


def push_target(repo: git.Repo, remote_name: str, token: str | None) -> PushTarget:
    if remote_name not in [r.name for r in repo.remotes]:
        known = ", ".join(r.name for r in repo.remotes) or "none"
        raise SetupError(f"The repository has no git remote {remote_name!r} (remotes: {known}); add one "
                         "(`git remote add origin https://github.com/OWNER/NAME.git`) or pass --remote NAME.")
    url = str(repo.git.remote("get-url", "--push", remote_name)).strip()
    hosted = parse_remote_url(url)
    if hosted is not None and hosted.scheme == "ssh" and token:
        # The token works over HTTPS only: push to the same repository there.
        return PushTarget(remote_name, f"https://{hosted.host}/{hosted.repo.full}.git", hosted, by_name=False)
    return PushTarget(remote_name, url, hosted, by_name=True)


def auth_env(url: str, token: str | None) -> dict[str, str]:
    """git config through GIT_CONFIG_* variables: an Authorization header for this URL's host only.

    The URL-specific key is as specific as the one actions/checkout persists, so it is not outranked; the empty
    value first clears any header configured before ours.
    """
    env = dict(NONINTERACTIVE_GIT)
    remote = parse_remote_url(url)
    if not token or remote is None or remote.scheme not in ("http", "https"):
        return env
    key = f"http.{remote.scheme}://{remote.host}/.extraheader"
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    pairs = [(key, ""), (key, f"AUTHORIZATION: basic {basic_auth_value(token)}")]
    for i, (k, v) in enumerate(pairs, start=count):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = k, v
    env["GIT_CONFIG_COUNT"] = str(count + len(pairs))
    return env


def push_branch(repo: git.Repo, branch: str, target: PushTarget, token: str | None, masker: Masker, *,
                retry: str = "m3code pr open") -> None:
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    args = ["--porcelain", *(["--set-upstream", target.remote_name] if target.by_name else [target.url]), refspec]
    try:
        repo.git.push(*args, env=auth_env(target.url, token), kill_after_timeout=PUSH_TIMEOUT_S)
    except git.GitCommandError as exc:
        said = masker.mask("\n".join(str(s) for s in (exc.stdout, exc.stderr) if s).strip())
        raise PushError(explain_push(said, branch, masker.mask(target.url), retry)) from exc


def explain_push(said: str, branch: str, url: str, retry: str) -> str:
    text = said.lower()
    if "non-fast-forward" in text or "fetch first" in text or "stale info" in text:
        what = (f"the remote already has a branch {branch} with commits this one lacks (non-fast-forward). Look at "
                f"it, then delete it on the remote or push over it yourself (`git push --force-with-lease`), and "
                "open the pull request again")
    elif "protected branch" in text or "gh006" in text or "gh013" in text:
        what = (f"branch protection or a ruleset on the remote refuses pushes to {branch}. Let the token push "
                "branches named m3code/* (adjust the rule), or push the branch with an account that may")
    elif "403" in text or "permission to" in text or "denied" in text:
        what = ("the token may not push to this repository. Give it `contents: write` (classic tokens: the `repo` "
                "scope); in GitHub Actions set `permissions: contents: write`")
    elif "401" in text or "authentication failed" in text or "could not read username" in text:
        what = ("the remote did not accept the credentials. Set GITHUB_TOKEN (or GH_TOKEN) to a valid token; for "
                "an SSH remote m3code pushes over HTTPS with that token")
    elif "not found" in text or "does not appear to be a git repository" in text:
        what = "the remote repository was not found. Check the remote URL and the token's access"
    elif "remote rejected" in text or "hook declined" in text:
        what = "a hook on the remote refused the push; its message is below"
    else:
        what = "git could not push; its message is below"
    detail = "\n".join(f"    {line}" for line in said.splitlines()[-12:])
    return (f"Pushing {branch} to {url} failed: {what}. The job's commits are safe on the local branch {branch}; "
            f"after fixing this, run `{retry}` to push and open the pull request.\n  git said:\n{detail}")
