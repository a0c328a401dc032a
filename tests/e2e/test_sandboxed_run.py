"""The foundation's end-to-end job, with commands in a real sandbox: bubblewrap, and docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import call, events, m3code, session_dirs
from tests.e2e.test_run import FIX_SCRIPT
from tests.sandbox.conftest import bwrap_unavailable


def run_fix(repo: Path, server: Any, *sandbox_args: str) -> None:
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, *sandbox_args, cwd=repo,
                    timeout=180)
    assert result.returncode == 0, result.stderr
    assert "title.lower()" in (repo / "textkit" / "slug.py").read_text()
    results = {e["call_id"]: e for e in events(session_dirs(repo)[0]) if e["type"] == "tool_result"}
    assert "FAILED" in results["c3"]["output"] and "OK" in results["c5"]["output"]


@pytest.mark.skipif(bwrap_unavailable() is not None, reason=str(bwrap_unavailable()))
def test_run_in_bwrap(demo_repo: Path, scripted_server) -> None:
    run_fix(demo_repo, scripted_server(FIX_SCRIPT), "--sandbox", "bwrap")


def test_run_in_docker(demo_repo: Path, scripted_server, docker_image: str) -> None:
    (demo_repo / ".m3code").mkdir(exist_ok=True)
    (demo_repo / ".m3code" / "config.toml").write_text(f'sandbox_image = "{docker_image}"\n')
    run_fix(demo_repo, scripted_server(FIX_SCRIPT), "--sandbox", "docker")


@pytest.mark.skipif(bwrap_unavailable() is not None, reason=str(bwrap_unavailable()))
def test_hostile_command_is_contained_and_the_session_goes_on(demo_repo: Path, scripted_server,
                                                              tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    host = scripted_server({"turns": []})  # a server on the host's 127.0.0.1, out of the sandbox's reach
    probe = f"import urllib.request as u; print(u.urlopen('{host.url}/health').status)"
    server = scripted_server({"turns": [
        {"tool_calls": [call("h1", "bash", command=f"echo pwned > {outside}; python3 -c \"{probe}\"")]},
        {"tool_calls": [call("h2", "write", path=str(outside), content="pwned")]},
        {"content": "Tried."},
    ]})
    result = m3code("run", "TASK.md", "--solo", "--base-url", server.openai_base_url, "--sandbox", "bwrap",
                    cwd=demo_repo)
    assert result.returncode == 0, result.stderr
    assert not outside.exists()  # written, if at all, inside the sandbox only
    results = {e["call_id"]: e for e in events(session_dirs(demo_repo)[0]) if e["type"] == "tool_result"}
    assert results["h1"]["is_error"] and "URLError" in results["h1"]["output"]  # no network, not even loopback
    assert results["h2"]["is_error"] and "outside the workspace" in results["h2"]["output"]
