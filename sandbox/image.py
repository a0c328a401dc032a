"""The sandbox image: `m3code-sandbox:<version>`, built from sandbox/Dockerfile or, offline, with debootstrap.

Both recipes install the same Debian packages. The image carries a hash of everything that goes into it
(label CONTENT_HASH_LABEL), so a build is skipped while that hash is unchanged and redone when it changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sandbox.base import SandboxError

IMAGE_REPOSITORY = "m3code-sandbox"
PROJECT_REPOSITORY = "m3code-sandbox-project"
CONTENT_HASH_LABEL = "m3code.sandbox.content-hash"
DOCKERFILE = Path(__file__).with_name("Dockerfile")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = "debian:bookworm-slim"  # the Dockerfile's FROM: its reachability decides the recipe
PACKAGES = (
    "python3", "python3-venv", "git", "ca-certificates", "make", "gcc", "g++", "libc6-dev", "patch", "procps",
)
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What `docker import` cannot take from a root filesystem, it gets from these Dockerfile-like changes.
IMPORT_CHANGES = (f"ENV PATH={IMAGE_PATH}", "ENV LANG=C.UTF-8", 'CMD ["bash"]')
# Run in the debootstrap root before import: what the Dockerfile's RUN line removes too.
ROOTFS_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists", "var/cache/apt/archives")
DEBOOTSTRAP_TIMEOUT_S = 1200
SCRATCH_BYTES = 2 << 30  # room the root filesystem needs while it is made (about 700 MB)

Method = Literal["auto", "dockerfile", "debootstrap"]


@dataclass
class BuildResult:
    tag: str
    method: str  # "dockerfile", "debootstrap", or "cached"
    seconds: float


def default_tag() -> str:
    try:
        version = importlib.metadata.version("m3code")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return f"{IMAGE_REPOSITORY}:{version}"


def content_hash() -> str:
    """A hash of both recipes: a change to either makes a new image."""
    digest = hashlib.sha256()
    for part in (DOCKERFILE.read_text(), SUITE, BASE_IMAGE, *PACKAGES, *IMPORT_CHANGES, *ROOTFS_TRIM):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def image_hash(client: Any, tag: str) -> str | None:
    """The content hash the image `tag` was built with; None when there is no such image."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(tag)
    except ImageNotFound:
        return None
    return str((image.labels or {}).get(CONTENT_HASH_LABEL, ""))


def build_image(
    client: Any,
    tag: str | None = None,
    *,
    method: Method = "auto",
    mirror: str | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Make the sandbox image unless one with the current content hash exists (or `force`)."""
    tag = tag or default_tag()
    wanted = content_hash()
    started = time.monotonic()
    if not force and image_hash(client, tag) == wanted:
        return BuildResult(tag, "cached", 0.0)
    say = log or (lambda line: None)
    previous = _image_id(client, tag)
    if method == "auto":
        method = "dockerfile" if registry_reachable(client) else "debootstrap"
        say(f"{BASE_IMAGE} is {'' if method == 'dockerfile' else 'not '}reachable: building with {method}")
    if method == "dockerfile":
        _build_from_dockerfile(client, tag, wanted, say)
    else:
        _build_with_debootstrap(client, tag, wanted, mirror or os.environ.get("M3CODE_DEBIAN_MIRROR", DEFAULT_MIRROR),
                                say)
    if previous is not None and previous != _image_id(client, tag):
        _remove_quietly(client, previous)  # the image the tag named before: left untagged, it would only take space
    return BuildResult(tag, method, time.monotonic() - started)


def _image_id(client: Any, tag: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(tag).id)
    except ImageNotFound:
        return None


def _remove_quietly(client: Any, image_id: str) -> None:
    from docker.errors import DockerException

    with contextlib.suppress(DockerException):  # still used by a container: it stays
        client.images.remove(image_id)


def build_project_image(client: Any, dockerfile: Path, log: Callable[[str], None] | None = None) -> str:
    """A project's own Dockerfile (its folder is the build context), tagged by the Dockerfile's hash."""
    if not dockerfile.is_file():
        raise SandboxError(f"The sandbox Dockerfile {dockerfile} does not exist; fix sandbox.dockerfile in the config.")
    tag = f"{PROJECT_REPOSITORY}:{hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:16]}"
    if image_hash(client, tag) is not None:
        return tag
    stream = client.api.build(path=str(dockerfile.parent), dockerfile=dockerfile.name, tag=tag, rm=True,
                              decode=True)
    _follow_build(stream, log or (lambda line: None), f"the project's sandbox image from {dockerfile}")
    return tag


def registry_reachable(client: Any) -> bool:
    """Whether the daemon (which does the pulling, through its own proxy settings) can reach BASE_IMAGE."""
    from docker import APIClient
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        APIClient(base_url=client.api.base_url, timeout=20).inspect_distribution(BASE_IMAGE)
    except (DockerException, RequestException):
        return False
    return True


def _build_from_dockerfile(client: Any, tag: str, wanted: str, say: Callable[[str], None]) -> None:
    stream = client.api.build(
        fileobj=io.BytesIO(DOCKERFILE.read_bytes()), tag=tag, rm=True, decode=True, pull=True,
        buildargs={"PACKAGES": " ".join(PACKAGES)}, labels={CONTENT_HASH_LABEL: wanted},
    )
    _follow_build(stream, say, "the sandbox image from sandbox/Dockerfile")


def _follow_build(stream: Any, say: Callable[[str], None], what: str) -> None:
    for chunk in stream:
        if "error" in chunk:
            raise SandboxError(f"Building {what} failed: {chunk['error'].strip()}")
        line = str(chunk.get("stream", "")).strip()
        if line:
            say(line)


def _scratch_dir() -> str:
    """Where to unpack the root filesystem: a tmpfs when one has room, since dpkg's many fsyncs cost nothing there."""
    for candidate in ("/dev/shm", "/var/tmp"):
        try:
            stat = os.statvfs(candidate)
        except OSError:
            continue
        if stat.f_bavail * stat.f_frsize >= SCRATCH_BYTES:
            return candidate
    return tempfile.gettempdir()


def _build_with_debootstrap(client: Any, tag: str, wanted: str, mirror: str, say: Callable[[str], None]) -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError("Building the sandbox image offline needs debootstrap: sudo apt-get install debootstrap "
                           "(or make a registry reachable, so that sandbox/Dockerfile can be used).")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap must run as root to build the sandbox image: run `sudo m3code sandbox build`.")
    with tempfile.TemporaryDirectory(prefix="m3code-rootfs-", dir=_scratch_dir()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap {SUITE} from {mirror} with {', '.join(PACKAGES)}")
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), mirror],
            capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        if done.returncode != 0:
            log_tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise SandboxError(f"debootstrap failed (exit code {done.returncode}); is {mirror} reachable? "
                               f"Set M3CODE_DEBIAN_MIRROR to a mirror that is.\n{log_tail}")
        for part in ROOTFS_TRIM:
            for entry in (rootfs / part).glob("*"):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        say(f"importing the root filesystem as {tag}")
        repository, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            client.api.import_image(
                src=tar.stdout, repository=repository, tag=version, stream_src=True,
                changes=[*IMPORT_CHANGES, f"LABEL {CONTENT_HASH_LABEL}={wanted}"],
            )
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise SandboxError(f"tar of the root filesystem failed (exit code {tar.returncode}).")
