"""Settings, layered: defaults < user file < repository file < environment < command-line flags.

Every effective value remembers where it came from, so `m3code config show` can say so, and a bad file
gets an error naming the file, the line and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

# Environment variables and the setting each one feeds. Later entries win over earlier ones.
ENV_VARS: list[tuple[str, str]] = [
    ("MINIMAX_API_KEY", "api_key"),
    ("M3CODE_API_KEY", "api_key"),
    ("M3CODE_BASE_URL", "base_url"),
    ("M3CODE_MODEL", "model"),
    ("M3CODE_API_FORMAT", "api_format"),
]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field("MiniMax-M3", description="Model name sent to the API.")
    base_url: str | None = Field(None, description="API base URL; default: MiniMax's for the api_format.")
    api_format: Literal["openai", "anthropic"] = Field("openai", description="Wire format of the API.")
    api_key: SecretStr | None = Field(None, description="API key (prefer the MINIMAX_API_KEY variable).")
    thinking: Literal["enabled", "adaptive", "disabled"] = Field("adaptive", description="Thinking mode.")
    stream: bool = Field(True, description="Stream model output.")
    request_timeout: float = Field(300.0, gt=0, description="Seconds one model request may stall.")
    max_retries: int = Field(5, ge=0, description="Retries of a failed model request.")
    sandbox: Literal["auto", "docker", "bwrap", "local"] = Field(
        "auto", description="Where commands run: docker, bwrap, local (no isolation), or auto (docker, else bwrap).")
    policy: Literal["read-only", "workspace-write", "full-access"] | None = Field(
        None, description="What commands may write: default workspace-write (full-access for local).")
    network: bool = Field(False, description="Let sandboxed commands use the network.")
    sandbox_memory_mb: int = Field(4096, gt=0, description="Memory limit of the sandbox, MiB.")
    sandbox_pids: int = Field(1024, gt=0, description="Most processes at once in the sandbox.")
    sandbox_cpus: float = Field(2.0, gt=0, description="CPU cores' worth the sandbox may use.")
    sandbox_image: str | None = Field(None, description="Docker image to run commands in.")
    sandbox_dockerfile: str | None = Field(None, description="Dockerfile (relative to the repo) to build it from.")
    sandbox_env: list[str] = Field(default_factory=list, description="Environment variables passed inside.")
    mode: Literal["team", "solo"] = Field("team", description="A planner/producers/verifier team, or one agent.")
    parallel: int = Field(2, ge=1, le=16, description="Team steps that may run at once.")
    max_turns: int = Field(200, ge=1, description="Most model turns in one job.")
    max_cost: float | None = Field(None, gt=0, description="Stop when the job has cost this many USD.")
    max_tokens: int | None = Field(None, gt=0, description="Stop when the job has used this many tokens.")
    timeout: float | None = Field(None, gt=0, description="Wall-clock seconds for the whole job.")
    context_window: int | None = Field(None, ge=1024, description="Override the model's context window.")
    compact_at: float = Field(0.8, gt=0, lt=1, description="Compact when history fills this share.")


class ConfigFileError(Exception):
    """A config file cannot be used; the message names the file, line and key."""


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "m3code" / "config.toml"


def repo_root(start: Path) -> Path:
    """The nearest ancestor holding .git or .m3code; the start itself when there is none."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / ".m3code").is_dir():
            return folder
    return start


def repo_config_path(workspace: Path) -> Path:
    return repo_root(workspace) / ".m3code" / "config.toml"


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not UTF-8 text ({exc.reason}). Save it as UTF-8.") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line L, column C)"; lead with the file and line so editors can jump there.
        found = re.search(r"at line (\d+), column (\d+)", str(exc))
        where = f"line {found.group(1)}, column {found.group(2)}" if found else "somewhere"
        reason = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise ConfigFileError(f"{path}:{found.group(1) if found else '?'}: invalid TOML at {where}: {reason}") from exc
    fields = Settings.model_fields
    for key, value in data.items():
        line = _key_line(text, key)
        where = f"{path}:{line}" if line else str(path)
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigFileError(f"{where}: unknown key {key!r}. Known keys: {known}.")
        try:
            Settings.model_validate({key: value})
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise ConfigFileError(f"{where}: key {key!r} = {value!r}: {message}.") from exc
    return data


class LoadedConfig(BaseModel):
    settings: Settings
    sources: dict[str, str]  # setting name -> "default", a file path, "env NAME" or "flag"


def load_config(workspace: Path, flags: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> LoadedConfig:
    """Merge every layer. Flags with the value None were not given and do not count."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in Settings.model_fields}
    for path in (user_config_path(), repo_config_path(workspace)):
        if path.is_file():
            for key, value in _read_file(path).items():
                values[key], sources[key] = value, str(path)
    for var, key in ENV_VARS:
        if env.get(var):
            values[key], sources[key] = env[var], f"env {var}"
    for key, value in (flags or {}).items():
        if value is not None:
            values[key], sources[key] = value, "flag"
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigFileError(f"setting {key!r} from {sources.get(key, '?')}: {err['msg']}.") from exc
    return LoadedConfig(settings=settings, sources=sources)


def _default_base_url(s: Settings) -> str:
    from m3code.providers.profiles import DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_OPENAI_BASE_URL

    return DEFAULT_ANTHROPIC_BASE_URL if s.api_format == "anthropic" else DEFAULT_OPENAI_BASE_URL


# What an unset setting amounts to, so `config show` gives the effective value rather than "(unset)".
UNSET_MEANS: dict[str, Callable[[Settings], str]] = {
    "base_url": _default_base_url,
    "policy": lambda s: "full-access (no isolation)" if s.sandbox == "local" else "workspace-write",
}


def describe(loaded: LoadedConfig) -> list[tuple[str, str, str]]:
    """(key, shown value, source) rows with secrets masked, for `m3code config show`."""
    rows = []
    for key in Settings.model_fields:
        value = getattr(loaded.settings, key)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            shown = "****" + raw[-4:] if len(raw) > 8 else "****"
        else:
            shown = "(unset)" if value is None else str(value)
        if value is None and key in UNSET_MEANS:
            shown = UNSET_MEANS[key](loaded.settings)
        rows.append((key, shown, loaded.sources[key]))
    return rows
