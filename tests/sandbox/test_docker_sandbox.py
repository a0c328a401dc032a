"""What only the docker backend has: the image, the container's life, its owner and its cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxError
from sandbox.cleanup import prune, prune_containers
from sandbox.docker import LABEL, OWNER_LABEL, WORKSPACE_LABEL, DockerSandbox
from sandbox.image import CONTENT_HASH_LABEL, build_image, content_hash
from tests.sandbox.conftest import TEST_LIMITS

pytestmark = pytest.mark.timeout(300)  # the first test to need it builds the image (once, cached by hash)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sandbox(docker_client: Any, docker_image: str, workspace: Path) -> Any:
    sandbox = DockerSandbox(workspace, client=docker_client, image=docker_image, limits=TEST_LIMITS)
    yield sandbox
    await sandbox.close()


def test_image_is_cached_by_content_hash(docker_client: Any, docker_image: str) -> None:
    started = time.monotonic()
    result = build_image(docker_client, docker_image)
    assert result.method == "cached" and time.monotonic() - started < 5
    assert docker_client.images.get(docker_image).labels[CONTENT_HASH_LABEL] == content_hash()


async def test_image_has_the_tools(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("python3 --version && git --version && gcc --version && make --version")
    assert result.exit_code == 0, result.stderr


async def test_container_is_labelled_and_limited(sandbox: DockerSandbox, docker_client: Any,
                                                 workspace: Path) -> None:
    container = docker_client.containers.get(sandbox.container_id)
    assert container.labels[LABEL] == "1"
    assert container.labels[WORKSPACE_LABEL] == str(workspace)
    assert container.labels[OWNER_LABEL].split(":")[1] == str(os.getpid())
    host = container.attrs["HostConfig"]
    assert host["PidsLimit"] == TEST_LIMITS.pids and host["Memory"] == TEST_LIMITS.memory_mb << 20
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
    assert container.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the workspace to another uid")
async def test_files_written_in_the_container_belong_to_the_host_user(docker_client: Any, docker_image: str,
                                                                      workspace: Path) -> None:
    os.chown(workspace, 4321, 4321)  # as if the host user were uid 4321
    sandbox = DockerSandbox(workspace, client=docker_client, image=docker_image, user=(4321, 4321))
    try:
        result = await sandbox.exec("id -u; echo x > made-inside; mkdir dir")
        assert result.stdout == "4321\n", result.stderr
        for path in (workspace / "made-inside", workspace / "dir"):
            assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321)
    finally:
        await sandbox.close()


async def test_close_removes_the_container(docker_client: Any, docker_image: str, workspace: Path) -> None:
    from docker.errors import NotFound

    sandbox = DockerSandbox(workspace, client=docker_client, image=docker_image)
    container_id = sandbox.container_id
    await sandbox.close()
    with pytest.raises(NotFound):
        docker_client.containers.get(container_id)


async def test_a_dead_container_is_reported_then_replaced(sandbox: DockerSandbox, docker_client: Any) -> None:
    old = sandbox.container_id
    docker_client.containers.get(old).kill()
    with pytest.raises(SandboxError, match=r"stopped.*next command starts a fresh one"):
        await sandbox.exec("true")
    result = await sandbox.exec("echo back")
    assert result.stdout == "back\n" and sandbox.container_id != old


async def test_background_processes_live_on_between_commands(sandbox: DockerSandbox) -> None:
    await sandbox.exec("nohup sleep 60 >/dev/null 2>&1 &")
    assert "sleep 60" in (await sandbox.exec("ps -eo args")).stdout


async def test_files_outside_the_workspace_are_the_containers(docker_client: Any, docker_image: str,
                                                              workspace: Path) -> None:
    sandbox = DockerSandbox(workspace, "full-access", client=docker_client, image=docker_image)
    try:
        assert b"Debian" in await sandbox.read(Path("/etc/os-release"))
        await sandbox.write(Path("/opt/note.txt"), b"in the container")
        assert (await sandbox.exec("cat /opt/note.txt")).stdout == "in the container"
        assert not Path("/opt/note.txt").exists()
        with pytest.raises(FileNotFoundError):
            await sandbox.read(Path("/no/such/file"))
    finally:
        await sandbox.close()


def test_missing_image_says_what_to_run(docker_client: Any, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxError, match=r"m3code-no-such-image:0 is missing. Fix: docker pull"):
        DockerSandbox(workspace, client=docker_client, image="m3code-no-such-image:0")
    monkeypatch.setattr("sandbox.docker.default_tag", lambda: "m3code-sandbox:not-built")
    with pytest.raises(SandboxError, match=r"is missing. Fix: run `m3code sandbox build`"):
        DockerSandbox(workspace, client=docker_client)


def test_no_daemon_says_what_to_run(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"does not answer.*Fix: start the docker daemon"):
        DockerSandbox(workspace, base_url=f"unix://{tmp_path}/no-docker.sock")


def test_prune_removes_the_container_of_a_killed_session(docker_client: Any, docker_image: str,
                                                         workspace: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from sandbox.docker import DockerSandbox; "
        f"s = DockerSandbox(Path({str(workspace)!r}), image={docker_image!r}); "
        "print(s.container_id, flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    container_id = child.stdout.readline().strip()
    assert container_id, "the child could not start a sandbox"
    os.kill(child.pid, signal.SIGKILL)  # no cleanup of its own can run
    child.wait()
    assert docker_client.containers.get(container_id).status == "running"
    assert any(name.startswith("m3code-sandbox-") for name in prune_containers(docker_client))
    assert container_id not in {c.id for c in docker_client.containers.list(all=True)}
    assert container_id not in prune(client=docker_client)


async def test_prune_keeps_live_sessions(sandbox: DockerSandbox, docker_client: Any) -> None:
    prune_containers(docker_client)
    assert docker_client.containers.get(sandbox.container_id).status == "running"


def test_ctrl_c_removes_the_container(docker_client: Any, docker_image: str, workspace: Path) -> None:
    from docker.errors import NotFound

    script = (
        "import sys; from pathlib import Path; from sandbox.docker import DockerSandbox; "
        f"s = DockerSandbox(Path({str(workspace)!r}), image={docker_image!r}); "
        "print(s.container_id, flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    container_id = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGINT)
    assert child.wait(timeout=30) != 0  # KeyboardInterrupt
    with pytest.raises(NotFound):
        docker_client.containers.get(container_id)
