"""Resource limits of a sandbox, and the rlimits that enforce them where no cgroup can."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. Cgroups apply these to the whole sandbox; rlimits only per process."""

    memory_mb: int = 4096
    pids: int = 1024  # processes and threads at once
    cpus: float | None = 2.0  # cores' worth of CPU time per second; None: no cap
    cpu_seconds: int | None = None  # CPU time of any one process; None: no cap
    tmp_mb: int = 1024  # the private /tmp

    def __post_init__(self) -> None:
        for name in ("memory_mb", "pids", "tmp_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("Limits.cpus must be positive or None")
        if self.cpu_seconds is not None and self.cpu_seconds <= 0:
            raise ValueError("Limits.cpu_seconds must be positive or None")


def ulimit_prefix(limits: Limits, *, address_space: bool) -> str:
    """Shell statements that set hard rlimits for the command that follows on the same line.

    They run inside the sandbox, after its capabilities are gone, so the command cannot raise them again;
    in a user namespace the process count is that namespace's alone. Root ignores the process limit, which
    is why cgroups come first where they work. `address_space` caps virtual memory per process: only
    where no memory cgroup does better, since it also stops runtimes that reserve much more than they use.
    """
    settings = ["-c 0", f"-u {limits.pids}"]
    if address_space:
        settings.append(f"-v {limits.memory_mb * 1024}")
    if limits.cpu_seconds is not None:
        settings.append(f"-t {limits.cpu_seconds}")
    # One statement per limit: a limit the host already keeps lower must not stop the others.
    return "".join(f"ulimit {s} 2>/dev/null; " for s in settings)
