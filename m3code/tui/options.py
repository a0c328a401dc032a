"""What `m3code` (the app) is started with: the same flags, environment and config as `m3code run`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AppOptions:
    workspace: Path = Path(".")
    flags: dict[str, Any] = field(default_factory=dict)  # as `m3code run` passes them; None = not given
    resume: str | None = None
    environ: dict[str, str] | None = None
    history_file: Path | None = None  # tests keep their history apart
    theme: str | None = None  # a Textual theme name; default from M3CODE_THEME, else from the terminal


def terminal_is_light(environ: Mapping[str, str] | None = None) -> bool:
    """COLORFGBG ("fg;bg", set by many terminals) says whether the background is light."""
    value = (environ if environ is not None else os.environ).get("COLORFGBG", "")
    bg = value.split(";")[-1]
    return bg.isdigit() and int(bg) in (7, 15)


def default_theme(environ: Mapping[str, str] | None = None) -> str:
    env = environ if environ is not None else os.environ
    return env.get("M3CODE_THEME") or ("textual-light" if terminal_is_light(env) else "textual-dark")
