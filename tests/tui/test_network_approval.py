"""An approved network command really gets the network in a bubblewrap sandbox; a denied one never runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from m3code.tui.approvals import ApprovalGate
from sandbox.bwrap import BwrapSandbox
from tests.sandbox.conftest import bwrap_unavailable

pytestmark = pytest.mark.skipif(bwrap_unavailable() is not None, reason=str(bwrap_unavailable()))


async def test_approval_opens_the_network_for_that_command_only(tmp_path: Path, scripted_server) -> None:
    host = scripted_server({"turns": []})  # a server on the host's loopback
    answers: list[str] = []

    async def ask(action: str, detail: str) -> str:
        answers.append(action)
        return reply

    gate = ApprovalGate(ask)
    sandbox = gate.wrap(BwrapSandbox(tmp_path))
    fetch = f"curl -s -o /dev/null -w '%{{http_code}}' {host.url}/health"
    try:
        reply = "deny"
        denied = await sandbox.exec(fetch)
        assert denied.exit_code == 126 and "denied" in denied.stderr
        reply = "once"
        allowed = await sandbox.exec(fetch)
        assert allowed.stdout == "200", allowed
        # The next command, not approved, is back inside the sandbox's network namespace.
        probe = f"python3 -c \"import urllib.request as u; u.urlopen('{host.url}/health')\""
        assert (await sandbox.exec(probe)).exit_code != 0
        assert answers == ["network access", "network access"]
    finally:
        await sandbox.close()
