"""Fixtures that give the same tests a bwrap and a docker sandbox, skipping a backend only where it cannot run."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox import Limits, Sandbox

# Small, so that the hostile tests reach them fast.
TEST_LIMITS = Limits(memory_mb=256, pids=64, cpus=1.0, tmp_mb=64)
BACKENDS = ["bwrap", "docker"]


@functools.cache
def bwrap_unavailable() -> str | None:
    """Why bwrap cannot run here, or None."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    done = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"bwrap cannot create a sandbox here: {done.stderr.strip()}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make(backend: str, workspace: Path, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Sandbox]]:
    """make(**options) -> a sandbox of `backend` on `workspace`, closed after the test."""
    created: list[Sandbox] = []
    if backend == "bwrap":
        reason = bwrap_unavailable()
        if reason:
            pytest.skip(reason)
    else:
        image, client = request.getfixturevalue("docker_image"), request.getfixturevalue("docker_client")

    def factory(**options: Any) -> Sandbox:
        from sandbox.bwrap import BwrapSandbox
        from sandbox.docker import DockerSandbox

        options.setdefault("limits", TEST_LIMITS)
        where = options.pop("workspace", workspace)
        sandbox: Sandbox
        if backend == "bwrap":
            sandbox = BwrapSandbox(where, **options)
        else:
            sandbox = DockerSandbox(where, image=image, client=client, **options)
        created.append(sandbox)
        return sandbox

    yield factory
    for sandbox in created:
        await sandbox.close()
