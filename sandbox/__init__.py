"""Where commands run: one protocol, three backends (docker, bwrap, local), chosen by make_sandbox."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sandbox.base import ExecResult, Policy, Sandbox, SandboxError
from sandbox.checks import BackendStatus, doctor
from sandbox.cleanup import prune
from sandbox.limits import Limits

__all__ = [
    "POLICIES", "SANDBOX_KINDS", "BackendStatus", "ExecResult", "Limits", "Policy", "Sandbox", "SandboxError",
    "doctor", "make_sandbox", "prune",
]

SANDBOX_KINDS = ("auto", "docker", "bwrap", "local")
POLICIES: tuple[Policy, ...] = ("read-only", "workspace-write", "full-access")
LOCAL_HINT = "or, to run commands on this machine with no isolation, pass --sandbox local"


def make_sandbox(
    kind: str,
    workspace: Path,
    *,
    policy: Policy | None = None,
    network: bool = False,
    limits: Limits | None = None,
    env_allow: Iterable[str] = (),
    image: str | None = None,
    dockerfile: Path | None = None,
) -> Sandbox:
    """The sandbox backend named `kind` for `workspace`; SandboxError says why when there is none.

    `policy` defaults to workspace-write, but to full-access for local (which cannot confine commands).
    "auto" takes docker when its daemon answers and the image is there, else bwrap when it works here.
    """
    if policy is not None and policy not in POLICIES:
        raise SandboxError(f"Unknown sandbox policy {policy!r}; known policies are {', '.join(POLICIES)}.")
    if kind == "local":
        from sandbox.local import LocalSandbox

        return LocalSandbox(workspace, policy=policy or "full-access")
    chosen: Policy = policy or "workspace-write"
    if kind == "docker":
        from sandbox.docker import DockerSandbox

        return DockerSandbox(workspace, chosen, network=network, limits=limits, env_allow=env_allow, image=image,
                             dockerfile=dockerfile)
    if kind == "bwrap":
        from sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(workspace, chosen, network=network, limits=limits, env_allow=env_allow)
    if kind == "auto":
        reasons: list[str] = []
        for backend in ("docker", "bwrap"):
            try:
                return make_sandbox(backend, workspace, policy=chosen, network=network, limits=limits,
                                    env_allow=env_allow, image=image, dockerfile=dockerfile)
            except SandboxError as exc:
                if not workspace.is_dir():
                    raise
                reasons.append(f"{backend}: {exc}")
        raise SandboxError("No sandbox works here.\n" + "\n".join(f"- {r}" for r in reasons)
                           + f"\nGet either one working, {LOCAL_HINT}.")
    raise SandboxError(f"Unknown sandbox {kind!r}; known kinds are {', '.join(SANDBOX_KINDS)}.")
