"""The local sandbox: real bash, real files."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from sandbox import SandboxError, make_sandbox, process_group
from sandbox.local import OUTPUT_CAP_BYTES, LocalSandbox
from sandbox.output import CappedBytes
from tests.sandbox.helpers import wait_process_gone


@pytest.fixture
def sandbox(tmp_path: Path) -> LocalSandbox:
    return LocalSandbox(tmp_path)


async def test_exec_reports_output_and_exit_code(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.timed_out and not result.truncated


async def test_exec_cwd_env_and_stdin(sandbox: LocalSandbox, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = await sandbox.exec("pwd; echo $GREETING; cat", env={"GREETING": "hello"})
    assert result.stdout.splitlines() == [str(tmp_path.resolve()), "hello"]  # cat read /dev/null: no wait
    result = await sandbox.exec("pwd", cwd=tmp_path / "sub")
    assert result.stdout.strip() == str(tmp_path / "sub")
    assert "PATH" in os.environ and (await sandbox.exec("echo $PATH")).stdout.strip() == os.environ["PATH"]


async def test_exec_streams_output_as_it_arrives(sandbox: LocalSandbox) -> None:
    chunks: list[str] = []
    seen_before_exit: list[str] = []

    def on_output(text: str) -> None:
        chunks.append(text)

    task = asyncio.create_task(sandbox.exec("echo first; sleep 0.5; echo second", on_output=on_output))
    await asyncio.sleep(0.3)
    seen_before_exit.extend(chunks)
    result = await task
    assert seen_before_exit == ["first\n"]
    assert "".join(chunks) == result.stdout == "first\nsecond\n"


async def test_failing_output_callback_does_not_lose_output(sandbox: LocalSandbox) -> None:
    def broken(text: str) -> None:
        raise RuntimeError("display is gone")

    result = await sandbox.exec("echo a; echo b", on_output=broken)
    assert result.stdout == "a\nb\n"


async def test_timeout_kills_the_whole_process_group(sandbox: LocalSandbox, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    result = await sandbox.exec(f"echo started; sleep 60 & echo $! > {pid_file}; wait", timeout=0.5)
    assert time.monotonic() - started < 5
    assert result.timed_out
    assert result.stdout == "started\n"
    assert await wait_process_gone(int(pid_file.read_text()))


async def test_timeout_escalates_to_sigkill(
    sandbox: LocalSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_group, "KILL_GRACE_S", 0.3)
    pid_file = tmp_path / "stubborn.pid"
    command = f"bash -c 'trap \"\" TERM; echo $$ > {pid_file}; while true; do sleep 0.1; done' & wait"
    result = await sandbox.exec(command, timeout=0.5)
    assert result.timed_out
    assert await wait_process_gone(int(pid_file.read_text()))


async def test_cancelling_exec_kills_the_process_group(sandbox: LocalSandbox, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    task = asyncio.create_task(sandbox.exec(f"sleep 60 & echo $! > {pid_file}; wait"))
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_process_gone(int(pid_file.read_text()))


async def test_background_child_holding_output_does_not_block(sandbox: LocalSandbox, tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    started = time.monotonic()
    result = await sandbox.exec(f"sleep 30 & echo $! > {pid_file}; echo done")
    assert time.monotonic() - started < 5
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert "stopped reading output" in result.stderr
    os.kill(int(pid_file.read_text()), 9)


async def test_output_kept_in_memory_is_capped(sandbox: LocalSandbox) -> None:
    size = 3 * OUTPUT_CAP_BYTES
    result = await sandbox.exec(f"head -c {size} /dev/zero | tr '\\0' a; echo; echo THE END")
    assert result.truncated
    assert len(result.stdout) < OUTPUT_CAP_BYTES + 200
    assert result.stdout.startswith("aaaa") and result.stdout.endswith("THE END\n")
    total = size + len("\nTHE END\n")
    assert f"{total - OUTPUT_CAP_BYTES} bytes of output dropped" in result.stdout


def test_capped_bytes_keeps_head_and_tail_without_splitting_characters() -> None:
    buffer = CappedBytes(10)
    for chunk in (b"0123", b"4567", "é".encode() * 4):
        buffer.add(chunk)
    assert buffer.dropped == 6
    text = buffer.text()
    assert text.startswith("01234\n") and text.endswith("éé")
    assert "\ufffd" not in text


async def test_write_is_atomic_creates_parents_and_keeps_mode(sandbox: LocalSandbox, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "script.sh"
    await sandbox.write(target, b"#!/bin/sh\n")
    assert await sandbox.read(target) == b"#!/bin/sh\n"
    target.chmod(0o751)
    await sandbox.write(target, b"echo hi\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    assert target.read_bytes() == b"echo hi\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["script.sh"]  # no temporary file left


async def test_write_through_symlink_keeps_the_link(sandbox: LocalSandbox, tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    await sandbox.write(link, b"new")
    assert link.is_symlink() and real.read_text() == "new"


async def test_policies_guard_writes(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(PermissionError, match="read-only"):
        await LocalSandbox(workspace, policy="read-only").write(workspace / "x", b"")
    writer = LocalSandbox(workspace, policy="workspace-write")
    await writer.write(workspace / "x", b"ok")
    with pytest.raises(PermissionError, match="inside the workspace"):
        await writer.write(tmp_path / "outside", b"")


def test_make_sandbox_local(tmp_path: Path) -> None:
    sandbox = make_sandbox("local", tmp_path)
    assert isinstance(sandbox, LocalSandbox) and sandbox.policy == "full-access"
    with pytest.raises(SandboxError, match="Unknown sandbox 'firecracker'"):
        make_sandbox("firecracker", tmp_path)
    with pytest.raises(SandboxError, match="not a directory"):
        make_sandbox("local", tmp_path / "missing")
