"""Running unattended: CI detection, the token's source, and GitHub Actions step outputs."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping, MutableMapping

# The GitHub token, in gh's order of precedence.
TOKEN_VARS = ("GH_TOKEN", "GITHUB_TOKEN")
# Runner credentials the agent's commands have no use for: withheld from them, and masked wherever they show.
RUNNER_SECRET_VARS = ("ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
SANDBOX_WORDS = {
    "local": "no isolation: commands run as this user on this machine",
    "docker": "a container per session, without network unless asked",
    "bwrap": "bubblewrap: the workspace writable, the rest read-only",
}


def ci_mode(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").lower() in ("1", "true", "yes") or environ.get("GITHUB_ACTIONS") == "true"


def take_secrets(environ: MutableMapping[str, str]) -> tuple[str | None, list[str]]:
    """Remove the token (and runner credentials) from the environment the job's commands inherit.

    Returns the token and every value removed, for masking.
    """
    token = next((environ[v] for v in TOKEN_VARS if environ.get(v)), None)
    removed = [environ.pop(v) for v in (*TOKEN_VARS, *RUNNER_SECRET_VARS) if v in environ]
    return token, removed


def hide_own_environment() -> bool:
    """Make this process's /proc files unreadable to the agent's commands; True when done.

    Taking a variable out of os.environ leaves it in /proc/<pid>/environ, which any command running as the same
    user can read. A non-dumpable process's /proc files belong to root; children are dumpable again once they
    exec. Linux only, and root still reads them: the docker sandbox is the real boundary.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def write_outputs(values: Mapping[str, str], environ: Mapping[str, str] | None = None) -> None:
    """Step outputs for the workflow (`steps.<id>.outputs.pr-url`), when running in GitHub Actions."""
    path = (os.environ if environ is None else environ).get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for key, value in values.items():
            fh.write(f"{key}={' '.join(str(value).split())}\n")
