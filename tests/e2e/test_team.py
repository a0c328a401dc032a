"""The Agent Team end to end: `m3code run` as a subprocess, one scripted lane per agent over real HTTP."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.helpers import call, events, m3code, popen_m3code, session_dirs, wait_for


def step(sid: str, title: str, deps: list[str] | None = None) -> dict[str, Any]:
    return {"id": sid, "title": title, "goal": f"Do {title}.", "acceptance": [f"{sid}.txt exists"],
            "depends_on": deps or []}


def planner(*plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for n, steps in enumerate(plans):
        turns += [{"tool_calls": [call(f"plan{n}", "submit_plan", steps=steps)]}, {"content": "Plan submitted."}]
    return turns


def producer(*commands: str) -> list[dict[str, Any]]:
    """One attempt per command: run it, then report."""
    turns: list[dict[str, Any]] = []
    for n, command in enumerate(commands):
        turns += [{"tool_calls": [call(f"p{n}", "bash", command=command)]}, {"content": f"Ran: {command}"}]
    return turns


def verifier(*verdicts: str) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for n, verdict in enumerate(verdicts):
        kind, _, findings = verdict.partition(":")
        turns += [{"tool_calls": [call(f"v{n}", "verdict", verdict=kind, findings=findings or "checked")]},
                  {"content": kind}]
    return turns


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def job_branch(repo: Path) -> str:
    [branch] = [b.strip(" *") for b in git(repo, "branch", "--list", "m3code/job-*").splitlines()]
    return branch


def by_agent(server: Any, agent: str) -> list[dict[str, Any]]:
    return [r for r in server.requests if r.get("agent") == agent]


def test_independent_steps_overlap_and_land_as_commits(demo_repo: Path, scripted_server) -> None:
    head_before = git(demo_repo, "rev-parse", "HEAD")
    server = scripted_server({"agents": {
        "planner": planner([step("a", "file a"), step("b", "file b")]),
        "producer/a": producer("sleep 1 && echo A > a.txt"),
        "producer/b": producer("sleep 1 && echo B > b.txt"),
        "verifier/a": verifier("PASS"), "verifier/b": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, "--parallel", "2", cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert "2 of 2 steps accepted" in result.stdout and "Final verification: **PASS**" in result.stdout

    [session] = session_dirs(demo_repo)
    log = events(session)
    spans = {}
    for agent in ("producer/a", "producer/b"):
        mine = [e for e in log if e.get("agent") == agent and e["type"] in ("tool_call", "tool_result")]
        spans[agent] = (mine[0]["ts"], mine[-1]["ts"])
    (a0, a1), (b0, b1) = spans["producer/a"], spans["producer/b"]
    assert a0 < b1 and b0 < a1, spans  # the two sleeps ran at the same time

    branch = job_branch(demo_repo)
    subjects = git(demo_repo, "log", "--format=%s", f"{head_before.strip()}..{branch}").split("\n")
    assert sorted(s for s in subjects if s) == ["file a", "file b"]
    assert git(demo_repo, "show", f"{branch}:a.txt") == "A\n" and git(demo_repo, "show", f"{branch}:b.txt") == "B\n"
    assert git(demo_repo, "rev-parse", "HEAD") == head_before  # the person's branch is untouched
    assert not (demo_repo / "a.txt").exists()
    assert not (demo_repo / ".m3code" / "worktrees" / session.name).exists()  # worktrees cleaned up
    kinds = [e["type"] for e in log]
    assert "plan" in kinds and "report" in kinds and kinds.count("verdict") == 3
    for line in result.stderr.splitlines():  # one agent label per line, at its start
        assert line.count("[producer/") + line.count("[verifier/") <= 1, line
        assert "[" not in line or not line.lstrip().startswith(("✓ step", "· step", "verdict")), line
    shown = m3code("sessions", "show", session.name, cwd=demo_repo).stdout
    assert "plan v1: a file a; b file b" in shown and "verdict on a: PASS" in shown
    assert "[producer/a] → bash sleep 1" in shown


def test_fail_findings_go_back_to_the_producer_verbatim(demo_repo: Path, scripted_server) -> None:
    finding = "FAIL:s.txt holds 1 but the goal says 2 (ran: cat s.txt)"
    server = scripted_server({"agents": {
        "planner": planner([step("s", "value")]),
        "producer/s": producer("echo 1 > s.txt", "echo 2 > s.txt"),
        "verifier/s": verifier(finding, "PASS"),
        "verifier/final": verifier("PASS"),
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    retry = [r for r in by_agent(server, "producer/s") if "attempt 2 of 5" in str(r["body"]["messages"])]
    assert retry and "s.txt holds 1 but the goal says 2 (ran: cat s.txt)" in str(retry[0]["body"]["messages"])
    assert git(demo_repo, "show", f"{job_branch(demo_repo)}:s.txt") == "2\n"
    verdicts = [e["verdict"] for e in events(session_dirs(demo_repo)[0]) if e["type"] == "verdict"]
    assert verdicts == ["FAIL", "PASS", "PASS"]


def test_loop_breaker_fires_and_the_planner_replans(demo_repo: Path, scripted_server) -> None:
    stuck = [{"content": "I cannot do this."}] * 3
    server = scripted_server({"agents": {
        "planner": planner([step("s1", "impossible")], [step("s2", "possible")]),
        "producer/s1": stuck,
        "verifier/s1": verifier("FAIL:nothing changed", "FAIL:nothing changed"),
        "producer/s2": producer("echo ok > s2.txt"),
        "verifier/s2": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    log = events(session_dirs(demo_repo)[0])
    failed = [e for e in log if e["type"] == "step" and e["state"] == "failed"]
    assert [e["step_id"] for e in failed] == ["s1"] and "same reply three times" in failed[0]["detail"]
    plans = [e for e in log if e["type"] == "plan"]
    assert [p["version"] for p in plans] == [1, 2] and "step s1 failed" in plans[1]["reason"]


def test_steering_reaches_the_next_producer(demo_repo: Path, scripted_server, tmp_path: Path) -> None:
    hold = tmp_path / "release"
    first = producer("echo one > s1.txt")
    first[0]["hold_file"] = str(hold)
    steps = [step("s1", "first"), step("s2", "second", ["s1"])]
    server = scripted_server({"agents": {
        "planner": planner(steps, steps),
        "producer/s1": first, "producer/s2": producer("echo two > s2.txt"),
        "verifier/s1": verifier("PASS"), "verifier/s2": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    proc = popen_m3code("run", "TASK.md", "--base-url", server.openai_base_url, cwd=demo_repo)
    wait_for(proc, lambda: bool(by_agent(server, "producer/s1")))
    [session] = session_dirs(demo_repo)
    sent = m3code("steer", session.name, "Write every number in words.", cwd=demo_repo)
    assert sent.returncode == 0, sent.stderr
    hold.touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    s2_first = by_agent(server, "producer/s2")[0]["body"]["messages"]
    assert "Write every number in words." in str(s2_first)
    assert "Write every number in words." not in str(by_agent(server, "producer/s1")[0]["body"]["messages"])
    steering = [e for e in events(session) if e["type"] == "steering"]
    assert [e["text"] for e in steering] == ["Write every number in words."]


def test_sigkill_and_resume_redo_no_accepted_step(demo_repo: Path, scripted_server, tmp_path: Path) -> None:
    ledger, started = tmp_path / "ledger.txt", tmp_path / "started"
    steps = [step("s1", "first"), step("s2", "second", ["s1"])]
    server = scripted_server({"agents": {
        "planner": planner(steps),
        "producer/s1": producer(f"echo s1 >> {ledger} && echo 1 > s1.txt"),
        # The first attempt is killed inside its command, so it never gets to its report turn.
        "producer/s2": [*producer(f"touch {started} && sleep 60")[:1],
                        *producer(f"echo s2 >> {ledger} && echo 2 > s2.txt")],
        "verifier/s1": verifier("PASS"), "verifier/s2": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    proc = popen_m3code("run", "TASK.md", "--base-url", server.openai_base_url, cwd=demo_repo)
    wait_for(proc, lambda: started.exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(["pkill", "-f", "sleep 60"], check=False)

    [session] = session_dirs(demo_repo)
    resumed = m3code("run", "--resume", session.name, "--base-url", server.openai_base_url, cwd=demo_repo)
    assert resumed.returncode == 0, resumed.stderr
    assert ledger.read_text().split() == ["s1", "s2"], resumed.stderr
    log = events(session)
    runs = [(e["step_id"], e["attempt"]) for e in log if e["type"] == "step" and e["state"] == "running"]
    assert runs == [("s1", 1), ("s2", 1), ("s2", 2)]
    branch = job_branch(demo_repo)
    assert git(demo_repo, "log", "--format=%s", f"HEAD..{branch}").split("\n")[:2] == ["second", "first"]
    assert len(by_agent(server, "planner")) == 2  # no re-planning on resume
    # The job's cost covers both runs: every agent's turns, before and after the kill.
    spent = sum(e["usage"]["input_tokens"] for e in log if e["type"] == "assistant_message")
    assert log[-1]["type"] == "session_ended" and log[-1]["usage"]["input_tokens"] == spent


def test_merge_conflict_goes_back_to_the_producer(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"agents": {
        "planner": planner([step("a", "slow edit"), step("b", "fast edit")]),
        "producer/a": producer("sleep 1.5 && echo A > AGENTS.md", "echo AB > AGENTS.md"),
        "producer/b": producer("echo B > AGENTS.md"),
        "verifier/a": verifier("PASS", "PASS"), "verifier/b": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    retry = [r for r in by_agent(server, "producer/a") if "attempt 2 of 5" in str(r["body"]["messages"])]
    assert retry and "conflicts with work accepted meanwhile, in: AGENTS.md" in str(retry[0]["body"]["messages"])
    assert git(demo_repo, "show", f"{job_branch(demo_repo)}:AGENTS.md") == "AB\n"


def test_a_producer_can_report_the_plan_wrong(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"agents": {
        "planner": planner([step("s1", "rename a missing module")], [step("s2", "what is really needed")]),
        "producer/s1": [{"tool_calls": [call("x", "report_plan_problem", reason="there is no module to rename")]},
                        {"content": "Reported."}],
        "producer/s2": producer("echo ok > s2.txt"),
        "verifier/s2": verifier("PASS"), "verifier/final": verifier("PASS"),
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, "--max-tokens", "1000000", cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    plans = [e for e in events(session_dirs(demo_repo)[0]) if e["type"] == "plan"]
    assert "there is no module to rename" in plans[1]["reason"]
    assert "there is no module to rename" in str(by_agent(server, "planner")[-2]["body"]["messages"])
    assert not by_agent(server, "verifier/s1")  # nothing to verify: the step was withdrawn


def test_token_budget_stops_a_team_job_with_exit_3(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"agents": {
        "planner": [{"tool_calls": [call("p", "submit_plan", steps=[step("s", "x")])],
                     "usage": {"input_tokens": 5000, "output_tokens": 10}}, {"content": "ok"}],
    }})
    result = m3code("run", "TASK.md", "--base-url", server.openai_base_url, "--max-tokens", "3000", cwd=demo_repo)
    assert result.returncode == 3, result.stderr
    assert "--max-tokens" in result.stderr
