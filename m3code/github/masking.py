"""Secrets never reach a log, a view, a commit or a pull request body: every text is masked on the way out."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from m3code.session.session import Listener, Session

MASK = "***"
MIN_SECRET_LEN = 8  # masking shorter strings would garble ordinary text
# GitHub's token formats (classic, OAuth, user-to-server, server-to-server, refresh, fine-grained), masked even
# when m3code was never given them: a token the agent found in a file is still a token.
GITHUB_TOKEN_PATTERN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b")


def basic_auth_value(token: str) -> str:
    """What git sends for a token over HTTPS (`x-access-token` is the user name GitHub expects with tokens)."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


class Masker:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._values: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_LEN:
            return
        self._values.update({secret, basic_auth_value(secret)})

    def mask(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return GITHUB_TOKEN_PATTERN.sub(MASK, text)

    def mask_event(self, event: Any) -> Any:
        """The event itself when it holds no secret, else a copy with every secret masked."""
        if not isinstance(event, BaseModel):
            return event
        raw = event.model_dump_json()
        masked = self.mask(raw)  # secrets are plain token characters, so masking keeps the JSON valid
        return event if masked == raw else type(event).model_validate_json(masked)


class MaskedSession(Session):
    """A session whose log and views only ever see masked events."""

    def __init__(self, session_id: str, folder: Path, listeners: list[Listener] | None, masker: Masker) -> None:
        super().__init__(session_id, folder, listeners)
        self.masker = masker

    def emit(self, event: Any, *, sync: bool = False) -> None:
        super().emit(self.masker.mask_event(event), sync=sync)
