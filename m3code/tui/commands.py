"""Slash commands. Settings changed here (model, thinking, sandbox, mode) apply from the next request on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from m3code.session.log import read_events
from m3code.tui.blocks import MarkdownBlock
from m3code.tui.checkpoints import CheckpointError, session_diff, team_diff, team_undo, undo_last
from m3code.tui.completion import COMMANDS
from m3code.tui.panels import format_tokens

if TYPE_CHECKING:
    from m3code.tui.app import M3App

KEYS = """\
| key | does |
|---|---|
| enter | send; while the agent works: steer it (taken at its next step) |
| ctrl+f, alt+enter | queue a follow-up for when the agent is done |
| shift+enter, ctrl+j | new line |
| up / down | history (on the first / last line) |
| @path | attach a file (an image goes to the model as an image) |
| esc | stop the current step (the session is saved) |
| ctrl+o | fold / unfold the selected or latest output |
| tab | completion, or move to the transcript (↑↓ select, enter folds) |
| pageup / pagedown | scroll the transcript |
| ctrl+t | show / hide the team panel |
| ctrl+q | quit |
"""
POLICIES = ("read-only", "workspace-write", "full-access")
SANDBOXES = ("local", "docker", "bwrap", "auto")
IDLE_ONLY = {"/compact", "/undo", "/resume", "/new", "/team", "/solo"}


async def run(app: M3App, line: str) -> None:
    name, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    handler = HANDLERS.get(name)
    if handler is None:
        close = [c for c in COMMANDS if c.startswith(name[:3])]
        app.say(f"unknown command {name}" + (f"; did you mean {', '.join(close)}?" if close else "; /help lists them"),
                "warn")
        return
    if name in IDLE_ONLY and app.controller.busy:
        app.say(f"{name} waits until the agent stops (esc stops it)", "warn")
        return
    result = handler(app, arg)
    if asyncio.iscoroutine(result):
        await result
    app.update_panels()


def _help(app: M3App, arg: str) -> None:
    rows = "\n".join(f"| `{c}` | {h} |" for c, h in COMMANDS.items())
    app.feed.add(MarkdownBlock(f"| command | does |\n|---|---|\n{rows}\n\n{KEYS}", title="Help"))


def _set_flag(app: M3App, key: str, value: object, said: str) -> bool:
    old = app.flags.get(key)
    app.flags[key] = value
    if not app.reload_settings():
        app.flags[key] = old
        return False
    app.say(said + (" (from the next request)" if app.controller.busy else ""), "ok")
    return True


def _model(app: M3App, arg: str) -> None:
    if not arg:
        app.say(f"model: {app.settings.model} via {app.settings.base_url or 'the default endpoint'}")
        return
    _set_flag(app, "model", arg, f"model: {arg}")


def _thinking(app: M3App, arg: str) -> None:
    if arg not in ("enabled", "adaptive", "disabled"):
        app.say(f"thinking is {app.settings.thinking}; /thinking enabled | adaptive | disabled", "info")
        return
    _set_flag(app, "thinking", arg, f"thinking: {arg}")


def _sandbox(app: M3App, arg: str) -> None:
    if not arg:
        app.say(f"sandbox: {app.settings.sandbox}, policy {app.gate.policy}. Commands beyond the policy "
                "(network, writes outside the workspace, root) ask first.")
        return
    for word in arg.split():
        if word in POLICIES:
            app.gate.policy = word  # type: ignore[assignment]
            app.say(f"policy: {word}", "ok")
        elif word in SANDBOXES:
            _set_flag(app, "sandbox", word, f"sandbox: {word}")
        else:
            app.say(f"unknown sandbox or policy {word!r}: {' | '.join(SANDBOXES + POLICIES)}", "warn")


def _mode(mode: str) -> Callable[[M3App, str], None]:
    def handler(app: M3App, arg: str) -> None:
        if not _set_flag(app, "mode", mode, f"{mode} mode"):
            return
        if app.controller.session_id and app.feed.mode != mode:
            app.controller.new_session()
            app.say(f"your next message starts a new {mode} session", "dim")
    return handler


async def _compact(app: M3App, arg: str) -> None:
    folder = app.controller.folder
    if folder is None:
        app.say("nothing to compact: no session yet", "dim")
        return
    from m3code.tui.compact import compact_session

    app.say("compacting…", "dim")
    try:
        said = await compact_session(app.workspace, folder, app.flags, app.options.environ, app._listen)
    except Exception as exc:  # the model may be down: say so, keep the app
        app.say(f"could not compact: {exc}", "error")
        return
    app.say(said, "ok")


def _cost(app: M3App, arg: str) -> None:
    t = app.feed.totals
    u = t.usage
    window = app.status_info().context_window
    app.feed.add(MarkdownBlock(
        f"| | |\n|---|---|\n| model turns | {t.turns} |\n| input tokens | {u.input_tokens:,} |\n"
        f"| output tokens | {u.output_tokens:,} |\n| cache reads | {u.cache_read_tokens:,} |\n"
        f"| cost | ${u.cost_usd:.4f} |\n| context | {format_tokens(t.last_prompt_tokens)} of "
        f"{format_tokens(window)} |", title="Cost of this session"))


def _rows(app: M3App) -> list[str]:
    from m3code.session.summary import list_sessions

    return list_sessions(app.workspace)


def _sessions(app: M3App, arg: str) -> None:
    from m3code.tui.screens import SessionsScreen

    rows = _rows(app)
    if not rows:
        app.say("no sessions in this repository yet", "dim")
        return
    app.push_screen(SessionsScreen(rows), lambda chosen: _resume(app, chosen) if chosen else None)


def _resume(app: M3App, arg: str) -> None:
    if not arg:
        _sessions(app, arg)
        return
    current = app.controller.session_id
    stopped = app.feed.ended is None or app.feed.ended.status != "done"
    if current is not None and current.startswith(arg) and stopped:
        app.state = "working"
        app.controller.resume(current)  # the same session, stopped: go on as it was
        return
    if app.open_session(arg):
        app.say(f"reopened {app.controller.session_id}: type to go on", "dim")


def _new(app: M3App, arg: str) -> None:
    app.controller.new_session()
    app.new_feed()
    app.say("new session: type a task", "dim")


def _diff(app: M3App, arg: str) -> None:
    from m3code.tui.screens import DiffScreen

    sid = app.controller.session_id
    if sid is None:
        app.say("no session yet: nothing changed", "dim")
        return
    try:
        diff = team_diff(app.workspace, sid) if app.feed.mode == "team" else session_diff(app.workspace, sid)
    except CheckpointError as exc:
        app.say(f"no diff: {exc}", "warn")
        return
    if not diff.strip():
        app.say("the session changed nothing (yet)", "dim")
        return
    app.push_screen(DiffScreen(f"What session {sid} changed", diff, app.palette))


def _undo(app: M3App, arg: str) -> None:
    sid = app.controller.session_id
    if sid is None:
        app.say("nothing to undo", "dim")
        return
    try:
        if app.feed.mode == "team":
            commit = _last_accepted(app, sid)
            if commit is None:
                app.say("no accepted step to undo", "dim")
                return
            tip = team_undo(app.workspace, sid, commit)
            app.reverted.add(commit)
            app.say(f"reverted step commit {commit[:10]} on the job branch (now {tip[:10]})", "ok")
            return
        paths = undo_last(app.workspace, sid)
    except CheckpointError as exc:
        app.say(f"could not undo: {exc}", "warn")
        return
    app.say(f"undid the last step: {len(paths)} file(s) restored", "ok", detail="\n".join(paths))


def _last_accepted(app: M3App, sid: str) -> str | None:
    from m3code.session.events import StepEvent

    folder = app.controller.folder
    if folder is None:
        return None
    passed = [e.commit for e in read_events(folder) if isinstance(e, StepEvent) and e.state == "passed" and e.commit]
    left = [c for c in passed if c not in app.reverted]
    return left[-1] if left else None


async def _quit(app: M3App, arg: str) -> None:
    await app.action_quit()


HANDLERS = {
    "/help": _help, "/model": _model, "/thinking": _thinking, "/sandbox": _sandbox, "/team": _mode("team"),
    "/solo": _mode("solo"), "/compact": _compact, "/cost": _cost, "/sessions": _sessions, "/resume": _resume,
    "/new": _new, "/diff": _diff, "/undo": _undo, "/quit": _quit,
}
