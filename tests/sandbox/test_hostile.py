"""Hostile and careless commands, on every backend: each is stopped or contained, the host is untouched,
and the next command still runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from sandbox import Sandbox
from tests.sandbox.helpers import wait_no_host_process_with

pytestmark = pytest.mark.timeout(300)  # the first docker test also builds the image (once, cached by hash)

Make = Callable[..., Sandbox]


async def assert_session_goes_on(sandbox: Sandbox) -> None:
    result = await sandbox.exec("echo still here", timeout=30)
    assert (result.exit_code, result.stdout) == (0, "still here\n"), result


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host folder outside the workspace that the sandbox could see (not under /tmp or a home)."""
    path = Path(__file__).parent / f".outside-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path)


async def test_basics_output_exit_code_cwd_and_streaming(make: Make, workspace: Path) -> None:
    sandbox = make()
    (workspace / "sub").mkdir()
    result = await sandbox.exec("echo out; echo err >&2; pwd; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, f"out\n{workspace}\n", "err\n")
    assert (await sandbox.exec("pwd", cwd=workspace / "sub")).stdout == f"{workspace}/sub\n"
    chunks: list[str] = []
    task = asyncio.create_task(sandbox.exec("echo first; sleep 2; echo second", on_output=chunks.append))
    for _ in range(100):
        if chunks:
            break
        await asyncio.sleep(0.05)
    assert chunks == ["first\n"] and not task.done()  # streamed while the command still runs
    assert (await task).stdout == "first\nsecond\n"


async def test_writes_outside_the_workspace_do_not_reach_the_host(make: Make, workspace: Path,
                                                                  outside: Path) -> None:
    sandbox = make()
    tag = uuid.uuid4().hex[:8]
    result = await sandbox.exec(
        f"touch /etc/m3code-{tag} /usr/m3code-{tag} {outside}/written; echo tmp > /tmp/m3code-{tag}; "
        f"echo var > /var/tmp/m3code-{tag}; touch {workspace}/inside"
    )
    assert "Read-only file system" in result.stderr
    for path in (Path(f"/etc/m3code-{tag}"), Path(f"/usr/m3code-{tag}"), outside / "written",
                 Path(f"/tmp/m3code-{tag}"), Path(f"/var/tmp/m3code-{tag}")):
        assert not path.exists(), path
    assert (workspace / "inside").exists()
    with pytest.raises(PermissionError, match="inside the workspace"):
        await sandbox.write(outside / "by-tool", b"x")
    await assert_session_goes_on(sandbox)


async def test_the_hosts_home_is_hidden(make: Make) -> None:
    secret = f"SECRET-{uuid.uuid4().hex}"
    home = Path.home()
    planted = home / f".m3code-test-secret-{uuid.uuid4().hex[:8]}"
    planted.write_text(secret)
    try:
        sandbox = make()
        result = await sandbox.exec(f"cat {planted}; ls -A {home}; cat ~/.m3code-test-secret-*; "
                                    "grep -rs SECRET- /root /home")
        assert secret not in result.stdout + result.stderr
        assert planted.name not in result.stdout
    finally:
        planted.unlink()
    await assert_session_goes_on(sandbox)


async def test_environment_secrets_do_not_leak(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", token)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("TERM", "xterm-test")
    sandbox = make()
    result = await sandbox.exec("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'", env={"GREETING": "hello"})
    assert token not in result.stdout
    assert "GREETING=hello" in result.stdout and "TERM=xterm-test" in result.stdout  # allow-list and caller's
    await assert_session_goes_on(sandbox)


async def test_host_sockets_are_out_of_reach(make: Make) -> None:
    sandbox = make()
    result = await sandbox.exec("ls /run /var/run 2>/dev/null; test -S /var/run/docker.sock && echo DOCKER-SOCKET")
    assert "DOCKER-SOCKET" not in result.stdout


@pytest.fixture
async def host_server() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server on the host's 127.0.0.1: its port, and the connections it got."""
    connections: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("connected")
        writer.write(b"hello from the host\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()
    await server.wait_closed()


CONNECT = (
    "python3 -c \"import socket,sys; s=socket.create_connection(('{host}', {port}), timeout=3); "
    "print(s.recv(100).decode().strip())\""
)


async def test_no_network_not_even_the_hosts_loopback(make: Make, host_server: tuple[int, list[str]]) -> None:
    port, connections = host_server
    sandbox = make()
    result = await sandbox.exec(CONNECT.format(host="127.0.0.1", port=port) + "; cat /proc/net/dev", timeout=30)
    assert "hello from the host" not in result.stdout
    assert result.stderr  # the connection failed
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines() if ":" in line]
    assert interfaces == ["lo"]
    assert connections == []
    await assert_session_goes_on(sandbox)


async def test_fork_bomb_is_contained(make: Make) -> None:
    sandbox = make()
    bomb = f"bomb{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result = await sandbox.exec(f"{bomb}() {{ {bomb} | {bomb} & }}; {bomb}; sleep 2", timeout=20)
    assert time.monotonic() - started < 25
    # A cgroup counts refused forks, and we say so; rlimits alone leave only the shell's complaint.
    by_cgroup = str(getattr(sandbox, "limit_mode", "cgroup")).startswith("cgroup")
    assert ("limit of 64 processes was reached" if by_cgroup else "Resource temporarily unavailable") in result.stderr
    assert await wait_no_host_process_with(bomb, within=10) == []
    await assert_session_goes_on(sandbox)


async def test_memory_hog_is_stopped(make: Make) -> None:
    sandbox = make()
    result = await sandbox.exec(
        "python3 -c \"chunks = []\nwhile True: chunks.append(bytearray(16 << 20))\"; echo exit=$?", timeout=60
    )
    assert "exit=0" not in result.stdout
    assert "memory limit of 256 MiB was reached" in result.stderr or "MemoryError" in result.stderr
    await assert_session_goes_on(sandbox)


async def test_endless_command_times_out_killing_grandchildren(make: Make) -> None:
    sandbox = make()
    tag = f"{int(uuid.uuid4().int % 10**6)}"
    command = (
        f"bash -c 'sleep 1001.{tag} & setsid sleep 1002.{tag} & wait' & "
        f"trap '' TERM; sleep 1003.{tag}; wait"
    )
    started = time.monotonic()
    result = await sandbox.exec(command, timeout=1)
    assert result.timed_out
    assert time.monotonic() - started < 8
    assert await wait_no_host_process_with(f".{tag}") == []
    await assert_session_goes_on(sandbox)


async def test_cancelling_exec_kills_the_command(make: Make) -> None:
    sandbox = make()
    tag = f"{int(uuid.uuid4().int % 10**6)}"
    task = asyncio.create_task(sandbox.exec(f"sleep 1004.{tag} & sleep 1005.{tag}; wait"))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_no_host_process_with(f".{tag}") == []
    await assert_session_goes_on(sandbox)


async def test_read_only_policy_is_enforced_by_the_mount(make: Make, workspace: Path) -> None:
    (workspace / "existing").write_text("keep")
    sandbox = make(policy="read-only")
    result = await sandbox.exec("echo changed > existing; touch new; cat existing")
    assert "Read-only file system" in result.stderr
    assert (workspace / "existing").read_text() == "keep" and not (workspace / "new").exists()
    with pytest.raises(PermissionError, match="read-only"):
        await sandbox.write(workspace / "new", b"x")
    assert await sandbox.read(workspace / "existing") == b"keep"


async def test_workspace_write_policy_and_tool_writes(make: Make, workspace: Path) -> None:
    sandbox = make(policy="workspace-write")
    await sandbox.write(workspace / "a" / "b.txt", b"from the tool")
    result = await sandbox.exec("cat a/b.txt; echo from the command > c.txt")
    assert result.stdout == "from the tool"
    assert (workspace / "c.txt").read_text() == "from the command\n"
    st = (workspace / "c.txt").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())  # files keep the host user as owner


async def test_private_tmp(make: Make) -> None:
    sandbox = make()
    name = f"m3code-private-{uuid.uuid4().hex[:8]}"
    result = await sandbox.exec(f"echo hi > /tmp/{name} && cat /tmp/{name}")
    assert result.stdout.startswith("hi\n")
    assert not Path("/tmp", name).exists()
