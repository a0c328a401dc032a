"""The example workflow stays in step with the CLI, and keeps untrusted input out of its scripts."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from m3code.cli import app

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github" / "m3code.yml"


def _run_scripts(text: str) -> list[str]:
    """The bodies of `run: |` blocks."""
    scripts, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*run: \|\s*$", line):
            indent = len(line) - len(line.lstrip()) + 2
            body = []
            for follow in lines[i + 1:]:
                if follow.strip() and len(follow) - len(follow.lstrip()) < indent:
                    break
                body.append(follow)
            scripts.append("\n".join(body))
    return scripts


def test_the_workflow_uses_only_options_m3code_run_has() -> None:
    text = WORKFLOW.read_text()
    command = typer.main.get_command(app)
    run = command.commands["run"]  # type: ignore[attr-defined]
    known = {opt for param in run.params for opt in param.opts}
    # Flags on the lines that build m3code's command: `args=(...)`, `args+=(...)` and `m3code run ...`.
    lines = [line for script in _run_scripts(text) for line in script.splitlines()
             if re.search(r"\bargs\+?=\(|m3code run", line)]
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", "\n".join(lines)))
    assert {"--pr", "--from-issue", "--sandbox", "--base", "--draft"} <= used
    assert used <= known, used - known


def test_untrusted_input_never_becomes_script_text() -> None:
    text = WORKFLOW.read_text()
    scripts = _run_scripts(text)
    assert len(scripts) >= 4
    for script in scripts:
        assert "${{" not in script, script  # inputs and comments go through env variables
    assert "persist-credentials: false" in text
    assert "startsWith(github.event.comment.body, '/m3code')" in text and "author_association" in text
