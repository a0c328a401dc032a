"""The app's side of a job: start it, steer it, stop it, go on after it. The job itself is `m3code run`'s.

Every job is `execute(RunRequest(...))` in the app's event loop, with the app's listener as its view: a
new task starts a session, a message after a job ended resumes that session with a follow-up, words sent
while a job runs go to the session's inbox (as `m3code steer` does), and Esc cancels the job's task, which
ends it "interrupted" with everything saved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3code.run import RunRequest, UsageError, execute
from m3code.session.inbox import send
from m3code.session.log import sessions_dir
from m3code.tui.mentions import attached_images
from sandbox import Sandbox


@dataclass
class JobOutcome:
    code: int
    answer: str = ""
    error: str = ""  # a usage error (bad flag, no key): said in place, nothing was started


@dataclass
class JobController:
    workspace: Path
    listener: Callable[[Any], None]
    on_done: Callable[[JobOutcome], None]
    flags: dict[str, Any] = field(default_factory=dict)
    environ: dict[str, str] | None = None
    wrap_sandbox: Callable[[Sandbox], Sandbox] | None = None
    session_id: str | None = None
    task: asyncio.Task[None] | None = None
    queued: list[str] = field(default_factory=list)  # follow-ups to send when the job ends

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def folder(self) -> Path | None:
        return sessions_dir(self.workspace) / self.session_id if self.session_id else None

    def _listen(self, event: Any) -> None:
        if getattr(event, "type", None) == "session_started":
            self.session_id = event.session_id
        self.listener(event)

    def submit(self, text: str) -> str:
        """A message from the person: a new task, a follow-up, or steering. Returns which it became."""
        if self.busy:
            folder = self.folder
            if folder is None:  # the job has not logged its start yet: keep it for after
                self.queued.append(text)
                return "queued"
            send(folder, text)
            return "steering"
        # `@image` mentions left `[image: ...]` lines in the text: the images go as parts of the message.
        images = attached_images(text, self.workspace)
        if self.session_id is None:
            self._start(RunRequest(workspace=self.workspace, task_text=text, images=images))
            return "task"
        self._start(RunRequest(workspace=self.workspace, resume=self.session_id, follow_up=text, images=images))
        return "follow-up"

    def queue(self, text: str) -> None:
        """Keep a message for when the job ends (it then goes as a follow-up)."""
        if self.busy:
            self.queued.append(text)
        else:
            self.submit(text)

    def resume(self, session_id: str) -> None:
        """Go on with a stopped session as it is (no new message)."""
        self.session_id = session_id
        self._start(RunRequest(workspace=self.workspace, resume=session_id))

    def new_session(self) -> None:
        self.session_id = None
        self.queued.clear()

    def interrupt(self) -> bool:
        if not self.busy:
            return False
        assert self.task is not None
        self.task.cancel()
        return True

    async def wait(self) -> None:
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.task)

    def _start(self, request: RunRequest) -> None:
        request.flags = {k: v for k, v in self.flags.items() if v is not None}
        request.environ = self.environ
        request.output = "none"
        request.listeners = [self._listen]
        request.handle_signals = False
        request.wrap_sandbox = self.wrap_sandbox
        self.task = asyncio.get_running_loop().create_task(self._run(request))

    async def _run(self, request: RunRequest) -> None:
        try:
            code, answer = await execute(request)
            outcome = JobOutcome(code, answer)
        except UsageError as exc:
            outcome = JobOutcome(2, error=str(exc))
        except asyncio.CancelledError:  # cancelled before the job was under way: nothing to save
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            outcome = JobOutcome(130, error="stopped before the job started")
        except Exception as exc:  # a bug must not take the app down: say it and stay usable
            outcome = JobOutcome(1, error=f"the job crashed: {type(exc).__name__}: {exc}")
        self.task = None  # done, as far as the person is concerned: the next message is a follow-up
        self.on_done(outcome)
        if self.queued and outcome.code in (0, 1, 3) and not outcome.error:
            text = "\n\n".join(self.queued)
            self.queued.clear()
            self.submit(text)
