"""Fixtures shared by every suite: an isolated home, git identity, and scripted model servers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from m3code.replay.script import Script
from m3code.replay.server import ScriptedModelServer
from sandbox import SandboxError

DEMO_REPO = Path(__file__).resolve().parent.parent / "m3code" / "demo" / "repo"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config or keys, and git commits work on a bare machine."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # The harness's own tests run commands with the local backend; tests/sandbox and the sandboxed
    # end-to-end tests name docker and bwrap explicitly.
    (home / ".config" / "m3code").mkdir(parents=True)
    (home / ".config" / "m3code" / "config.toml").write_text('sandbox = "local"\n')
    for var in ("MINIMAX_API_KEY", "M3CODE_API_KEY", "M3CODE_BASE_URL", "M3CODE_MODEL", "M3CODE_API_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (("GIT_AUTHOR_NAME", "Test"), ("GIT_AUTHOR_EMAIL", "test@m3code.invalid"),
                       ("GIT_COMMITTER_NAME", "Test"), ("GIT_COMMITTER_EMAIL", "test@m3code.invalid")):
        monkeypatch.setenv(var, value)


# The docker daemon and the sandbox image, shared by tests/sandbox and the sandboxed end-to-end tests.
@pytest.fixture(scope="session")
def docker_client() -> Any:
    from sandbox.docker import connect

    try:
        return connect(timeout=600)
    except SandboxError as exc:
        pytest.skip(f"no docker daemon: {exc}")


@pytest.fixture(scope="session")
def docker_image(docker_client: Any) -> str:
    """The sandbox image, built once per run at most: not at all while its content hash is unchanged."""
    from sandbox.image import build_image

    try:
        return build_image(docker_client).tag
    except SandboxError as exc:
        pytest.skip(f"cannot build the sandbox image here: {exc}")


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedModelServer]]:
    """Start a scripted model server on 127.0.0.1 from a script dict; all are stopped after the test."""
    started: list[ScriptedModelServer] = []

    def start(script: dict[str, Any], **kwargs: Any) -> ScriptedModelServer:
        server = ScriptedModelServer(Script.model_validate(script), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    """A git repository holding the demo project (a small package with a failing test)."""
    repo = tmp_path / "repo"
    shutil.copytree(DEMO_REPO, repo)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True)
    return repo
