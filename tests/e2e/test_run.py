"""`m3code run` end to end: a subprocess, a real git repository, a scripted model over real HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.e2e.helpers import call, events, m3code, popen_m3code, session_dirs, wait_for

FIX_SCRIPT = {
    "turns": [
        {"content": "Reading the code.", "reasoning": "Look first.",
         "tool_calls": [call("c1", "read", path="textkit/slug.py"), call("c2", "read", path="tests/test_slug.py")]},
        {"tool_calls": [call("c3", "bash", command="python3 -m unittest -q 2>&1 | tail -3")]},
        {"tool_calls": [call("c4", "edit", path="textkit/slug.py",
                             old_string='re.findall(r"[a-z0-9]+", title)',
                             new_string='re.findall(r"[a-z0-9]+", title.lower())')]},
        {"tool_calls": [call("c5", "bash", command="python3 -m unittest -q")]},
        {"content": "Fixed slugify: it now lower-cases the title. The tests pass."},
    ]
}


def test_run_fixes_a_repository(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(FIX_SCRIPT)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Fixed slugify: it now lower-cases the title. The tests pass."
    assert "title.lower()" in (demo_repo / "textkit" / "slug.py").read_text()
    assert "→ bash" in result.stderr and "→ edit" in result.stderr  # progress goes to stderr
    tests = subprocess.run(["python3", "-m", "unittest", "-q"], cwd=demo_repo, capture_output=True)
    assert tests.returncode == 0

    [session] = session_dirs(demo_repo)
    log = events(session)
    kinds = [e["type"] for e in log]
    assert kinds[0] == "session_started" and kinds[1] == "user_message" and kinds[-1] == "session_ended"
    assert kinds.count("assistant_message") == 5 and kinds.count("tool_result") == 5
    results = {e["call_id"]: e for e in log if e["type"] == "tool_result"}
    assert "FAILED" in results["c3"]["output"] and not results["c4"]["is_error"]
    assert "OK" in results["c5"]["output"]
    assert log[-1]["status"] == "done" and log[-1]["exit_code"] == 0
    # The model saw the project's AGENTS.md, and each tool result went back to it.
    first = server.requests[0]["body"]["messages"][0]
    assert first["role"] == "system" and "python -m unittest -q" in first["content"]
    last = server.requests[-1]["body"]["messages"]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ["c1", "c2", "c3", "c4", "c5"]
    # Session logs never end up in the user's commits.
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=demo_repo,
                            capture_output=True, text=True)
    assert ".m3code" not in status.stdout

    listing = m3code("sessions", "list", cwd=demo_repo)
    assert session.name in listing.stdout and "done" in listing.stdout
    shown = m3code("sessions", "show", session.name[:15], cwd=demo_repo)
    assert "→ edit textkit/slug.py" in shown.stdout and "Fixed slugify" in shown.stdout


def test_sigkill_then_resume_runs_no_call_twice(demo_repo: Path, scripted_server) -> None:
    ledger = demo_repo / "ledger.txt"
    script = {"turns": [
        {"tool_calls": [call("k1", "bash", command="echo one >> ledger.txt")]},
        {"tool_calls": [call("k2", "bash", command="echo two >> ledger.txt && touch started && sleep 60")]},
        {"tool_calls": [call("k3", "bash", command="echo three >> ledger.txt")]},
        {"content": "All steps recorded."},
    ]}
    server = scripted_server(script)
    proc = popen_m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    wait_for(proc, lambda: (demo_repo / "started").exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(["pkill", "-f", "sleep 60"], check=False)

    [session] = session_dirs(demo_repo)
    assert events(session)[-1]["type"] == "tool_call"  # killed mid-call: no end event
    listing = m3code("sessions", "list", cwd=demo_repo)
    assert "stopped" in listing.stdout

    resumed = m3code("run", "--resume", session.name, "--base-url", server.openai_base_url, cwd=demo_repo)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "All steps recorded."
    assert ledger.read_text().split() == ["one", "two", "three"]
    log = events(session)
    results = [e for e in log if e["type"] == "tool_result"]
    assert [r["call_id"] for r in results] == ["k1", "k2", "k3"]
    assert results[1]["is_error"] and "interrupted" in results[1]["output"]
    # The model was told about the interrupted call in the request after the resume.
    after = server.requests[-2]["body"]["messages"]
    assert any(m["role"] == "tool" and m["tool_call_id"] == "k2" and "interrupted" in m["content"] for m in after)
    # Resuming a finished session prints its answer and does nothing else.
    again = m3code("run", "--resume", session.name, "--base-url", server.openai_base_url, cwd=demo_repo)
    assert again.returncode == 0 and again.stdout.strip() == "All steps recorded."
    assert ledger.read_text().split() == ["one", "two", "three"]


def test_ctrl_c_saves_the_session_and_exits_130(demo_repo: Path, scripted_server) -> None:
    script = {"turns": [
        {"tool_calls": [call("s1", "bash", command="touch started && sleep 60")]},
        {"content": "done"},
    ]}
    server = scripted_server(script)
    proc = popen_m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    wait_for(proc, lambda: (demo_repo / "started").exists())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "--resume" in err
    [session] = session_dirs(demo_repo)
    end = events(session)[-1]
    assert end["type"] == "session_ended" and end["status"] == "interrupted"


def test_jsonl_output_streams_events(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [{"content": "Nothing to change.", "reasoning": "Easy."}]})
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, "--output", "jsonl",
                    cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [line.get("type") or line.get("kind") for line in lines]
    assert kinds[0] == "session_started" and kinds[-1] == "session_ended"
    assert "text" in kinds  # live deltas of the streamed answer
    assert lines[-1]["final_answer"] == "Nothing to change."


def test_model_mistakes_become_tool_errors_and_the_loop_goes_on(demo_repo: Path, scripted_server) -> None:
    script = {"turns": [
        {"tool_calls": [{"id": "m1", "name": "read", "arguments": '{"path": "textkit/slug.py"'}]},
        {"tool_calls": [call("m2", "teleport", to="mars")]},
        {"tool_calls": [call("m3", "read", offset="first")]},
        {"tool_calls": [call("m4", "read", path="../../etc/passwd")]},
        {"content": "Recovered."},
    ]}
    server = scripted_server(script)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    [session] = session_dirs(demo_repo)
    results = {e["call_id"]: e for e in events(session) if e["type"] == "tool_result"}
    assert all(r["is_error"] for r in results.values())
    assert "not valid JSON" in results["m1"]["output"]
    assert "Unknown tool 'teleport'" in results["m2"]["output"] and "read" in results["m2"]["output"]
    assert "path" in results["m3"]["output"] and "offset" in results["m3"]["output"]
    assert "outside the workspace" in results["m4"]["output"]


def test_budget_exhausted_exits_3(demo_repo: Path, scripted_server) -> None:
    script = {"turns": [{"tool_calls": [call(f"b{i}", "glob", pattern="*.py")]} for i in range(5)]}
    server = scripted_server(script)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, "--max-turns", "2", cwd=demo_repo)
    assert result.returncode == 3, result.stderr
    assert "max-turns 2" in result.stderr and "--resume" in result.stderr
    [session] = session_dirs(demo_repo)
    assert events(session)[-1]["status"] == "budget"


def test_endpoint_down_fails_with_the_session_saved(demo_repo: Path) -> None:
    (demo_repo / ".m3code").mkdir(exist_ok=True)
    (demo_repo / ".m3code" / "config.toml").write_text("max_retries = 1\n")
    result = m3code("run", "TASK.md", "--solo", "--base-url", "http://127.0.0.1:9/v1", cwd=demo_repo)
    assert result.returncode == 1, result.stderr
    assert "127.0.0.1:9" in result.stderr
    [session] = session_dirs(demo_repo)
    log = events(session)
    assert log[-2]["type"] == "error" and log[-1]["status"] == "failed"


def test_bad_input_exits_2_with_the_reason(demo_repo: Path) -> None:
    no_key = m3code("run", "TASK.md", "--solo", cwd=demo_repo)
    assert no_key.returncode == 2
    assert "MINIMAX_API_KEY" in no_key.stderr and "--base-url" in no_key.stderr

    url = ["--base-url", "http://127.0.0.1:9/v1"]
    missing = m3code("run", "NOPE.md", *url, cwd=demo_repo)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (demo_repo / "empty.md").write_text("  \n")
    empty = m3code("run", "empty.md", *url, cwd=demo_repo)
    assert empty.returncode == 2 and "empty" in empty.stderr
    (demo_repo / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    binary = m3code("run", "latin1.md", *url, cwd=demo_repo)
    assert binary.returncode == 2 and "not UTF-8" in binary.stderr
    bad_flag = m3code("run", "TASK.md", "--solo", *url, "--thinking", "sometimes", cwd=demo_repo)
    assert bad_flag.returncode == 2 and "thinking" in bad_flag.stderr
    neither = m3code("run", cwd=demo_repo)
    assert neither.returncode == 2 and "--resume" in neither.stderr
    assert session_dirs(demo_repo) == []  # nothing was started


def test_a_bad_base_url_or_steering_a_finished_job_is_refused(demo_repo: Path, scripted_server) -> None:
    bad = m3code("run", "TASK.md", "--solo", "--base-url", "notaurl", cwd=demo_repo)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    assert session_dirs(demo_repo) == []
    server = scripted_server({"turns": [{"content": "Done."}]})
    done = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert done.returncode == 0, done.stderr
    [session] = session_dirs(demo_repo)
    steer = m3code("steer", session.name, "one more thing", cwd=demo_repo)
    assert steer.returncode == 2 and "has finished" in steer.stderr
    assert not (session / "inbox.jsonl").exists()
