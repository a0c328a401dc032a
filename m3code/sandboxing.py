"""The one place settings become a sandbox, so a solo agent and every team agent get the same one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from m3code.config import Settings, repo_root
from sandbox import Limits, Sandbox, make_sandbox

SandboxFactory = Callable[[Path], Sandbox]


def sandbox_factory(settings: Settings, workspace: Path) -> SandboxFactory:
    """A function making the configured sandbox for a workspace (the repository, or a team worktree)."""
    limits = Limits(memory_mb=settings.sandbox_memory_mb, pids=settings.sandbox_pids, cpus=settings.sandbox_cpus)
    dockerfile = repo_root(workspace) / settings.sandbox_dockerfile if settings.sandbox_dockerfile else None

    def make(path: Path) -> Sandbox:
        return make_sandbox(settings.sandbox, path, policy=settings.policy, network=settings.network,
                            limits=limits, env_allow=settings.sandbox_env, image=settings.sandbox_image,
                            dockerfile=dockerfile)

    return make
