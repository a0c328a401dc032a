"""The hooks `m3code run` calls around a job given --pr or --from-issue (see m3code.run.JobHooks)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3code.config import Settings
from m3code.github.errors import EXIT_PUBLISH_FAILED, GitHubFeatureError
from m3code.github.masking import MaskedSession, Masker
from m3code.github.publish import Target, publish, start_checkpoint, start_event
from m3code.github.workspace import Head
from m3code.session.events import ErrorEvent
from m3code.session.log import read_events
from m3code.session.session import Session


def say(text: str) -> None:
    print(f"m3code: {text}", file=sys.stderr, flush=True)


@dataclass
class PrPlan:
    """What --pr settled before the job: where the PR goes, and where the work starts."""

    workspace: Path
    target: Target
    token: str
    start: Head
    draft: bool = False


class GitHubJob:
    def __init__(self, masker: Masker, pr: PrPlan | None = None) -> None:
        self.masker = masker
        self.pr = pr

    def _say(self, text: str) -> None:
        say(self.masker.mask(text))

    def open_session(self, session_id: str, folder: Path, listeners: list[Any], settings: Settings) -> Session:
        if settings.api_key is not None:
            self.masker.add(settings.api_key.get_secret_value())
        return MaskedSession(session_id, folder, listeners, self.masker)

    def started(self, session: Session) -> None:
        if self.pr is not None and start_checkpoint(list(read_events(session.folder))) is None:
            session.emit(start_event(self.pr.start), sync=True)

    def finished(self, session: Session, status: str, code: int) -> int:
        if self.pr is None:
            return code
        if status != "done":
            self._say(f"No pull request: the job ended with status {status!r}. Its session is "
                      f"{session.id}; once it is done, `m3code pr open {session.id}` opens one.")
            return code
        try:
            publish(self.pr.workspace, list(read_events(session.folder)), self.pr.target, token=self.pr.token,
                    masker=self.masker, emit=lambda e: session.emit(e, sync=True), say=self._say,
                    draft=self.pr.draft)
        except Exception as exc:  # whatever went wrong, the job is done: record why its PR is missing, exit 4
            message = self.masker.mask(str(exc) if isinstance(exc, GitHubFeatureError) else
                                       f"Opening the pull request failed: {type(exc).__name__}: {exc}. Run "
                                       f"`m3code pr open {session.id}` to try again.")
            session.emit(ErrorEvent(message=message), sync=True)
            say(message)
            return exc.exit_code if isinstance(exc, GitHubFeatureError) else EXIT_PUBLISH_FAILED
        return code
