"""Per-sandbox cgroups for the bwrap backend: limits on the whole sandbox, where this user may create them.

rlimits are per process (and root ignores the process-count one), so a fork bomb or a memory hog is only
really contained by a cgroup. Root can make one in either cgroup version; other users usually cannot, and
get rlimits instead (see limits.ulimit_prefix).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sandbox.limits import Limits
from sandbox.owner import process_start

CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIX = "m3code-"
_NAME = re.compile(rf"^{NAME_PREFIX}(\d+)-(\d+|x)-[0-9a-f]+$")
V1_CONTROLLERS = ("pids", "memory", "cpu")


class CgroupUnavailable(Exception):
    """Why no cgroup could be made here (the sandbox then falls back to rlimits)."""


@dataclass
class Counters:
    oom_kills: int = 0
    fork_denials: int = 0


class Cgroup:
    """One sandbox's cgroup (version 2), or its cgroups in the version 1 hierarchies."""

    def __init__(self, dirs: dict[str, Path], version: int, limits: Limits) -> None:
        self.dirs = dirs  # controller -> directory ("" for version 2's single directory)
        self.version = version
        self.limits = limits

    @classmethod
    def create(cls, limits: Limits, root: Path = CGROUP_ROOT) -> Cgroup:
        pid = os.getpid()
        name = f"{NAME_PREFIX}{pid}-{process_start(pid) or 'x'}-{uuid.uuid4().hex[:8]}"
        if (root / "cgroup.controllers").is_file():
            return cls._create_v2(root, name, limits)
        if (root / "pids").is_dir() and (root / "memory").is_dir():
            return cls._create_v1(root, name, limits)
        raise CgroupUnavailable(f"no cgroup hierarchy with the pids and memory controllers under {root}")

    @classmethod
    def _create_v2(cls, root: Path, name: str, limits: Limits) -> Cgroup:
        available = (root / "cgroup.controllers").read_text().split()
        if not {"pids", "memory"} <= set(available):
            raise CgroupUnavailable(f"the pids and memory controllers are not available in {root}")
        for controller in ("pids", "memory", "cpu"):
            if controller in available:
                with contextlib.suppress(OSError):  # already on, or not ours to turn on
                    _write(root / "cgroup.subtree_control", f"+{controller}")
        group = cls({"": _make_dir(root / name)}, 2, limits)
        try:
            d = group.dirs[""]
            _write(d / "pids.max", str(limits.pids))
            _write(d / "memory.max", str(limits.memory_mb << 20))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to limit
                _write(d / "memory.swap.max", "0")
            if limits.cpus is not None and (d / "cpu.max").exists():
                _write(d / "cpu.max", f"{int(limits.cpus * 100_000)} 100000")
        except OSError as exc:
            group.remove()
            raise CgroupUnavailable(f"cannot set the limits of {root / name}: {exc}") from exc
        return group

    @classmethod
    def _create_v1(cls, root: Path, name: str, limits: Limits) -> Cgroup:
        dirs: dict[str, Path] = {}
        group = cls(dirs, 1, limits)
        try:
            for controller in V1_CONTROLLERS:
                if controller == "cpu" and (limits.cpus is None or not (root / "cpu").is_dir()):
                    continue
                dirs[controller] = _make_dir(root / controller / name)
            _write(dirs["pids"] / "pids.max", str(limits.pids))
            _write(dirs["memory"] / "memory.limit_in_bytes", str(limits.memory_mb << 20))
            with contextlib.suppress(OSError):  # only with swap accounting; then swap counts too
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(limits.memory_mb << 20))
            if "cpu" in dirs and limits.cpus is not None:
                _write(dirs["cpu"] / "cpu.cfs_period_us", "100000")
                _write(dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * 100_000)))
        except (OSError, CgroupUnavailable) as exc:
            group.remove()
            raise CgroupUnavailable(str(exc) if isinstance(exc, CgroupUnavailable)
                                    else f"cannot set up the cgroup {name}: {exc}") from exc
        return group

    def enter_argv(self) -> list[str]:
        """A prefix for argv that moves the process into the cgroup before it execs the rest.

        The move must happen before the sandbox starts any child: children stay where they were forked.
        """
        moves = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs.values())
        return ["/bin/sh", "-c", f'{moves} && exec "$@"', "sh"]

    def counters(self) -> Counters:
        return read_counters(self.dirs, self.version)

    def remove(self) -> None:
        for d in self.dirs.values():
            _remove_dir(d)


def read_counters(dirs: dict[str, Path], version: int) -> Counters:
    """How often the memory limit killed a process and the process limit refused a fork, so far."""
    if version == 2:
        memory_events, pids_events = dirs[""] / "memory.events", dirs[""] / "pids.events"
    else:
        memory_events, pids_events = dirs["memory"] / "memory.oom_control", dirs["pids"] / "pids.events"
    return Counters(_read_counter(memory_events, "oom_kill"), _read_counter(pids_events, "max"))


def cgroup_of(pid: int, root: Path = CGROUP_ROOT) -> tuple[dict[str, Path], int] | None:
    """The cgroup directories of a process (a container's, say) and the cgroup version; None if unreadable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    v2 = (root / "cgroup.controllers").is_file()
    dirs: dict[str, Path] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            if (controller == "") == v2 and controller in ("", "pids", "memory"):
                dirs[controller] = root / controller / path.lstrip("/") if controller else root / path.lstrip("/")
    complete = "" in dirs if v2 else {"pids", "memory"} <= set(dirs)
    return (dirs, 2 if v2 else 1) if complete and all(d.is_dir() for d in dirs.values()) else None


def prune_cgroups(root: Path = CGROUP_ROOT) -> list[str]:
    """Remove the cgroups of m3code processes that are gone (killed before they could clean up)."""
    parents = [root] if (root / "cgroup.controllers").is_file() else [root / c for c in V1_CONTROLLERS]
    removed: list[str] = []
    for parent in parents:
        with contextlib.suppress(OSError):
            for entry in parent.iterdir():
                match = _NAME.match(entry.name)
                if match is None or not entry.is_dir():
                    continue
                start = process_start(int(match[1]))
                if start is not None and match[2] in (start, "x"):
                    continue  # its owner still runs
                with contextlib.suppress(OSError):
                    _remove_dir(entry)
                    removed.append(str(entry))
    return removed


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create the cgroup {path}: {exc.strerror}") from exc
    return path


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _read_counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


def _remove_dir(path: Path, within: float = 2.0) -> None:
    """rmdir a cgroup, first killing what is left in it (a sandbox's processes die with it anyway)."""
    deadline = time.monotonic() + within
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
        with contextlib.suppress(OSError, ValueError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
