"""The app driven as a person would, through Textual's pilot, against a scripted model over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m3code.tui.blocks import AssistantBlock, MarkdownBlock, NoticeBlock
from m3code.tui.screens import ApprovalScreen
from tests.e2e.helpers import call, events, session_dirs
from tests.tui.helpers import idle, make_app, send, type_text, wait_for

ANSWER = ("Fixed slugify: it now **lower-cases** the title.\n\n```python\n"
          "words = re.findall(r'[a-z0-9]+', title.lower())\n```")
FIX = {"turns": [
    {"content": "Reading the code first, then I will run the tests.", "reasoning": "Look before editing.",
     "tool_calls": [call("c1", "read", path="textkit/slug.py")], "chunk_size": 4, "event_delay": 0.03},
    {"tool_calls": [call("c2", "bash", command="python3 -m unittest -q 2>&1 | tail -3")]},
    {"tool_calls": [call("c3", "edit", path="textkit/slug.py", old_string='re.findall(r"[a-z0-9]+", title)',
                         new_string='re.findall(r"[a-z0-9]+", title.lower())')]},
    {"content": ANSWER},
]}


def notices(app: Any) -> str:
    return "\n".join(b.text for b in app.blocks_of(NoticeBlock))


async def test_task_streams_text_and_shows_tool_cards(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(FIX)
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Fix the slug bug")
        # the first answer arrives in pieces: a block that is still streaming holds part of it
        await wait_for(pilot, lambda: any(b.streaming and b.content for b in app.blocks_of(AssistantBlock)),
                       what="streamed text")
        await wait_for(pilot, lambda: app.feed.ended is not None, what="the end")
        cards = {c.call_id: c for c in app.cards}
        assert cards["c2"].result is not None and cards["c2"].result.data["exit_code"] == 0
        assert "exit 0" in cards["c2"].plain()
        edit = cards["c3"]
        assert edit.result is not None and "+    words = re.findall" in edit.plain()  # a diff, coloured by line
        first = app.blocks_of(AssistantBlock)[0]
        assert first.reasoning == "Look before editing." and not first.expanded  # reasoning folded
        assert app.blocks_of(AssistantBlock)[-1].content == ANSWER
        assert "title.lower()" in (demo_repo / "textkit" / "slug.py").read_text()
        status = str(app.status.render())
        assert "MiniMax-M3" in status and "ready" in status and "$" in status
        # ctrl+o unfolds the latest foldable block
        await pilot.press("ctrl+o")
        assert any(b.expanded for b in app.transcript.blocks)
    [session] = session_dirs(demo_repo)
    assert events(session)[-1]["status"] == "done"


async def test_esc_interrupts_then_a_message_goes_on(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("h1", "bash", command="touch started && sleep 30")]},
        {"content": "Carrying on as asked."},
    ]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Run the slow thing")
        await wait_for(pilot, lambda: (demo_repo / "started").exists(), what="the command to start")
        assert app.cards[0].running
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the stop")
        assert app.feed.ended is not None and app.feed.ended.status == "interrupted"
        assert "interrupted" in notices(app)
        [session] = session_dirs(demo_repo)
        assert events(session)[-1]["status"] == "interrupted"
        # the app stays usable: the next message resumes the session with it
        await send(pilot, "skip that, just answer")
        await wait_for(pilot, lambda: app.feed.ended is not None and app.feed.ended.status == "done" and idle(app),
                       what="the follow-up")
        log = events(session)
        assert [e["content"] for e in log if e["type"] == "user_message"][-1] == "skip that, just answer"
        result = next(e for e in log if e["type"] == "tool_result")
        assert result["is_error"] and "interrupted" in result["output"]
        last = server.requests[-1]["body"]["messages"]
        assert last[-1] == {"role": "user", "content": "skip that, just answer"} or \
            last[-1]["content"] == "skip that, just answer"


async def test_enter_while_working_steers(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("s1", "bash", command="touch started && sleep 1")]},
        {"content": "Done, with tabs."},
    ]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Format the code")
        await wait_for(pilot, lambda: (demo_repo / "started").exists(), what="the command")
        await send(pilot, "use tabs, not spaces")
        steer = [b for b in app.user_blocks if b.kind == "steering"]
        assert steer and steer[0].text == "use tabs, not spaces"
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the end")
        assert steer[0].taken
    [session] = session_dirs(demo_repo)
    assert any(e["type"] == "steering" and e["text"] == "use tabs, not spaces" for e in events(session))
    sent = json.dumps(server.requests[-1]["body"]["messages"])
    assert "use tabs, not spaces" in sent


async def test_a_queued_follow_up_goes_when_the_job_ends(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("q1", "bash", command="touch started && sleep 1")]},
        {"content": "First done."},
        {"content": "Second done."},
    ]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: (demo_repo / "started").exists(), what="the command")
        await send(pilot, "and then this", key="ctrl+f")
        assert app.controller.queued == ["and then this"]
        await wait_for(pilot, lambda: any(b.content == "Second done." for b in app.blocks_of(AssistantBlock))
                       and idle(app), what="the follow-up's answer")
    [session] = session_dirs(demo_repo)
    users = [e["content"] for e in events(session) if e["type"] == "user_message"]
    assert users == ["first", "and then this"]


async def test_approval_modal_allows_once_and_denies(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("n1", "bash", command="curl --version > /dev/null && echo fetched")]},
        {"tool_calls": [call("n2", "bash", command="curl --version && echo again")]},
        {"content": "ok"},
    ]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "fetch it")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the approval")
        assert app.screen.action == "network access"
        await pilot.press("o")  # allow once
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen) and app.cards[0].result is not None,
                       what="the second question")
        await pilot.press("d")  # deny
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the end")
        first, second = app.cards
        assert first.result is not None and "fetched" in first.result.output
        assert second.result is not None and second.result.is_error and "denied" in second.result.output


async def test_approval_for_the_session_is_remembered(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("a1", "bash", command="curl --version > /dev/null")]},
        {"tool_calls": [call("a2", "bash", command="wget --version > /dev/null || true")]},
        {"content": "ok"},
    ]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "fetch")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), what="the approval")
        await pilot.press("s")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the end")
        assert all(c.result is not None and "denied" not in c.result.output for c in app.cards)


async def test_resume_renders_the_session_from_its_log(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(FIX)
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "Fix the slug bug")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the end")
        live = [type(b).__name__ for b in app.transcript.blocks if not b.hidden][1:]
        session_id = app.controller.session_id
    assert session_id is not None
    again = make_app(demo_repo, server, resume=session_id[:15])
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        shown = [type(b).__name__ for b in again.transcript.blocks if not b.hidden]
        assert shown == live
        assert again.controller.session_id == session_id
        assert again.blocks_of(AssistantBlock)[-1].content == ANSWER
        assert "$" in str(again.status.render()) and again.feed.totals.usage.output_tokens > 0


async def test_model_down_is_said_in_place_and_the_app_stays_usable(demo_repo: Path) -> None:
    (demo_repo / ".m3code").mkdir(exist_ok=True)
    (demo_repo / ".m3code" / "config.toml").write_text("max_retries = 0\n")
    app = make_app(demo_repo, None)  # nothing listens on 127.0.0.1:9
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "anything")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the failure")
        assert app.feed.ended is not None and app.feed.ended.status == "failed"
        errors = [b for b in app.blocks_of(NoticeBlock) if b.level == "error"]
        assert errors and "127.0.0.1:9" in errors[0].text
        await type_text(pilot, "/cost")
        await pilot.press("enter")
        assert app.blocks_of(MarkdownBlock)  # still answering


async def test_too_small_a_terminal_is_said_and_recovers(demo_repo: Path) -> None:
    app = make_app(demo_repo)
    async with app.run_test(size=(80, 24)) as pilot:
        cover = app.query_one("#too-small")
        assert not cover.display
        await pilot.resize_terminal(30, 8)
        await pilot.pause()
        assert cover.display and "30×8" in str(cover.render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not cover.display


async def test_history_and_path_completion(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [{"content": "Seen it."}, {"content": "Again."}]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_text(pilot, "explain @slu")
        assert next(c.label for c in app.prompt.candidates) == "textkit/slug.py"
        await pilot.press("tab")
        assert app.prompt.text == "explain @textkit/slug.py "
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the answer")
        sent = server.requests[-1]["body"]["messages"][1]["content"]
        assert '<file path="textkit/slug.py">' in sent and "def slugify" in sent
        await pilot.press("up")
        assert app.prompt.text == "explain @textkit/slug.py"
        await pilot.press("down")
        assert app.prompt.text == ""
        # slash completion
        await type_text(pilot, "/thi")
        assert [c.insert for c in app.prompt.candidates] == ["/thinking"]
        await pilot.press("tab")
        assert app.prompt.text == "/thinking "
        assert [c.insert for c in app.prompt.candidates] == ["enabled", "adaptive", "disabled"]


async def test_multiline_input(demo_repo: Path) -> None:
    app = make_app(demo_repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_text(pilot, "line one")
        await pilot.press("ctrl+j")
        await type_text(pilot, "line two")
        assert app.prompt.text == "line one\nline two"


async def test_solo_mode_hides_the_team_panel(demo_repo: Path) -> None:
    app = make_app(demo_repo)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert not app.team_panel.display


def _team_script() -> dict[str, Any]:
    step = {"id": "a", "title": "file a", "goal": "Write a.txt.", "acceptance": ["a.txt exists"], "depends_on": []}
    return {"agents": {
        "planner": [{"tool_calls": [call("p0", "submit_plan", steps=[step])]}, {"content": "Planned."}],
        "producer/a": [{"tool_calls": [call("w0", "bash", command="echo A > a.txt")]}, {"content": "Wrote a.txt"}],
        "verifier/a": [{"tool_calls": [call("v0", "verdict", verdict="PASS", findings="a.txt is there")]},
                       {"content": "PASS"}],
        "verifier/final": [{"tool_calls": [call("v1", "verdict", verdict="PASS", findings="all good")]},
                           {"content": "PASS"}],
    }}


async def test_team_panel_shows_plan_steps_and_verdicts(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(_team_script())
    app = make_app(demo_repo, server, mode="team")
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "Write a.txt")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), timeout=40, what="the team")
        await pilot.pause(0.1)
        assert app.team_panel.display
        panel = str(app.team_panel.render())
        assert "a file a" in panel and "passed" in panel and "PASS" in panel
        assert app.feed.team.states == {"a": "passed"}
        assert "steps accepted" in app.transcript_text()  # the team's report


async def test_team_agents_stream_their_turns_live_each_in_its_own_block(demo_repo: Path, scripted_server) -> None:
    script = _team_script()
    wrote = "Wrote a.txt with the letter A in it, as the step asks."
    script["agents"]["producer/a"][-1] = {"content": wrote, "reasoning": "One echo does it.", "chunk_size": 4,
                                          "event_delay": 0.03}
    server = scripted_server(script)
    app = make_app(demo_repo, server, mode="team")

    def producer_blocks() -> list[AssistantBlock]:
        return [b for b in app.blocks_of(AssistantBlock) if b.agent == "producer/a" and b.content]

    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "Write a.txt")
        # while the producer's last turn arrives, its words show in pieces, in a block of its own
        await wait_for(pilot, lambda: any(b.streaming for b in producer_blocks()), timeout=40,
                       what="the producer's streamed text")
        assert all(wrote.startswith(b.content) for b in producer_blocks())
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), timeout=40, what="the team")
        # the stream became the message: one block, whole, no longer streaming
        [block] = producer_blocks()
        assert block.content == wrote and block.reasoning == "One echo does it." and not block.streaming
        assert not any(wrote in b.content for b in app.blocks_of(AssistantBlock) if b.agent != "producer/a")


async def test_a_message_after_a_finished_team_job_replans_on_its_branch(demo_repo: Path, scripted_server) -> None:
    script = _team_script()
    step_b = {"id": "b", "title": "file b", "goal": "Write b.txt.", "acceptance": ["b.txt exists"], "depends_on": []}
    script["agents"]["planner"] += [{"tool_calls": [call("p1", "submit_plan", steps=[step_b])]},
                                    {"content": "Planned."}]
    script["agents"]["producer/b"] = [{"tool_calls": [call("w1", "bash", command="ls a.txt && echo B > b.txt")]},
                                      {"content": "Wrote b.txt next to a.txt"}]
    script["agents"]["verifier/b"] = [{"tool_calls": [call("v2", "verdict", verdict="PASS", findings="b ok")]},
                                      {"content": "PASS"}]
    script["agents"]["verifier/final"] += [{"tool_calls": [call("v3", "verdict", verdict="PASS", findings="ok")]},
                                           {"content": "PASS"}]
    server = scripted_server(script)
    app = make_app(demo_repo, server, mode="team")
    async with app.run_test(size=(120, 30)) as pilot:
        await send(pilot, "Write a.txt")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), timeout=40, what="the first job")
        await send(pilot, "also write b.txt")
        await wait_for(pilot, lambda: app.feed.ended is not None and app.feed.team.version == 2 and idle(app),
                       timeout=40, what="the follow-up")
        assert app.feed.ended is not None and app.feed.ended.status == "done"
        assert app.feed.team.states == {"b": "passed"}
    [session] = session_dirs(demo_repo)
    log = events(session)
    assert any(e["type"] == "steering" and e["text"] == "also write b.txt" for e in log)
    # the new plan was made with the requirement, on the branch that already holds a.txt
    planner_request = [r for r in server.requests if r.get("agent") == "planner"][-2]
    assert "also write b.txt" in json.dumps(planner_request["body"]["messages"])
    producer = next(e for e in log if e["type"] == "tool_result" and e["agent"] == "producer/b")
    assert not producer["is_error"]  # `ls a.txt` found the first step's work


async def test_keyboard_folds_a_block_in_the_transcript(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [
        {"tool_calls": [call("f1", "bash", command="seq 1 30")]}, {"content": "Counted."}]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "count")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the end")
        card = app.cards[0]
        assert card.foldable and not card.expanded and "… 27 lines above" in _rendered(app, card)
        await pilot.press("tab")  # to the transcript
        assert app.focused is app.transcript
        for _ in range(10):
            if app.transcript.selected is not None and app.transcript.blocks[app.transcript.selected] is card:
                break
            await pilot.press("up")
        await pilot.press("enter")
        assert card.expanded and "30" in _rendered(app, card)


def _rendered(app: Any, block: Any) -> str:
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(block.renderable(app.palette, 96))
    return console.export_text()
