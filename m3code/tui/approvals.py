"""Approvals: an action beyond the sandbox policy waits for the person (allow once, for the session, deny).

The gate wraps the agent's sandbox. Before a command runs it is classified; what the policy does not
cover (network access, writes outside the workspace, escalation) goes to `ask`, which the app answers
with a modal. The classification reads the command line, so it is a guard against accidents, not a
boundary: the isolating backends (docker, bwrap) are what keep a command in; they can call the same
`ask` when a command needs more than they allow.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.base import ExecResult, Policy, Sandbox

Answer = Literal["once", "session", "deny"]
Ask = Callable[[str, str], Awaitable[Answer]]

NETWORK = "network access"
OUTSIDE = "writing outside the workspace"
ESCALATE = "full access (root or system changes)"
ANY_WRITE = "changing files (the policy is read-only)"

_NETWORK_TOOLS = {"curl", "wget", "ssh", "scp", "rsync", "nc", "ncat", "telnet", "ftp", "sftp", "ping"}
_NETWORK_SUBCOMMANDS = {
    "git": {"clone", "fetch", "pull", "push", "ls-remote", "submodule"},
    "pip": {"install", "download"}, "pip3": {"install", "download"}, "uv": {"pip", "add", "sync"},
    "npm": {"install", "i", "ci", "publish", "add"}, "yarn": {"add", "install"}, "pnpm": {"add", "install"},
    "cargo": {"install", "fetch", "publish"}, "go": {"get", "install", "mod"},
    "apt": {"install", "update"}, "apt-get": {"install", "update"}, "docker": {"pull", "push", "login"},
    "gem": {"install"},
}
_ESCALATE = {"sudo", "su", "doas", "chown", "mount", "umount", "systemctl", "reboot", "shutdown", "mkfs"}
_WRITERS = {"rm", "mv", "cp", "tee", "touch", "mkdir", "rmdir", "chmod", "ln", "dd", "install", "truncate"}
_READ_ONLY_COMMANDS = {"ls", "cat", "head", "tail", "grep", "rg", "find", "wc", "pwd", "echo", "git", "diff",
                       "stat", "file", "which", "env", "true", "false", "test", "sort", "uniq", "cut", "tr"}
_REDIRECT = re.compile(r"(?<![0-9&<])>>?\s*([^\s;&|]+)")
_SPLIT = re.compile(r"\|\||&&|[;|&\n()]|\$\(|`")


def _words(segment: str) -> list[str]:
    try:
        return shlex.split(segment, comments=True)
    except ValueError:
        return segment.split()


def _outside(path: str, workspace: Path) -> bool:
    if path.startswith(("/dev/null", "/dev/std", "/tmp/", "/var/tmp/", "&")) or path in ("/tmp", "-"):
        return False
    if not (path.startswith(("/", "~")) or ".." in path):
        return False
    target = Path(path).expanduser()
    resolved = (workspace / target).resolve() if not target.is_absolute() else target.resolve()
    return not resolved.is_relative_to(workspace.resolve())


def classify(command: str, workspace: Path, policy: Policy) -> list[str]:
    """What a command line does beyond `policy`: a list of NETWORK, OUTSIDE, ESCALATE, ANY_WRITE."""
    if policy == "full-access":
        return []
    found: list[str] = []
    for target in _REDIRECT.findall(command):
        if _outside(target, workspace) and OUTSIDE not in found:
            found.append(OUTSIDE)
    for segment in _SPLIT.split(command):
        words = _words(segment)
        while words and "=" in words[0] and not words[0].startswith("="):
            words = words[1:]  # VAR=value prefixes
        if not words:
            continue
        program = Path(words[0]).name
        subcommands = _NETWORK_SUBCOMMANDS.get(program, set())
        if program in _NETWORK_TOOLS or any(w in subcommands for w in words[1:3]):
            found.append(NETWORK)
        if program in _ESCALATE:
            found.append(ESCALATE)
        if program in _WRITERS and any(_outside(w, workspace) for w in words[1:] if not w.startswith("-")):
            found.append(OUTSIDE)
        if policy == "read-only" and (program not in _READ_ONLY_COMMANDS or _REDIRECT.search(segment)):
            found.append(ANY_WRITE)
    return list(dict.fromkeys(found))


@dataclass
class ApprovalGate:
    """Remembers what the person allowed for the session; asks about the rest."""

    ask: Ask
    policy: Policy = "workspace-write"
    allowed: set[str] = field(default_factory=set)

    async def check(self, command: str, workspace: Path) -> tuple[str | None, list[str]]:
        """(why not, said to the model; or None) and the actions the person allowed for this command."""
        granted: list[str] = []
        for action in classify(command, workspace, self.policy):
            if action not in self.allowed:
                answer = await self.ask(action, command)
                if answer == "deny":
                    return (f"The person denied this command ({action}). Do not retry it; find another way or "
                            "ask them in your answer."), []
                if answer == "session":
                    self.allowed.add(action)
            granted.append(action)
        return None, granted

    def wrap(self, sandbox: Sandbox) -> Sandbox:
        return GatedSandbox(sandbox, self)


class GatedSandbox:
    """A sandbox whose commands pass the gate first; everything else goes straight through."""

    def __init__(self, inner: Sandbox, gate: ApprovalGate) -> None:
        self.inner = inner
        self.gate = gate
        self.workspace = inner.workspace
        self.policy = inner.policy

    async def exec(self, cmd: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                   timeout: float | None = None, on_output: Callable[[str], None] | None = None) -> ExecResult:
        refusal, granted = await self.gate.check(cmd, self.workspace)
        if refusal is not None:
            return ExecResult(exit_code=126, stdout="", stderr=refusal)
        if NETWORK in granted and getattr(self.inner, "network", True) is False:
            if getattr(self.inner, "network_per_command", False):
                # The approval is the boundary's to honour: this one command runs with the network.
                setattr(self.inner, "network", True)  # noqa: B010 - not every Sandbox has the attribute
                try:
                    return await self.inner.exec(cmd, cwd=cwd, env=env, timeout=timeout, on_output=on_output)
                finally:
                    setattr(self.inner, "network", False)  # noqa: B010
            result = await self.inner.exec(cmd, cwd=cwd, env=env, timeout=timeout, on_output=on_output)
            result.stderr += ("\n[network access was approved, but this sandbox was started without a network: "
                              "start m3code with --network to give its commands one]")
            return result
        return await self.inner.exec(cmd, cwd=cwd, env=env, timeout=timeout, on_output=on_output)

    async def read(self, path: Path) -> bytes:
        return await self.inner.read(path)

    async def write(self, path: Path, data: bytes) -> None:
        await self.inner.write(path, data)

    async def close(self) -> None:
        await self.inner.close()
