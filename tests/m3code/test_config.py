"""Config layering, `m3code config show`, and errors that name the file, line and key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from m3code.config import ConfigFileError, describe, load_config
from tests.e2e.helpers import m3code


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_layers_win_in_order(tmp_path: Path) -> None:
    user = write(Path(os.environ["XDG_CONFIG_HOME"]) / "m3code" / "config.toml",
                 'model = "MiniMax-M2.7"\nmax_turns = 10\nthinking = "disabled"\nmax_retries = 2\n')
    repo = tmp_path / "repo"
    write(repo / ".m3code" / "config.toml", 'max_turns = 20\nthinking = "enabled"\n')
    (repo / "sub").mkdir()
    env = {"M3CODE_MODEL": "from-env", "MINIMAX_API_KEY": "sk-minimax-123456789"}
    loaded = load_config(repo / "sub", {"thinking": "adaptive", "max_cost": None}, env)
    s, src = loaded.settings, loaded.sources
    assert (s.model, src["model"]) == ("from-env", "env M3CODE_MODEL")
    assert (s.max_turns, src["max_turns"]) == (20, str(repo / ".m3code" / "config.toml"))
    assert (s.thinking, src["thinking"]) == ("adaptive", "flag")
    assert (s.max_retries, src["max_retries"]) == (2, str(user))
    assert (s.max_cost, src["max_cost"]) == (None, "default")
    # M3CODE_API_KEY is the more specific name and wins over MINIMAX_API_KEY.
    both = load_config(repo, None, {**env, "M3CODE_API_KEY": "sk-m3code-abcdefgh"})
    assert both.settings.api_key is not None
    assert both.settings.api_key.get_secret_value() == "sk-m3code-abcdefgh"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model = "x"\nmax_turns = "many"\n', ":2: key 'max_turns'"),
        ('model = "x"\n\nmax_turn = 3\n', ":3: unknown key 'max_turn'"),
        ('model = "x"\nthinking = maybe\n', ":2: invalid TOML at line 2"),
        ('compact_at = 1.5\n', ":1: key 'compact_at'"),
    ],
)
def test_bad_file_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / ".m3code" / "config.toml", text)
    with pytest.raises(ConfigFileError) as err:
        load_config(tmp_path, None, {})
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)


def test_config_show_masks_secrets_and_names_sources(tmp_path: Path) -> None:
    write(tmp_path / ".m3code" / "config.toml", "max_turns = 7\n")
    result = m3code("config", "show", cwd=tmp_path, env={"MINIMAX_API_KEY": "sk-secret-value-9876"})
    assert result.returncode == 0, result.stderr
    assert "sk-secret" not in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "****9876" in lines["api_key"] and "env MINIMAX_API_KEY" in lines["api_key"]
    assert "7" in lines["max_turns"] and ".m3code/config.toml" in lines["max_turns"]
    assert "(default)" in lines["model"]
    rows = describe(load_config(tmp_path, None, {}))
    assert ("api_key", "(unset)", "default") in rows


def test_config_show_reports_a_bad_file(tmp_path: Path) -> None:
    write(tmp_path / ".m3code" / "config.toml", "sandbox = 'podman'\n")
    result = m3code("config", "show", cwd=tmp_path)
    assert result.returncode == 2
    assert "config.toml:1: key 'sandbox'" in result.stderr
