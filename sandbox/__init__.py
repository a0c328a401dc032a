"""Where commands run: one protocol, several backends (local for now; docker and bwrap to come)."""

from sandbox.base import ExecResult, Sandbox, SandboxError

__all__ = ["ExecResult", "Sandbox", "SandboxError"]
