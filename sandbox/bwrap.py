"""The bwrap backend: each command in a fresh bubblewrap sandbox, no daemon needed.

What a command sees: the host system read-only, the workspace read-write at its real path (read-only under
the read-only policy), a private /tmp, empty /home, /root, /run and $HOME (no keys, no sockets such as
docker's), its own PID, IPC, UTS and network namespaces (only loopback unless network=True), no
capabilities, and the environment's allow-list. Limits come from a cgroup per sandbox where this user may
create one, else from rlimits. Killing bwrap kills the sandbox's PID 1 and with it every process inside,
whatever process group or session they moved to; so do the death of m3code (--die-with-parent) and the end
of the command: background processes do not outlive the command that started them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import shutil
import subprocess
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sandbox.base import ExecResult, Policy, SandboxError
from sandbox.cgroups import Cgroup, CgroupUnavailable, Counters
from sandbox.env import sandbox_env
from sandbox.limits import Limits, ulimit_prefix
from sandbox.process import add_note, run_process
from sandbox.process_group import terminate_group
from sandbox.writes import atomic_write, check_writable

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install bubblewrap)"
)
USERNS_HINT = (
    "bwrap needs user namespaces when not run as root: enable them (Debian: sudo sysctl "
    "kernel.unprivileged_userns_clone=1; Ubuntu 24.04+: sudo sysctl "
    "kernel.apparmor_restrict_unprivileged_userns=0; in a container: run it with --privileged or a seccomp "
    "profile that allows unshare), or use --sandbox docker"
)
PRIVATE_DIRS = ("/tmp", "/var/tmp")  # empty and writable per command
HIDDEN_DIRS = ("/home", "/root", "/run")  # other users' files, keys, and sockets such as docker.sock


class BwrapSandbox:
    """Runs `bash -c` in a bubblewrap sandbox per command; reads and writes the workspace directly."""

    # Each command gets fresh namespaces, so `network` may change between commands (an approved escalation).
    network_per_command = True

    def __init__(
        self,
        workspace: Path,
        policy: Policy = "workspace-write",
        *,
        network: bool = False,
        limits: Limits | None = None,
        env_allow: Iterable[str] = (),
        bwrap: str = "bwrap",
        use_cgroup: bool = True,
    ) -> None:
        if not workspace.is_dir():
            raise SandboxError(f"The workspace {workspace} is not a directory; create it or choose another.")
        self.workspace = workspace.resolve()
        self.policy: Policy = policy
        self.network = network
        self.limits = limits or Limits()
        self._env_allow = tuple(env_allow)
        self._bwrap = _find(bwrap, f"bubblewrap ({bwrap}) was not found. Fix: {INSTALL_HINT}, or use --sandbox docker.")
        self._bash = _find("bash", "bash was not found on this machine; the bwrap sandbox runs commands with it.")
        self._home = Path(os.environ.get("HOME") or Path.home()).resolve()
        self._running: set[asyncio.subprocess.Process] = set()
        self._cgroup: Cgroup | None = None
        self.limit_mode = "rlimits (per process)"
        if use_cgroup:
            try:
                self._cgroup = Cgroup.create(self.limits)
                self.limit_mode = f"cgroup v{self._cgroup.version}"
                # Also on exit without close(); `m3code sandbox prune` handles a crash.
                self._finalizer = weakref.finalize(self, self._cgroup.remove)
            except CgroupUnavailable as exc:
                self.limit_mode += f": {exc}"
        try:
            self._probe()
        except SandboxError:
            if self._cgroup is not None:
                self._finalizer()
            raise

    async def exec(
        self,
        cmd: str,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> ExecResult:
        workdir = (cwd if cwd is not None else self.workspace).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"The working directory {workdir} does not exist.")
        if not self._visible(workdir):
            raise SandboxError(f"The working directory {workdir} is hidden inside the sandbox; use the workspace.")
        before = self._cgroup.counters() if self._cgroup else Counters()
        result = await run_process(
            self._argv(cmd, workdir), cwd=Path("/"), env=self._env(env), timeout=timeout, on_output=on_output,
            running=self._running, missing_hint=f"bubblewrap ({self._bwrap}) is gone. Fix: {INSTALL_HINT}.",
        )
        if self._cgroup:
            after = self._cgroup.counters()
            if after.oom_kills > before.oom_kills:
                add_note(result, f"[the sandbox's memory limit of {self.limits.memory_mb} MiB was reached: "
                                 "the kernel killed a process of this command]")
            if after.fork_denials > before.fork_denials:
                add_note(result, f"[the sandbox's limit of {self.limits.pids} processes was reached: "
                                 "starting more processes failed]")
        return result

    async def read(self, path: Path) -> bytes:
        self._check_visible(path)
        return await asyncio.to_thread(path.read_bytes)

    async def write(self, path: Path, data: bytes) -> None:
        check_writable(self.policy, self.workspace, path)
        self._check_visible(path)
        await asyncio.to_thread(atomic_write, path, data)

    async def close(self) -> None:
        for proc in list(self._running):
            await terminate_group(proc)
        if self._cgroup is not None:
            await asyncio.to_thread(self._finalizer)

    # -- the command line --

    def _argv(self, cmd: str, workdir: Path) -> list[str]:
        prefix = self._cgroup.enter_argv() if self._cgroup else []
        address_space = self._cgroup is None  # a memory cgroup does this better
        script = ulimit_prefix(self.limits, address_space=address_space) + cmd
        return [*prefix, self._bwrap, *self._options(workdir), "--", self._bash, "-c", script]

    def _options(self, workdir: Path) -> list[str]:
        opts = [
            "--die-with-parent", "--cap-drop", "ALL", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "m3code-sandbox",
        ]
        if not self.network:
            opts.append("--unshare-net")
        opts += ["--bind" if self.policy == "full-access" else "--ro-bind", "/", "/"]
        opts += ["--dev", "/dev", "--proc", "/proc"]
        for d in PRIVATE_DIRS:
            if os.path.isdir(d) and not os.path.islink(d):
                opts += [*self._size_option(), "--tmpfs", d]
        if self.policy != "full-access":
            opts += self._hide_options()
        opts += ["--ro-bind" if self.policy == "read-only" else "--bind", str(self.workspace), str(self.workspace)]
        opts += ["--chdir", str(workdir)]
        return opts

    def _hide_options(self) -> list[str]:
        opts: list[str] = []
        hidden = [d for d in HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d)]
        for d in hidden:
            opts += ["--tmpfs", d]
        home = str(self._home)
        if home != "/":
            # An empty home, so that tools that write dotfiles there still work.
            opts += ["--dir", home] if _under(home, hidden) else ["--tmpfs", home]
        if self.network:
            # DNS often goes through a file under /run (systemd-resolved's stub); give back only that.
            resolv = os.path.realpath("/etc/resolv.conf")
            if _under(resolv, hidden):
                opts += ["--ro-bind-try", resolv, resolv]
        return opts

    def _size_option(self) -> list[str]:
        return ["--size", str(self.limits.tmp_mb << 20)] if _supports_size(self._bwrap) else []

    def _env(self, overrides: Mapping[str, str] | None) -> dict[str, str]:
        fixed = {"HOME": str(self._home), "SHELL": self._bash, "TMPDIR": "/tmp"}
        return sandbox_env(os.environ, allow=self._env_allow, fixed=fixed, overrides=overrides)

    # -- what the sandbox can see --

    def _visible(self, path: Path) -> bool:
        """Whether `path` (resolved) is the same file inside the sandbox as on the host."""
        resolved = str(path.resolve())
        if _under(resolved, [str(self.workspace)]):
            return True
        if self.policy == "full-access":
            return not _under(resolved, PRIVATE_DIRS)
        return not _under(resolved, [*PRIVATE_DIRS, *HIDDEN_DIRS, str(self._home)])

    def _check_visible(self, path: Path) -> None:
        if not self._visible(path):
            raise PermissionError(errno.EACCES, "The sandbox hides this path from commands (home folders, "
                                  "/run, /tmp); use a path in the workspace", str(path))

    def _probe(self) -> None:
        """Run `true` once, so that a bwrap that cannot work here fails now, with the reason and the fix."""
        argv = self._argv("true", self.workspace)
        try:
            done = subprocess.run(argv, env=self._env(None), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(
                f"bubblewrap could not start: {exc}. Fix: {INSTALL_HINT}, or use --sandbox docker."
            ) from exc
        if done.returncode != 0:
            message = done.stderr.strip() or f"exit code {done.returncode}"
            raise SandboxError(f"bubblewrap cannot create a sandbox here: {message}. {probe_fix(message)}")


def probe_fix(message: str) -> str:
    """The fix for a bwrap failure, from its message."""
    lowered = message.lower()
    if any(s in lowered for s in ("namespace", "not permitted", "uid map", "permission denied")):
        return f"Fix: {USERNS_HINT}."
    return "Fix: check that `bwrap --ro-bind / / true` works, reinstall bubblewrap, or use --sandbox docker."


def _find(program: str, hint: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise SandboxError(hint)
    return found


def _under(path: str, parents: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


@functools.cache
def _supports_size(bwrap: str) -> bool:
    # --size (for --tmpfs) came with bubblewrap 0.8; older ones refuse the whole command line.
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in text
