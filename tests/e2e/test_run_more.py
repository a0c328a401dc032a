"""More of `m3code run`: the Anthropic format, cut streams, compaction, cost and time budgets."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import call, events, m3code, session_dirs
from tests.e2e.test_run import FIX_SCRIPT


def test_anthropic_format_end_to_end(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(FIX_SCRIPT)
    result = m3code("run", "TASK.md", "--solo", "--api-format", "anthropic", "--base-url", server.anthropic_base_url,
                    "--thinking", "enabled", cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert "title.lower()" in (demo_repo / "textkit" / "slug.py").read_text()
    assert {r["path"] for r in server.requests} == {"/anthropic/v1/messages"}
    body = server.requests[-1]["body"]
    assert body["thinking"]["type"] == "enabled" and "python -m unittest -q" in body["system"]
    first_answer = body["messages"][1]
    assert first_answer["role"] == "assistant" and first_answer["content"][0]["type"] == "thinking"
    assert first_answer["content"][0]["signature"]  # thinking goes back verbatim, signature included


def test_cut_stream_never_half_applies_a_tool_call(demo_repo: Path, scripted_server) -> None:
    script = {"turns": [
        {"tool_calls": [call("w1", "bash", command="echo ran >> ledger.txt"),
                        call("w2", "write", path="notes.txt", content="hello\n")],
         "faults": [{"cut_after": 5}, {"cut_after": 9}]},
        {"content": "Done."},
    ]}
    server = scripted_server(script)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert "retry" in result.stderr
    assert (demo_repo / "ledger.txt").read_text() == "ran\n"
    assert (demo_repo / "notes.txt").read_text() == "hello\n"
    [session] = session_dirs(demo_repo)
    log = events(session)
    assert [e["type"] for e in log].count("assistant_message") == 2
    assert [e["call_id"] for e in log if e["type"] == "tool_call"] == ["w1", "w2"]


def test_compaction_summarises_old_turns_and_keeps_the_task(demo_repo: Path, scripted_server) -> None:
    (demo_repo / "big.txt").write_text("".join(f"row {i:04d} of a long file\n" for i in range(40)))
    (demo_repo / ".m3code").mkdir()
    (demo_repo / ".m3code" / "config.toml").write_text("context_window = 1024\ncompact_at = 0.5\n")
    reads = [{"tool_calls": [call(f"r{i}", "read", path="big.txt", offset=i + 1)]} for i in range(4)]
    script = {"turns": [*reads, {"content": "SUMMARY: read big.txt four times; nothing left but answering."},
                        {"content": "Finished after compaction."}]}
    server = scripted_server(script)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Finished after compaction."
    [session] = session_dirs(demo_repo)
    log = events(session)
    [compaction] = [e for e in log if e["type"] == "compaction"]
    assert compaction["summary"].startswith("SUMMARY:")
    summary_request, after = server.requests[-2]["body"], server.requests[-1]["body"]
    assert "tools" not in summary_request or not summary_request["tools"]
    history = json.dumps(after["messages"])
    assert "Fix slugify" in history and "SUMMARY: read big.txt" in history  # the task and the summary
    assert '"r0"' not in history and '"r3"' in history  # old turns gone, the latest kept
    assert len(after["messages"]) < len(summary_request["messages"]) + 8


def test_max_cost_and_timeout_stop_with_exit_3(demo_repo: Path, scripted_server) -> None:
    costly = {"turns": [{"tool_calls": [call("c1", "glob", pattern="*")],
                         "usage": {"input_tokens": 20000, "output_tokens": 100}}, {"content": "never"}]}
    server = scripted_server(costly)
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, "--max-cost", "0.001",
                    cwd=demo_repo)
    assert result.returncode == 3, result.stderr
    assert "--max-cost" in result.stderr

    slow = scripted_server({"turns": [{"content": "late", "delay": 10}]})
    result = m3code("run", "TASK.md", "--solo", "--base-url", slow.openai_base_url, "--timeout", "1", cwd=demo_repo)
    assert result.returncode == 3, result.stderr
    assert "--timeout" in result.stderr
    assert [events(s)[-1]["status"] for s in session_dirs(demo_repo)] == ["budget", "budget"]


def test_the_same_reply_three_times_stops_the_loop(demo_repo: Path, scripted_server) -> None:
    same = {"content": "Let me look again.", "tool_calls": [call("x", "glob", pattern="*.md")]}
    server = scripted_server({"turns": [same, {**same, "tool_calls": [call("y", "glob", pattern="*.md")]},
                                        {**same, "tool_calls": [call("z", "glob", pattern="*.md")]},
                                        {"content": "never reached"}]})
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, cwd=demo_repo)
    assert result.returncode == 1, result.stderr
    assert "same reply 3 times" in result.stderr
    assert len(server.requests) == 3
