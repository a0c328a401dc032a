"""Choosing a backend (make_sandbox, "auto") and telling the user which ones work here (doctor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sandbox as sandbox_package
from sandbox import SandboxError, doctor, make_sandbox
from sandbox.bwrap import BwrapSandbox
from tests.sandbox.conftest import bwrap_unavailable

pytestmark = pytest.mark.timeout(300)  # test_auto_prefers_docker may build the image (once, cached by hash)
needs_bwrap = pytest.mark.skipif(bwrap_unavailable() is not None, reason=str(bwrap_unavailable()))


def _refuse(kind: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SandboxError(f"no {kind} here. Fix: install {kind}.")
    return refuse


def test_unknown_kind_and_policy(workspace: Path) -> None:
    with pytest.raises(SandboxError, match="known kinds are auto, docker, bwrap, local"):
        make_sandbox("vm", workspace)
    with pytest.raises(SandboxError, match="Unknown sandbox policy 'yolo'"):
        make_sandbox("bwrap", workspace, policy="yolo")  # type: ignore[arg-type]


@needs_bwrap
async def test_bwrap_by_name_defaults_to_workspace_write(workspace: Path) -> None:
    sandbox = make_sandbox("bwrap", workspace)
    assert isinstance(sandbox, BwrapSandbox) and sandbox.policy == "workspace-write" and not sandbox.network
    await sandbox.close()


@needs_bwrap
async def test_auto_falls_back_to_bwrap(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.docker.DockerSandbox", _refuse("docker"))
    sandbox = make_sandbox("auto", workspace)
    assert isinstance(sandbox, BwrapSandbox)
    await sandbox.close()


async def test_auto_prefers_docker(workspace: Path, docker_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.docker import DockerSandbox

    monkeypatch.setattr("sandbox.docker.default_tag", lambda: docker_image)
    sandbox = make_sandbox("auto", workspace)
    assert isinstance(sandbox, DockerSandbox)
    await sandbox.close()


def test_auto_with_nothing_explains_every_way_out(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.docker.DockerSandbox", _refuse("docker"))
    monkeypatch.setattr("sandbox.bwrap.BwrapSandbox", _refuse("bubblewrap"))
    with pytest.raises(SandboxError) as caught:
        make_sandbox("auto", workspace)
    message = str(caught.value)
    assert "docker: no docker here" in message and "bwrap: no bubblewrap here" in message
    assert "pass --sandbox local" in message


def test_doctor_reports_each_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.docker.connect", _refuse("docker"))
    statuses = {status.name: status for status in doctor()}
    assert list(statuses) == ["docker", "bwrap", "local"]
    assert not statuses["docker"].works and statuses["docker"].fix == "install docker."
    assert statuses["bwrap"].works == (bwrap_unavailable() is None)
    if statuses["bwrap"].works:
        assert "limits by" in statuses["bwrap"].detail
    assert statuses["local"].works and "no isolation" in statuses["local"].detail
    assert sandbox_package.BackendStatus is type(statuses["local"])


def test_doctor_with_docker(docker_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.docker.default_tag", lambda: docker_image)
    docker = next(status for status in doctor() if status.name == "docker")
    assert docker.works, docker.detail
    assert docker_image in docker.detail and docker.fix == ""
