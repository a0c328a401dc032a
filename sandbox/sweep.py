"""Finding a docker command's processes by a marker in their environment, to signal them all.

A command's children can leave its process group (setsid, daemons), but they keep its environment; and
scanning from the host needs no new process in a container that may be at its process limit.
"""

from __future__ import annotations

import os
from pathlib import Path

EXEC_MARKER = "M3CODE_EXEC"  # in every command's environment, with a value of its own

# The same from inside the container, where the host cannot see it: $1 the signal, $2 the marker.
CONTAINER_SWEEP = (
    'for d in /proc/[0-9]*; do [ "$d" = /proc/$$ ] && continue; '
    f'grep -qsxz "{EXEC_MARKER}=$2" "$d/environ" && kill -"$1" "${{d#/proc/}}" 2>/dev/null; done; true'
)


def host_sweep(container_id: str, marker: str, sig: int) -> int:
    """Send `sig` to every process of the container whose environment carries `marker`; how many got it."""
    needle = f"{EXEC_MARKER}={marker}".encode()
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if container_id not in (entry / "cgroup").read_text():
                continue
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), sig)
        except OSError:
            continue  # gone meanwhile, or not ours to read
        count += 1
    return count
