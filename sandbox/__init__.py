"""Where commands run: one protocol, several backends (local for now; docker and bwrap to come)."""

from pathlib import Path

from sandbox.base import ExecResult, Policy, Sandbox, SandboxError

__all__ = ["ExecResult", "Policy", "Sandbox", "SandboxError", "make_sandbox"]

SANDBOX_KINDS = ("local", "docker", "bwrap")


def make_sandbox(kind: str, workspace: Path, *, policy: Policy = "full-access") -> Sandbox:
    """The sandbox backend named `kind` for `workspace`; SandboxError says why when there is none."""
    if kind == "local":
        from sandbox.local import LocalSandbox

        return LocalSandbox(workspace, policy=policy)
    if kind in SANDBOX_KINDS:
        raise SandboxError(
            f"Cannot use the {kind} sandbox: docker and bwrap backends are not available yet; "
            "use --sandbox local."
        )
    raise SandboxError(
        f"Unknown sandbox {kind!r}; known kinds are {', '.join(SANDBOX_KINDS)}. "
        "docker and bwrap backends are not available yet; use --sandbox local."
    )
