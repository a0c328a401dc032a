"""Text views of stored sessions: `m3code sessions list` and `m3code sessions show`."""

from __future__ import annotations

import time
from pathlib import Path

from m3code.render import summarise_arguments
from m3code.session.events import (
    AssistantMessage,
    Checkpoint,
    Compaction,
    ErrorEvent,
    PlanEvent,
    PullRequestEvent,
    SessionResumed,
    SteeringEvent,
    StepEvent,
    ToolCallStarted,
    ToolResultEvent,
    VerdictEvent,
)
from m3code.session.log import EVENTS_FILE, find_session, read_events, sessions_dir
from m3code.session.state import rebuild


def _status(folder: Path) -> tuple[str, str, str]:
    state = rebuild(list(read_events(folder)))
    status = state.ended.status if state.ended else "stopped"  # no end event: killed, or still running
    first_line = state.started.task.strip().splitlines()[0][:60]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.started.ts))
    return status, when, first_line


def list_sessions(workspace: Path) -> list[str]:
    root = sessions_dir(workspace)
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if (p / EVENTS_FILE).is_file()), reverse=True)
    rows = []
    for folder in folders:
        try:
            status, when, task = _status(folder)
        except ValueError as exc:
            rows.append(f"{folder.name}  unreadable: {exc}")
            continue
        rows.append(f"{folder.name}  {when}  {status:<11}  {task}")
    return rows


def show_session(workspace: Path, session_id: str) -> str:
    folder = find_session(workspace, session_id)
    events = list(read_events(folder))
    state = rebuild(events)
    s = state.started
    out = [f"session {folder.name}", f"model {s.model} via {s.base_url} ({s.api_format})",
           f"workspace {s.workspace}", "", "## Task", s.task, "", "## Transcript"]
    for event in events:
        who = "" if event.agent in ("main", "team") else f"[{event.agent}] "
        if isinstance(event, AssistantMessage) and event.message.content.strip():
            out.append(f"{who}assistant: {event.message.content.strip()}")
        elif isinstance(event, ToolCallStarted):
            out.append(f"{who}→ {event.name} {summarise_arguments(event.arguments)}")
        elif isinstance(event, PlanEvent):
            out.append(f"plan v{event.version}: " + "; ".join(f"{st.id} {st.title}" for st in event.steps))
        elif isinstance(event, StepEvent):
            commit = f" {event.commit[:10]}" if event.commit else ""
            out.append(f"step {event.step_id} {event.state} (attempt {event.attempt}){commit} {event.detail}".rstrip())
        elif isinstance(event, VerdictEvent):
            out.append(f"verdict on {event.step_id}: {event.verdict} — {event.findings.strip()[:200]}")
        elif isinstance(event, SteeringEvent):
            out.append(f"steering: {event.text}")
        elif isinstance(event, Checkpoint):
            out.append(f"checkpoint {event.kind} {event.commit[:10]} on {event.branch or '(detached)'}")
        elif isinstance(event, PullRequestEvent):
            out.append(f"pull request {event.action}: {event.url}")
        elif isinstance(event, ToolResultEvent):
            lines = event.output.strip().splitlines()
            mark = "✗" if event.is_error else "✓"
            out.extend(f"  {mark} {line}" if i == 0 else f"    {line}" for i, line in enumerate(lines[:3]))
            if len(lines) > 3:
                out.append(f"    … {len(lines) - 3} more line(s)")
        elif isinstance(event, Compaction):
            out.append(f"… history compacted ({event.tokens_before} tokens)")
        elif isinstance(event, SessionResumed):
            out.append("… resumed")
        elif isinstance(event, ErrorEvent):
            out.append(f"error: {event.message}")
    u = state.usage
    out += ["", "## Outcome"]
    if state.ended:
        out.append(f"{state.ended.status} (exit {state.ended.exit_code}) {state.ended.reason}".rstrip())
        if state.ended.final_answer:
            out += ["", state.ended.final_answer]
    else:
        out.append(f"not finished: resume with `m3code run --resume {folder.name}`")
    out += ["", f"{state.turns} turns · {u.input_tokens} tokens in · {u.output_tokens} out · ${u.cost_usd:.4f}"]
    return "\n".join(out)
