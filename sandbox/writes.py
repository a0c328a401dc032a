"""Writing a file so that readers never see half of it."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from pathlib import Path

from sandbox.base import Policy


def check_writable(policy: Policy, workspace: Path, path: Path) -> None:
    """Refuse a write the policy forbids; PermissionError (an OSError) reaches the model as a tool error."""
    if policy == "read-only":
        raise PermissionError(errno.EACCES, "The sandbox policy is read-only: no writes", str(path))
    if policy == "workspace-write" and not path.resolve().is_relative_to(workspace):
        raise PermissionError(
            errno.EACCES, f"The sandbox policy only allows writes inside the workspace {workspace}", str(path),
        )


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    Creates missing parent directories, keeps the mode of a file it replaces, and writes through a symlink
    to its target rather than replacing the link with a plain file.
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    # Mode 0o666 lets the umask apply, as it would to a file created the ordinary way.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
