"""The docker backend: one container per session, one `docker exec` per command.

The container runs `sleep infinity` under docker's init as the host user's uid:gid (files written in the
workspace keep their owner), with the workspace bind-mounted at its real path (read-only under the
read-only policy), the rest of its filesystem read-only but for a private /tmp (writable under
full-access), no capabilities, no network unless asked, and memory, CPU and process limits. Only an
allow-list of the host's environment reaches commands. Background processes live on until the session ends.

Containers carry labels naming their owner process, so that `m3code sandbox prune` (and every new docker
sandbox) removes those of sessions that died without cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import tarfile
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from sandbox.base import ExecResult, Policy, SandboxError
from sandbox.cgroups import Counters, cgroup_of, read_counters
from sandbox.env import sandbox_env
from sandbox.image import IMAGE_PATH, build_project_image, default_tag
from sandbox.limits import Limits
from sandbox.output import StreamCollector
from sandbox.process import DRAIN_GRACE_S, OUTPUT_CAP_BYTES, add_note
from sandbox.process_group import KILL_GRACE_S
from sandbox.sweep import CONTAINER_SWEEP, EXEC_MARKER, host_sweep
from sandbox.writes import atomic_write, check_writable

LABEL = "m3code.sandbox"
OWNER_LABEL = "m3code.owner"
WORKSPACE_LABEL = "m3code.workspace"
# The image has its own PATH and locales: of the host's variables only these make sense inside.
DOCKER_ENV_ALLOWLIST = frozenset({"TERM", "COLORTERM", "NO_COLOR", "TZ", "USER", "LOGNAME"})
START_HINT = "start the docker daemon (sudo systemctl start docker, or sudo dockerd &), or use --sandbox bwrap"
BUILD_HINT = "run `m3code sandbox build`"



def connect(base_url: str | None = None, timeout: int = 120) -> Any:
    """A docker client whose daemon answers; SandboxError with the fix when there is none."""
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(
            timeout=timeout)
        client.ping()
    except (DockerException, RequestException) as exc:
        fix = START_HINT
        if "permission denied" in str(exc).lower():
            fix = ("let your user use docker (sudo usermod -aG docker $USER, then log in again), "
                   "or use --sandbox bwrap")
        raise SandboxError(f"The docker daemon does not answer at {where}: {_short(exc)}. Fix: {fix}.") from exc
    return client


class DockerSandbox:
    """Runs `bash -c` by `docker exec` in the session's container; the workspace is read and written directly."""

    def __init__(
        self,
        workspace: Path,
        policy: Policy = "workspace-write",
        *,
        network: bool = False,
        limits: Limits | None = None,
        env_allow: Iterable[str] = (),
        image: str | None = None,
        dockerfile: Path | None = None,
        client: Any = None,
        base_url: str | None = None,
        user: tuple[int, int] | None = None,
    ) -> None:
        if not workspace.is_dir():
            raise SandboxError(f"The workspace {workspace} is not a directory; create it or choose another.")
        self.workspace = workspace.resolve()
        self.policy: Policy = policy
        self.network = network
        self.limits = limits or Limits()
        self._env_allow = tuple(env_allow)
        self._client = client if client is not None else connect(base_url)
        self._uid, self._gid = user if user is not None else (os.getuid(), os.getgid())
        self.image = self._resolve_image(image, dockerfile)
        from sandbox.cleanup import prune_containers

        prune_containers(self._client)  # leftovers of sessions that were killed
        self._container: Any = None
        self._cgroup: tuple[dict[str, Path], int] | None = None
        self._owned: list[str] = []  # ids of our containers still to remove, also at exit (finalizer)
        self._finalizer = weakref.finalize(self, _remove_containers, self._client, self._owned)
        self._start()

    @property
    def container_id(self) -> str | None:
        return None if self._container is None else str(self._container.id)

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
        if not workdir.is_relative_to(self.workspace) or not workdir.is_dir():
            raise SandboxError(f"The working directory {workdir} is not a folder of the workspace {self.workspace}.")
        if self._container is None:
            if not self._finalizer.alive:
                raise SandboxError("This docker sandbox was closed; make a new one.")
            await asyncio.to_thread(self._start)
        marker = uuid.uuid4().hex
        environment = {**self._env(env), EXEC_MARKER: marker}
        before = self._counters()
        exec_id, sock = await asyncio.to_thread(self._exec_start, ["bash", "-c", cmd], str(workdir), environment)
        out, err = StreamCollector(OUTPUT_CAP_BYTES, on_output), StreamCollector(OUTPUT_CAP_BYTES, on_output)
        reader = asyncio.ensure_future(_pump(sock, out, err))
        timed_out = False
        try:
            try:
                await asyncio.wait_for(asyncio.shield(reader), timeout)
            except TimeoutError:
                timed_out = True
                await self._stop_command(exec_id, marker)
                await asyncio.wait([reader], timeout=DRAIN_GRACE_S)
            info = await self._finished(exec_id)
        except BaseException as exc:
            # Cancelled (or failed) while the command runs: it must not outlive us.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stop_command(exec_id, marker))
            if isinstance(exc, _daemon_errors()):
                raise SandboxError(f"Lost the docker daemon during the command: {_short(exc)}. Fix: {START_HINT}."
                                   ) from exc
            raise
        finally:
            reader.cancel()
            _close(sock)
        code = info.get("ExitCode")
        result = ExecResult(
            exit_code=code if isinstance(code, int) else 137, stdout=out.text(), stderr=err.text(),
            timed_out=timed_out, truncated=out.truncated or err.truncated,
        )
        if self._note_limits(result, before):
            # A fork bomb's processes outlive the shell that started them and would starve every later command.
            await self._signal_command(signal.SIGKILL, marker)
            add_note(result, "[the processes this command left running were killed]")
        return result

    async def read(self, path: Path) -> bytes:
        if path.resolve().is_relative_to(self.workspace):
            return await asyncio.to_thread(path.read_bytes)
        return await asyncio.to_thread(self._read_from_container, path)

    async def write(self, path: Path, data: bytes) -> None:
        check_writable(self.policy, self.workspace, path)
        if path.resolve().is_relative_to(self.workspace):
            await asyncio.to_thread(atomic_write, path, data)
        else:
            await asyncio.to_thread(self._write_to_container, path, data)

    async def close(self) -> None:
        await asyncio.to_thread(self._finalizer)
        self._container = None

    # -- the container --

    def _resolve_image(self, image: str | None, dockerfile: Path | None) -> str:
        from docker.errors import ImageNotFound

        if dockerfile is not None:
            return build_project_image(self._client, dockerfile)
        name = image or default_tag()
        try:
            self._client.images.get(name)
        except ImageNotFound:
            fix = BUILD_HINT if image is None else f"docker pull {name}, or fix sandbox.image in the config"
            raise SandboxError(f"The sandbox image {name} is missing. Fix: {fix}.") from None
        return name

    def _start(self) -> None:
        from docker.errors import DockerException
        from docker.types import Mount, Ulimit
        from requests.exceptions import RequestException

        from sandbox.owner import owner_tag

        ulimits = [Ulimit(name="core", soft=0, hard=0)]
        if self.limits.cpu_seconds is not None:
            ulimits.append(Ulimit(name="cpu", soft=self.limits.cpu_seconds, hard=self.limits.cpu_seconds))
        try:
            container = self._client.containers.run(
                self.image, ["sleep", "infinity"], detach=True, init=True,
                name=f"m3code-sandbox-{uuid.uuid4().hex[:12]}", hostname="m3code-sandbox",
                labels={LABEL: "1", OWNER_LABEL: owner_tag(), WORKSPACE_LABEL: str(self.workspace)},
                user=f"{self._uid}:{self._gid}", working_dir=str(self.workspace),
                mounts=[Mount(str(self.workspace), str(self.workspace), type="bind",
                              read_only=self.policy == "read-only")],
                network_mode="bridge" if self.network else "none",
                read_only=self.policy != "full-access",
                tmpfs={"/tmp": f"rw,exec,nosuid,size={self.limits.tmp_mb}m,mode=1777"},
                mem_limit=f"{self.limits.memory_mb}m", memswap_limit=f"{self.limits.memory_mb}m",
                pids_limit=self.limits.pids,
                nano_cpus=int(self.limits.cpus * 1e9) if self.limits.cpus is not None else None,
                cap_drop=["ALL"], security_opt=["no-new-privileges"], ulimits=ulimits,
                environment={"HOME": "/tmp"},
            )
        except (DockerException, RequestException) as exc:
            raise SandboxError(f"Docker could not start the sandbox container from {self.image}: {_short(exc)}. "
                               "Fix: check `docker info`; if the image is broken, run `m3code sandbox build --force`."
                               ) from exc
        self._container = container
        self._owned.append(container.id)
        with contextlib.suppress(DockerException, RequestException):
            container.reload()
            self._cgroup = cgroup_of(int(container.attrs["State"]["Pid"]))  # None where the daemon is remote

    def _exec_start(self, argv: list[str], workdir: str, environment: dict[str, str]) -> tuple[str, Any]:
        from docker.errors import APIError, NotFound
        from requests.exceptions import RequestException

        api = self._client.api
        try:
            exec_id = api.exec_create(self._container.id, argv, workdir=workdir, environment=environment)["Id"]
            return exec_id, api.exec_start(exec_id, socket=True)
        except NotFound:
            self._lost("was removed (by `docker rm` or `m3code sandbox prune --all`?)")
        except APIError as exc:
            state = self._state()
            if state is not None and not state.get("Running", False):
                why = "was killed for using too much memory" if state.get("OOMKilled") else "stopped"
                self._lost(f"{why} (exit code {state.get('ExitCode')})")
            raise SandboxError(f"docker exec failed: {_short(exc)}") from exc
        except RequestException as exc:
            raise SandboxError(f"The docker daemon stopped answering: {_short(exc)}. Fix: {START_HINT}.") from exc

    def _state(self) -> dict[str, Any] | None:
        with contextlib.suppress(Exception):
            self._container.reload()
            return dict(self._container.attrs["State"])
        return None

    def _lost(self, what: str) -> NoReturn:
        name = self._container.name
        with contextlib.suppress(Exception):
            self._container.remove(force=True)
        self._container = None
        raise SandboxError(
            f"The sandbox container {name} {what}; the next command starts a fresh one (the workspace is kept, "
            f"installed packages and /tmp are not). If it happens again, see `docker events` and `docker info`."
        )

    def _env(self, overrides: Mapping[str, str] | None) -> dict[str, str]:
        fixed = {"HOME": "/tmp", "PATH": IMAGE_PATH, "LANG": "C.UTF-8", "TMPDIR": "/tmp", "SHELL": "/bin/bash"}
        return sandbox_env(os.environ, base=DOCKER_ENV_ALLOWLIST, allow=self._env_allow, fixed=fixed,
                           overrides=overrides)

    # -- one command --

    async def _finished(self, exec_id: str) -> dict[str, Any]:
        """The exec's inspect data once it no longer runs (its stream can end a moment before)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * KILL_GRACE_S
        while True:
            info: dict[str, Any] = await asyncio.to_thread(self._client.api.exec_inspect, exec_id)
            if not info.get("Running") or loop.time() > deadline:
                return info
            await asyncio.sleep(0.02)

    async def _stop_command(self, exec_id: str, marker: str) -> None:
        """SIGTERM every process of the command, and SIGKILL what is left after the grace period."""
        await self._signal_command(signal.SIGTERM, marker)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_GRACE_S
        info = await asyncio.to_thread(self._client.api.exec_inspect, exec_id)
        while info.get("Running") and loop.time() < deadline:
            await asyncio.sleep(0.05)
            info = await asyncio.to_thread(self._client.api.exec_inspect, exec_id)
        if not await self._signal_command(signal.SIGKILL, marker) and info.get("Running"):
            # No process could be started to sweep and the command still runs: start over.
            with contextlib.suppress(SandboxError):
                self._lost("could not stop a timed-out command, so it was removed")

    async def _signal_command(self, sig: int, marker: str) -> bool:
        """Signal the command's processes (SIGKILL: until none is left); False when that was impossible."""
        if self._container is None:
            return True
        container_id = str(self._container.id)
        if self._cgroup is not None:  # this host runs the container: no docker exec needed
            for _ in range(50 if sig == signal.SIGKILL else 1):
                if not await asyncio.to_thread(host_sweep, container_id, marker, sig):
                    break
                await asyncio.sleep(0.02)
            return True
        return await asyncio.to_thread(self._container_sweep, signal.Signals(sig).name[3:], marker)

    def _container_sweep(self, sig: str, marker: str) -> bool:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            api = self._client.api
            for _ in range(5 if sig == "KILL" else 1):
                exec_id = api.exec_create(self._container.id, ["sh", "-c", CONTAINER_SWEEP, "sweep", sig, marker])
                api.exec_start(exec_id["Id"])
        except (DockerException, RequestException, AttributeError):
            return False
        return True

    def _counters(self) -> Counters | None:
        return read_counters(*self._cgroup) if self._cgroup is not None else None

    def _note_limits(self, result: ExecResult, before: Counters | None) -> bool:
        """Say which limits the command hit; True when it hit the process limit."""
        after = self._counters()
        if before is None or after is None:
            return False
        if after.oom_kills > before.oom_kills:
            add_note(result, f"[the sandbox's memory limit of {self.limits.memory_mb} MiB was reached: "
                             "the kernel killed a process of this command]")
        if after.fork_denials > before.fork_denials:
            add_note(result, f"[the sandbox's limit of {self.limits.pids} processes was reached: "
                             "starting more processes failed]")
            return True
        return False

    # -- files outside the workspace (only the container has them) --

    def _read_from_container(self, path: Path) -> bytes:
        # `cat` rather than the archive API: it follows symlinks and reads as the container's user.
        if self._container is None:
            self._start()
        api = self._client.api
        exec_id = api.exec_create(self._container.id, ["cat", "--", str(path)])["Id"]
        data, error = api.exec_start(exec_id, demux=True)
        if api.exec_inspect(exec_id).get("ExitCode") == 0:
            return bytes(data or b"")
        message = (error or b"").decode(errors="replace").strip()
        for text, exc_type in (("No such file", FileNotFoundError), ("Is a directory", IsADirectoryError)):
            if text in message:
                raise exc_type(message.rpartition(": ")[2] + " (in the sandbox)", str(path))
        raise PermissionError(f"Cannot read {path} in the sandbox: {message}")

    def _write_to_container(self, path: Path, data: bytes) -> None:
        if self._container is None:
            self._start()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(path.name)
            info.size, info.uid, info.gid, info.mode = len(data), self._uid, self._gid, 0o644
            tar.addfile(info, io.BytesIO(data))
        if not self._container.put_archive(str(path.parent), buffer.getvalue()):
            raise PermissionError(13, "The sandbox refused the write", str(path))


async def _pump(sock: Any, out: StreamCollector, err: StreamCollector) -> None:
    """Read docker's multiplexed stream (8-byte frame headers: stream number, size) into the collectors."""
    loop = asyncio.get_running_loop()
    raw = getattr(sock, "_sock", sock)
    if isinstance(raw, socket.socket) and type(raw) is socket.socket:  # plain unix or tcp socket, not TLS
        raw.setblocking(False)

        async def receive() -> bytes:
            return await loop.sock_recv(raw, 1 << 16)
    else:  # TLS or ssh: blocking reads in a thread, without the client's timeout (commands may be quiet)
        with contextlib.suppress(Exception):
            raw.settimeout(None)

        async def receive() -> bytes:
            return bytes(await asyncio.to_thread(sock.recv, 1 << 16))

    buffer = bytearray()
    try:
        while data := await receive():
            buffer += data
            while len(buffer) >= 8:
                size = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < 8 + size:
                    break
                (err if buffer[0] == 2 else out).data_received(bytes(buffer[8:8 + size]))
                del buffer[:8 + size]
    finally:
        out.connection_lost(None)
        err.connection_lost(None)


def _daemon_errors() -> tuple[type[BaseException], ...]:
    from docker.errors import DockerException

    return (DockerException, OSError)  # requests' errors are OSErrors


def _close(sock: Any) -> None:
    for part in (sock, getattr(sock, "_sock", None)):
        with contextlib.suppress(Exception):
            if part is not None:
                part.close()


def _remove_containers(client: Any, ids: list[str]) -> None:
    while ids:
        with contextlib.suppress(Exception):
            client.api.remove_container(ids.pop(), force=True)


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip().splitlines()[0] if str(explanation or exc).strip() else type(exc).__name__
