"""Every slash command, run from the input as a person types it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from m3code.tui.app import M3App
from m3code.tui.blocks import MarkdownBlock, NoticeBlock
from m3code.tui.screens import DiffScreen, SessionsScreen
from tests.e2e.helpers import call, events, session_dirs
from tests.tui.helpers import idle, make_app, send, wait_for

EDIT_SCRIPT = {"turns": [
    {"tool_calls": [call("e1", "edit", path="textkit/slug.py", old_string='re.findall(r"[a-z0-9]+", title)',
                         new_string='re.findall(r"[a-z0-9]+", title.lower())'),
                    call("e2", "write", path="NOTES.md", content="notes\n")]},
    {"content": "Changed slug.py and wrote NOTES.md."},
    {"content": "Summary: slug.py lower-cases titles."},  # the /compact summary
    {"content": "Still here after the summary."},
]}


def said(app: M3App) -> str:
    return "\n".join(b.text for b in app.blocks_of(NoticeBlock))


async def command(pilot: Any, text: str) -> None:
    await send(pilot, text)
    await pilot.pause()


async def test_settings_commands(demo_repo: Path) -> None:
    app = make_app(demo_repo)
    async with app.run_test(size=(100, 30)) as pilot:
        await command(pilot, "/help")
        assert app.blocks_of(MarkdownBlock)[-1].title == "Help"
        assert "/undo" in app.blocks_of(MarkdownBlock)[-1].markdown
        await command(pilot, "/model MiniMax-M2.7")
        assert app.settings.model == "MiniMax-M2.7" and "MiniMax-M2.7" in str(app.status.render())
        await command(pilot, "/thinking disabled")
        assert app.settings.thinking == "disabled" and "think disabled" in str(app.status.render())
        await command(pilot, "/thinking sometimes")
        assert app.settings.thinking == "disabled" and "enabled | adaptive | disabled" in said(app)
        await command(pilot, "/sandbox full-access")
        assert app.gate.policy == "full-access"
        await command(pilot, "/sandbox")
        assert "policy full-access" in said(app)
        await command(pilot, "/team")
        assert app.settings.mode == "team"
        await command(pilot, "/solo")
        assert app.settings.mode == "solo"
        await command(pilot, "/cost")
        assert app.blocks_of(MarkdownBlock)[-1].title == "Cost of this session"
        await command(pilot, "/frobnicate")
        assert "unknown command /frobnicate" in said(app)


async def test_diff_undo_compact_and_new(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(EDIT_SCRIPT)
    app = make_app(demo_repo, server)
    slug = demo_repo / "textkit" / "slug.py"
    before = slug.read_text()
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "lower-case the slug")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="the job")
        assert "title.lower()" in slug.read_text() and (demo_repo / "NOTES.md").exists()

        await command(pilot, "/diff")
        assert isinstance(app.screen, DiffScreen)
        assert "+    words = re.findall" in app.screen.diff and "NOTES.md" in app.screen.diff
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)

        await command(pilot, "/compact")
        await wait_for(pilot, lambda: "Compacted" in said(app) or "could not" in said(app), what="compaction")
        assert "Compacted" in said(app), said(app)
        [session] = session_dirs(demo_repo)
        assert any(e["type"] == "compaction" for e in events(session))

        await command(pilot, "/undo")
        assert "undid the last step: 2 file(s) restored" in said(app)
        assert slug.read_text() == before and not (demo_repo / "NOTES.md").exists()

        # the conversation goes on from the summary
        await send(pilot, "are you there?")
        await wait_for(pilot, lambda: app.feed.ended is not None and app.feed.ended.status == "done" and idle(app)
                       and "Still here" in app.transcript_text(), what="the follow-up")
        sent = server.requests[-1]["body"]["messages"]
        assert "Summary: slug.py lower-cases titles." in sent[1]["content"]

        await command(pilot, "/new")
        assert app.controller.session_id is None and "new session" in app.transcript_text()


async def test_sessions_and_resume(demo_repo: Path, scripted_server) -> None:
    server = scripted_server({"turns": [{"content": "First answer."}, {"content": "Second answer."}]})
    app = make_app(demo_repo, server)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "first task")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app), what="first")
        first = app.controller.session_id
        await command(pilot, "/new")
        await send(pilot, "second task")
        await wait_for(pilot, lambda: app.feed.ended is not None and idle(app)
                       and app.controller.session_id != first, what="second")
        assert first is not None
        await command(pilot, "/sessions")
        assert isinstance(app.screen, SessionsScreen) and len(app.screen.rows) == 2
        listing = app.screen.query_one(OptionList)
        listing.highlighted = [r.split()[0] for r in app.screen.rows].index(first)
        await pilot.press("enter")
        await pilot.pause()
        assert app.controller.session_id == first and "First answer." in app.transcript_text()
        assert "Second answer." not in app.transcript_text()
        await command(pilot, "/resume nope")
        assert "No session 'nope'" in said(app)
        await command(pilot, f"/resume {first}")
        assert app.controller.session_id == first
