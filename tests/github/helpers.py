"""Real git repositories and remotes for the GitHub tests, and the secrets they must never leak."""

from __future__ import annotations

import base64
import secrets
import subprocess
from pathlib import Path

# GitHub-shaped tokens (so the pattern masking is exercised too), fresh for each test run.
WRITE_TOKEN = "ghp_" + secrets.token_hex(18)
READ_TOKEN = "ghp_" + secrets.token_hex(18)
MODEL_KEY = "sk-model-" + secrets.token_hex(12)
OWNER, NAME = "octo", "widgets"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def bare_remote(root: Path, owner: str = OWNER, name: str = NAME) -> Path:
    """A bare repository at root/OWNER/NAME.git (the layout the fake's git-over-HTTP serves)."""
    path = root / owner / f"{name}.git"
    path.mkdir(parents=True)
    git(path, "init", "-q", "--bare", "-b", "main")
    return path


def connect(repo: Path, bare: Path, remote_url: str | None = None) -> None:
    """Publish the repository's HEAD as main of `bare`, and make `remote_url` (default: the bare path) origin."""
    git(repo, "push", "-q", str(bare), "HEAD:refs/heads/main")
    git(repo, "remote", "add", "origin", remote_url or str(bare))


def secret_forms(*values: str) -> list[str]:
    """Each secret, and the base64 basic-auth form git would send it in."""
    forms = []
    for value in values:
        forms += [value, base64.b64encode(f"x-access-token:{value}".encode()).decode()]
    return forms


def assert_no_secret(text: str, *values: str) -> None:
    for form in secret_forms(*values):
        assert form not in text, f"a secret leaked: ...{text[max(0, text.find(form) - 80):text.find(form)]}"


def protect(bare: Path, pattern: str = "refs/heads/m3code/") -> Path:
    """A pre-receive hook that refuses pushes to matching refs with GitHub's protected-branch message."""
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "while read old new ref; do\n"
        f"  case \"$ref\" in {pattern}*)\n"
        "    echo \"error: GH006: Protected branch update failed for $ref.\" >&2\n"
        "    echo 'error: Changes must be made through a pull request.' >&2\n"
        "    exit 1;;\n"
        "  esac\n"
        "done\n"
    )
    hook.chmod(0o755)
    return hook
