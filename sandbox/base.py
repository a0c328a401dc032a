"""The sandbox protocol every backend keeps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Policy = Literal["read-only", "workspace-write", "full-access"]


class SandboxError(Exception):
    """The sandbox itself failed (not the command): says what happened and what to run."""


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    # True when the backend stopped keeping output past its memory cap (the rest was discarded).
    truncated: bool = False


class Sandbox(Protocol):
    """A place to run commands and touch files of one workspace.

    `workspace` is the host directory; paths given to read/write are absolute host paths inside it (the
    tools resolve and confine them first).
    """

    workspace: Path
    policy: Policy

    async def exec(
        self,
        cmd: str,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> ExecResult: ...

    async def read(self, path: Path) -> bytes: ...

    async def write(self, path: Path, data: bytes) -> None: ...

    async def close(self) -> None: ...
