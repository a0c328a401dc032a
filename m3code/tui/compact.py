"""/compact: summarise a stopped solo session's older turns now, as the agent loop does when its window fills.

It runs only while no job does (the log has one writer at a time) and logs the same Compaction event,
so the next request and any later `--resume` start from the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from m3code.agent.context import SUMMARY_PROMPT, estimate_tokens, render_for_summary, split_for_compaction
from m3code.config import load_config
from m3code.providers import make_provider
from m3code.providers.types import Message
from m3code.run import provider_settings
from m3code.session.events import Compaction
from m3code.session.log import read_events
from m3code.session.session import Session
from m3code.session.state import rebuild


async def compact_session(workspace: Path, folder: Path, flags: dict[str, Any], environ: dict[str, str] | None,
                          listener: Callable[[Any], None]) -> str:
    """Compact the session in `folder`; returns what happened, for the person."""
    state = rebuild(list(read_events(folder)))
    if state.started.mode != "solo":
        return "A team's agents compact their own histories; /compact works on solo sessions."
    history = state.messages
    old, recent = split_for_compaction(history, keep_recent=1)  # asked for: keep only the latest turn
    if len(history) < 4 or len(old) < 2:
        return "The history is short: nothing to compact yet."
    settings = load_config(workspace, {k: v for k, v in flags.items() if v is not None}, environ).settings
    provider = make_provider(provider_settings(settings))
    try:
        completion = await provider.complete(
            [Message(role="system", content=SUMMARY_PROMPT), Message(role="user", content=render_for_summary(old))],
            [], on_event=None)
    finally:
        await provider.aclose()
    summary = completion.message.content.strip()
    size = estimate_tokens([Message(role="system", content=state.started.system_prompt), *history])
    merged = Message(role="user", content=f"{state.started.task}\n\n## Summary of the work so far\n\n{summary}")
    session = Session(folder.name, folder, [listener])
    try:
        session.emit(Compaction(summary=summary, messages=[merged, *recent], tokens_before=size,
                                usage=completion.usage), sync=True)
    finally:
        session.close()
    return f"Compacted {size} tokens of history into a summary."
