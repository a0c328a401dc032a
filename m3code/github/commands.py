"""`m3code pr open`: the pull request of a finished session, e.g. after a push failed or the job ran without --pr."""

from __future__ import annotations

import os
from pathlib import Path

from m3code.github.ci import RUNNER_SECRET_VARS, TOKEN_VARS
from m3code.github.errors import SetupError
from m3code.github.job import say
from m3code.github.masking import MaskedSession, Masker
from m3code.github.publish import PrOptions, publish, resolve_target
from m3code.github.workspace import open_repo
from m3code.session.log import EVENTS_FILE, SessionNotFound, find_session, read_events, sessions_dir

MODEL_KEY_VARS = ("MINIMAX_API_KEY", "M3CODE_API_KEY")


def open_pr(workspace: Path, session_id: str | None, options: PrOptions) -> int:
    """Exit code: 0 opened, updated or nothing to propose. Raises GitHubFeatureError (with its exit code)."""
    env = os.environ
    token = next((env[v] for v in TOKEN_VARS if env.get(v)), None)
    masker = Masker(env.get(v) for v in (*TOKEN_VARS, *RUNNER_SECRET_VARS, *MODEL_KEY_VARS))
    if not token:
        raise SetupError("`m3code pr open` needs a GitHub token: set GITHUB_TOKEN or GH_TOKEN to a token with "
                         "`contents: write` and `pull-requests: write` on the repository.")
    folder = _session_folder(workspace, session_id)
    events = list(read_events(folder))
    ended = [e for e in events if getattr(e, "type", "") == "session_ended"]
    if not ended:
        raise SetupError(f"Session {folder.name} has not finished; continue it with "
                         f"`m3code run --resume {folder.name}`, then open its pull request.")
    if ended[-1].status != "done":
        raise SetupError(f"Session {folder.name} ended with status {ended[-1].status!r}, not done; continue it "
                         f"with `m3code run --resume {folder.name}` first.")
    with open_repo(workspace) as git_repo:
        target = resolve_target(git_repo, options, token, masker)
    session = MaskedSession(folder.name, folder, [], masker)  # appends the commit and PR events to its log
    try:
        publish(workspace, events, target, token=token, masker=masker, emit=lambda e: session.emit(e, sync=True),
                say=lambda text: say(masker.mask(text)), draft=options.draft)
    finally:
        session.close()
    return 0


def _session_folder(workspace: Path, session_id: str | None) -> Path:
    if session_id:
        try:
            return find_session(workspace, session_id)
        except SessionNotFound as exc:
            raise SetupError(str(exc)) from exc
    root = sessions_dir(workspace)
    found = sorted(p for p in root.iterdir() if (p / EVENTS_FILE).is_file()) if root.is_dir() else []
    if not found:
        raise SetupError(f"No sessions under {root}; run a job first (`m3code run TASK.md`).")
    return found[-1]  # ids begin with the start time: the last is the newest
