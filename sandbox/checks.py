"""`m3code sandbox doctor`: which backends work here, and for each that does not, why and the fix."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import Sandbox, SandboxError


@dataclass
class BackendStatus:
    name: str
    works: bool
    detail: str  # what was found: versions, limits, or the error
    fix: str = ""  # what to run when it does not work


def doctor() -> list[BackendStatus]:
    """Try each backend for real (start it, run `true`, stop it) in a throwaway workspace.

    Call it from synchronous code (the CLI): it runs its own event loops.
    """
    with tempfile.TemporaryDirectory(prefix="m3code-doctor-") as tmp:
        workspace = Path(tmp)
        return [_check_docker(workspace), _check_bwrap(workspace), BackendStatus(
            "local", True, "always available: commands run on this machine as you, with no isolation",
            "use it only by name: --sandbox local",
        )]


def _check_docker(workspace: Path) -> BackendStatus:
    from sandbox.docker import DockerSandbox, connect
    from sandbox.image import content_hash, default_tag, image_hash

    try:
        client = connect(timeout=30)
        version = client.version().get("Version", "?")
        sandbox = DockerSandbox(workspace, client=client)
    except SandboxError as exc:
        return BackendStatus("docker", False, str(exc), _fix_from(str(exc)))
    try:
        ok, detail = _run_true(sandbox)
    finally:
        asyncio.run(sandbox.close())
    stale = image_hash(client, default_tag()) != content_hash()
    detail = f"docker {version}, image {sandbox.image}" + (" (older recipe: `m3code sandbox build` updates it)"
                                                           if stale else "") + f"; {detail}"
    return BackendStatus("docker", ok, detail, "" if ok else "see the error above; `docker info` may say more")


def _check_bwrap(workspace: Path) -> BackendStatus:
    from sandbox.bwrap import BwrapSandbox

    try:
        sandbox = BwrapSandbox(workspace)
    except SandboxError as exc:
        return BackendStatus("bwrap", False, str(exc), _fix_from(str(exc)))
    try:
        ok, detail = _run_true(sandbox)
    finally:
        asyncio.run(sandbox.close())
    return BackendStatus("bwrap", ok, f"limits by {sandbox.limit_mode}; {detail}",
                         "" if ok else "see the error above")


def _run_true(sandbox: Sandbox) -> tuple[bool, str]:
    try:
        result = asyncio.run(sandbox.exec("true", timeout=30))
    except SandboxError as exc:
        return False, f"running a command failed: {exc}"
    if result.exit_code != 0:
        return False, f"`true` exited with {result.exit_code}: {result.stderr.strip()}"
    return True, "runs commands"


def _fix_from(message: str) -> str:
    """The `Fix: ...` part of a SandboxError's message, which the backends always end with."""
    _, found, fix = message.rpartition("Fix: ")
    return fix.strip() if found else message
