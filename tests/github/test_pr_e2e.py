"""`m3code run --pr` end to end: a subprocess, the scripted model over HTTP, a real bare remote, the fake GitHub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.helpers import call, events, m3code, session_dirs
from tests.github.conftest import GitHubServer
from tests.github.helpers import (
    MODEL_KEY,
    READ_TOKEN,
    WRITE_TOKEN,
    assert_no_secret,
    bare_remote,
    connect,
    git,
    protect,
)

ANSWER = "Fixed slugify: it now lower-cases the title. The tests pass."
FIX_SCRIPT = {"turns": [
    {"content": "Reading the code.", "tool_calls": [call("c1", "read", path="textkit/slug.py")]},
    # The agent's commands must not see the GitHub token; the model key they can see is masked in the log.
    {"tool_calls": [call("c2", "bash", command="(env | grep -E '^(GH_TOKEN|GITHUB_TOKEN)=' || echo no-github-token)"
                                               "; echo key=$M3CODE_API_KEY")]},
    {"tool_calls": [call("c3", "edit", path="textkit/slug.py", old_string='re.findall(r"[a-z0-9]+", title)',
                         new_string='re.findall(r"[a-z0-9]+", title.lower())')]},
    {"tool_calls": [call("c4", "bash", command="python3 -m unittest -q")]},
    {"content": ANSWER},
]}


def _setup(demo_repo: Path, github: GitHubServer, tmp_path: Path) -> Path:
    bare = bare_remote(tmp_path / "remotes")
    connect(demo_repo, bare)
    github.app.add_repo("octo", "widgets", git_dir=bare)
    return bare


def _run(demo_repo: Path, github: GitHubServer, server: Any, *extra: str, token: str = WRITE_TOKEN,
         env: dict[str, str] | None = None) -> Any:
    return m3code("run", "TASK.md", "--solo", "--sandbox", "local", "--base-url", server.openai_base_url,
                  "--repo", "octo/widgets", "--github-api-url", github.url, "--pr", *extra, cwd=demo_repo,
                  env={"GITHUB_TOKEN": token, "M3CODE_API_KEY": MODEL_KEY, "CI": "true", **(env or {})})


def test_run_pr_pushes_the_work_and_opens_a_pull_request(demo_repo: Path, scripted_server, github: GitHubServer,
                                                         tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    start = git(demo_repo, "rev-parse", "HEAD")
    outputs = tmp_path / "github_output"
    server = scripted_server(FIX_SCRIPT, api_key=MODEL_KEY)
    result = _run(demo_repo, github, server, env={"GITHUB_OUTPUT": str(outputs)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ANSWER
    assert "CI mode" in result.stderr and "sandbox local" in result.stderr

    [session] = session_dirs(demo_repo)
    branch = f"m3code/fix-slugify-{session.name.rsplit('-', 1)[1]}"
    assert "Pull request #" in result.stderr and "https://github.com/octo/widgets/pull/" in result.stderr
    # The pushed branch: one commit on top of where the job started, holding only the job's change.
    assert git(bare, "rev-parse", f"{branch}~1") == start
    assert git(bare, "show", "--name-only", "--format=", branch) == "textkit/slug.py"
    subject, _, body = git(bare, "log", "-1", "--format=%B", branch).partition("\n\n")
    assert subject == "Fix slugify" and ANSWER in body and session.name in body
    assert git(demo_repo, "branch", "--show-current") == branch
    assert git(demo_repo, "status", "--porcelain", "--untracked-files=no") == ""

    [create] = github.app.api_requests("POST", "/pulls")
    pr = create["json"]
    assert pr["title"] == "Fix slugify" and pr["head"] == branch and pr["base"] == "main" and pr["draft"] is False
    for part in ("## Summary", ANSWER, "## What changed", "textkit/slug.py | 2 +-", "## Tests run",
                 "`python3 -m unittest -q` | ✓ exit 0", "## Cost", "5 model turns", session.name, "Made by m3code"):
        assert part in pr["body"], part
    assert all(r["headers"]["authorization"] == f"Bearer {WRITE_TOKEN}" for r in github.app.api_requests())
    assert github.app.repos["octo/widgets"].pulls[0]["head"]["sha"] == git(bare, "rev-parse", branch)

    log = events(session)
    kinds = [e["type"] for e in log]
    assert kinds.index("session_ended") < kinds.index("pull_request")
    starts = [e for e in log if e["type"] == "checkpoint" and e["kind"] == "start"]
    commits = [e for e in log if e["type"] == "checkpoint" and e["kind"] == "commit"]
    assert starts[0]["commit"] == start and commits[0]["branch"] == branch
    [opened] = [e for e in log if e["type"] == "pull_request"]
    assert opened["action"] == "created" and opened["url"].endswith(f"/pull/{opened['number']}")
    env_result = next(e for e in log if e["type"] == "tool_result" and e["call_id"] == "c2")
    assert "no-github-token" in env_result["output"] and "key=***" in env_result["output"]
    assert f"pr-url={opened['url']}" in outputs.read_text() and f"branch={branch}" in outputs.read_text()

    # No secret anywhere: output, log, the PR, the commits, the repository's config.
    everything = "\n".join([result.stdout, result.stderr, (session / "events.jsonl").read_text(),
                            json.dumps([r["json"] for r in github.app.api_requests()]),
                            git(bare, "log", "-p", branch), (demo_repo / ".git" / "config").read_text()])
    assert_no_secret(everything, WRITE_TOKEN, MODEL_KEY)

    # Opening it again updates the same pull request instead of failing.
    again = m3code("pr", "open", session.name, "--repo", "octo/widgets", "--github-api-url", github.url,
                   cwd=demo_repo, env={"GH_TOKEN": WRITE_TOKEN})
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stderr and len(github.app.repos["octo/widgets"].pulls) == 1
    assert len(github.app.api_requests("PATCH", f"/pulls/{opened['number']}")) == 1
    assert [e["type"] for e in events(session)].count("pull_request") == 2


def test_a_rejected_push_keeps_the_commits_and_pr_open_finishes_later(demo_repo: Path, scripted_server,
                                                                       github: GitHubServer, tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    hook = protect(bare)
    server = scripted_server(FIX_SCRIPT, api_key=MODEL_KEY)
    result = _run(demo_repo, github, server, "--draft")
    assert result.returncode == 4, result.stderr
    [session] = session_dirs(demo_repo)
    branch = f"m3code/fix-slugify-{session.name.rsplit('-', 1)[1]}"
    assert "branch protection" in result.stderr and f"m3code pr open {session.name}" in result.stderr
    assert result.stdout.strip() == ANSWER  # the job itself was done
    assert git(demo_repo, "log", "-1", "--format=%s", branch) == "Fix slugify"  # the work is on the local branch
    assert github.app.api_requests("POST") == []
    log = events(session)
    assert log[-1]["type"] == "error" and "GH006" in log[-1]["message"]
    assert next(e for e in log if e["type"] == "session_ended")["status"] == "done"

    hook.unlink()
    later = m3code("pr", "open", "--repo", "octo/widgets", "--github-api-url", github.url, "--draft",
                   cwd=demo_repo, env={"GITHUB_TOKEN": WRITE_TOKEN})
    assert later.returncode == 0, later.stderr
    [create] = github.app.api_requests("POST", "/pulls")
    assert create["json"]["head"] == branch and create["json"]["draft"] is True
    assert git(bare, "rev-parse", branch) == git(demo_repo, "rev-parse", branch)
    assert [e["kind"] for e in events(session) if e["type"] == "checkpoint"] == ["start", "commit"]  # no 2nd commit


def test_no_changes_means_no_pull_request(demo_repo: Path, scripted_server, github: GitHubServer,
                                          tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    server = scripted_server({"turns": [
        {"tool_calls": [call("n1", "bash", command="python3 -m unittest -q 2>&1 | tail -1")]},
        {"content": "Nothing needs changing."}]}, api_key=MODEL_KEY)
    result = _run(demo_repo, github, server)
    assert result.returncode == 0, result.stderr
    assert "changed nothing" in result.stderr and "no pull request" in result.stderr
    assert github.app.api_requests("POST") == [] and git(bare, "branch", "--list", "m3code/*") == ""
    assert git(demo_repo, "branch", "--list", "m3code/*") == ""


def test_bad_setups_are_refused_before_the_job_starts(demo_repo: Path, scripted_server, github: GitHubServer,
                                                      tmp_path: Path) -> None:
    _setup(demo_repo, github, tmp_path)
    server = scripted_server(FIX_SCRIPT, api_key=MODEL_KEY)

    no_token = _run(demo_repo, github, server, token="")
    assert no_token.returncode == 2 and "GITHUB_TOKEN" in no_token.stderr

    bad_token = _run(demo_repo, github, server, token="ghp_" + "1" * 36)
    assert bad_token.returncode == 2 and "401" in bad_token.stderr and "Bad credentials" in bad_token.stderr
    assert_no_secret(bad_token.stderr, "ghp_" + "1" * 36)

    read_only = _run(demo_repo, github, server, token=READ_TOKEN)
    assert read_only.returncode == 2 and "not push" in read_only.stderr

    wrong_repo = _run(demo_repo, github, server, "--repo", "octo/nope")
    assert wrong_repo.returncode == 2 and "404" in wrong_repo.stderr

    bare_config = tmp_path / "no-config"  # no user config naming a sandbox: CI must be told which
    no_sandbox = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, "--pr", cwd=demo_repo,
                        env={"GITHUB_TOKEN": WRITE_TOKEN, "CI": "true", "XDG_CONFIG_HOME": str(bare_config)})
    assert no_sandbox.returncode == 2 and "--sandbox docker" in no_sandbox.stderr

    stray = m3code("run", "TASK.md", "--base-url", server.openai_base_url, "--draft", cwd=demo_repo)
    assert stray.returncode == 2 and "go with --pr" in stray.stderr

    (demo_repo / "textkit" / "slug.py").write_text("# my own unfinished edit\n")
    dirty = _run(demo_repo, github, server)
    assert dirty.returncode == 2 and "clean working tree" in dirty.stderr and "textkit/slug.py" in dirty.stderr
    assert session_dirs(demo_repo) == [] and server.requests == []  # nothing started


def test_a_task_from_an_issue_becomes_a_pull_request_that_closes_it(demo_repo: Path, scripted_server,
                                                                     github: GitHubServer, tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    number = github.app.add_issue(github.app.repos["octo/widgets"], "Fix slugify",
                                  "`slugify('Hello, World!')` should be `hello-world`.",
                                  [("maintainer", "/m3code fix it, and keep the tests green")])
    server = scripted_server(FIX_SCRIPT, api_key=MODEL_KEY)
    result = m3code("run", "--from-issue", f"octo/widgets#{number}", "--solo", "--sandbox", "local",
                    "--base-url", server.openai_base_url, "--repo", "octo/widgets",
                    "--github-api-url", f"{github.url}/api/v3/", "--pr", cwd=demo_repo,  # as on GitHub Enterprise
                    env={"GITHUB_TOKEN": WRITE_TOKEN, "M3CODE_API_KEY": MODEL_KEY, "CI": "true"})
    assert result.returncode == 0, result.stderr
    task = server.requests[0]["body"]["messages"][1]["content"]
    assert task.startswith("# Fix slugify") and "hello-world" in task and "keep the tests green" in task
    [create] = github.app.api_requests("POST", "/pulls")
    assert create["json"]["title"] == "Fix slugify" and f"Closes #{number}" in create["json"]["body"]
    assert git(bare, "branch", "--list", "m3code/fix-slugify-*")
    assert all(r["raw_path"].startswith("/api/v3/repos/") for r in github.app.api_requests())


def test_a_team_job_becomes_a_pull_request_from_its_job_branch(demo_repo: Path, scripted_server,
                                                                github: GitHubServer, tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    start, person_branch = git(demo_repo, "rev-parse", "HEAD"), git(demo_repo, "branch", "--show-current")
    (demo_repo / "scratch.txt").write_text("the person's own, uncommitted\n")  # a team works in worktrees
    step = {"id": "fix", "title": "Lower-case the title", "goal": "Make slugify lower-case.",
            "acceptance": ["python3 -m unittest -q passes"], "depends_on": []}
    sed = "sed -i 's/title)/title.lower())/' textkit/slug.py && python3 -m unittest -q"
    server = scripted_server({"agents": {
        "planner": [{"tool_calls": [call("p1", "submit_plan", steps=[step])]}, {"content": "Planned."}],
        "producer/fix": [{"tool_calls": [call("f1", "bash", command=sed)]}, {"content": "Done."}],
        "verifier/fix": [{"tool_calls": [call("v1", "bash", command="python3 -m unittest -q")]},
                         {"tool_calls": [call("v2", "verdict", verdict="PASS", findings="tests pass")]},
                         {"content": "PASS"}],
        "verifier/final": [{"tool_calls": [call("v3", "verdict", verdict="PASS", findings="all good")]},
                           {"content": "PASS"}],
    }}, api_key=MODEL_KEY)
    result = m3code("run", "TASK.md", "--team", "--sandbox", "local", "--base-url", server.openai_base_url,
                    "--repo", "octo/widgets", "--github-api-url", github.url, "--pr", cwd=demo_repo,
                    env={"GITHUB_TOKEN": WRITE_TOKEN, "M3CODE_API_KEY": MODEL_KEY, "CI": "true"})
    assert result.returncode == 0, result.stderr
    [session] = session_dirs(demo_repo)
    branch = f"m3code/fix-slugify-{session.name.rsplit('-', 1)[1]}"
    job = f"m3code/job-{session.name}"
    assert git(bare, "rev-parse", branch) == git(demo_repo, "rev-parse", job)
    assert git(bare, "log", "--format=%s", f"{start}..{branch}") == "Lower-case the title"
    assert git(bare, "show", "--name-only", "--format=", branch) == "textkit/slug.py"
    # The person's checkout is as it was: same branch, same commit, their file untouched and not committed.
    assert git(demo_repo, "branch", "--show-current") == person_branch
    assert git(demo_repo, "rev-parse", "HEAD") == start
    assert (demo_repo / "scratch.txt").exists()
    [create] = github.app.api_requests("POST", "/pulls")
    body = create["json"]["body"]
    assert "1 of 1 steps accepted" in body and "Final verification: **PASS**" in body
    assert "| `python3 -m unittest -q` | ✓ exit 0 | verifier/fix |" in body
    assert_no_secret(body + (session / "events.jsonl").read_text() + result.stderr, WRITE_TOKEN, MODEL_KEY)


def test_a_job_stopped_by_its_budget_opens_its_pull_request_when_resumed(demo_repo: Path, scripted_server,
                                                                         github: GitHubServer,
                                                                         tmp_path: Path) -> None:
    bare = _setup(demo_repo, github, tmp_path)
    server = scripted_server(FIX_SCRIPT, api_key=MODEL_KEY)
    stopped = _run(demo_repo, github, server, "--max-turns", "3")
    assert stopped.returncode == 3, stopped.stderr
    assert "No pull request" in stopped.stderr and "budget" in stopped.stderr
    [session] = session_dirs(demo_repo)
    assert github.app.api_requests("POST") == [] and git(bare, "branch", "--list", "m3code/*") == ""

    # The tree now holds the job's half-done edit: the start checkpoint tells m3code it is the job's.
    resumed = m3code("run", "--resume", session.name, "--sandbox", "local", "--base-url", server.openai_base_url,
                     "--repo", "octo/widgets", "--github-api-url", github.url, "--pr", cwd=demo_repo,
                     env={"GITHUB_TOKEN": WRITE_TOKEN, "M3CODE_API_KEY": MODEL_KEY, "CI": "true"})
    assert resumed.returncode == 0, resumed.stderr
    [create] = github.app.api_requests("POST", "/pulls")
    assert create["json"]["head"].startswith("m3code/fix-slugify-")
    assert [e["kind"] for e in events(session) if e["type"] == "checkpoint"] == ["start", "commit"]

    finished = m3code("run", "--resume", session.name, "--sandbox", "local", "--pr", cwd=demo_repo,
                      env={"GITHUB_TOKEN": WRITE_TOKEN, "CI": "true"})
    assert finished.returncode == 2 and f"m3code pr open {session.name}" in finished.stderr
