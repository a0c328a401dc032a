"""Removing what sandboxes of crashed sessions left behind: containers and cgroups."""

from __future__ import annotations

import contextlib
from typing import Any

from sandbox.cgroups import prune_cgroups
from sandbox.owner import owner_alive


def prune_containers(client: Any, *, all_owners: bool = False) -> list[str]:
    """Remove sandbox containers whose m3code process is gone (all of them with `all_owners`).

    Containers whose owner ran on another host (a shared remote daemon) are kept unless `all_owners`.
    """
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    from sandbox.docker import LABEL, OWNER_LABEL

    removed: list[str] = []
    try:
        containers = client.containers.list(all=True, filters={"label": LABEL})
    except (DockerException, RequestException):
        return removed
    for container in containers:
        owner = (container.labels or {}).get(OWNER_LABEL, "")
        if all_owners or owner_alive(owner) is False:
            with contextlib.suppress(DockerException, RequestException):
                container.remove(force=True)
                removed.append(str(container.name))
    return removed


def prune(*, all_owners: bool = False, client: Any = None) -> list[str]:
    """What `m3code sandbox prune` runs: leftover containers (when a docker daemon answers) and cgroups."""
    from sandbox.base import SandboxError
    from sandbox.docker import connect

    removed: list[str] = []
    if client is None:
        with contextlib.suppress(SandboxError, ImportError):
            client = connect(timeout=30)
    if client is not None:
        removed += prune_containers(client, all_owners=all_owners)
    return removed + prune_cgroups()
