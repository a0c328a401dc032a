"""`m3code run` (a subprocess) against the runtime's server on the tiny checkpoint: a budgeted job finishes.

The model runs for real (template, tokenizer, forward passes, markup parsing, SSE); only the token choice is
scripted, since a random tiny model never writes a well-formed tool call on its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from runtime import engine as engine_module
from runtime.markup import NS
from runtime.server import App
from tests.e2e.helpers import events, m3code, session_dirs
from tests.runtime.test_server import Running

REPLIES = [
    f'</mm:think>Creating the file.{NS}<tool_call>\n{NS}<invoke name="bash">{NS}<command>echo hello > hello.txt'
    f"{NS}</command>{NS}</invoke>\n{NS}</tool_call>",
    "<mm:think>The file exists now.</mm:think>Wrote hello.txt.",
]


def test_run_finishes_a_budgeted_job(release_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     ) -> None:
    app = App(release_checkpoint, device="cpu", dtype="float32", model_name="tiny-m3", default_max_tokens=400)
    running = Running(app)
    try:
        assert app.wait_loaded(60), app.load_error
        rt = app.runtime
        assert rt is not None
        eos = min(rt.engine.eos_token_ids)
        scripts = [[*rt.tokenizer.encode(text), eos] for text in REPLIES]
        turn_of: dict[int, int] = {}
        position: dict[int, int] = {}

        def scripted(logits: Any, params: Any, generator: Any) -> int:
            seq = next(s for s in rt.engine.running if s.params is params)
            turn = turn_of.setdefault(seq.id, min(len(turn_of), len(scripts) - 1))
            i = position[seq.id] = position.get(seq.id, -1) + 1
            return scripts[turn][i]

        monkeypatch.setattr(engine_module, "sample", scripted)
        repo = tmp_path / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        (repo / "TASK.md").write_text("Create hello.txt containing hello.\n")
        result = m3code("run", "TASK.md", "--solo", "--base-url", running.url + "/v1", "--model", "tiny-m3",
                        "--api-format", "openai", "--max-turns", "4", cwd=repo, timeout=240)
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert result.stdout.strip() == "Wrote hello.txt."
        assert (repo / "hello.txt").read_text() == "hello\n"
        [session] = session_dirs(repo)
        log = events(session)
        assert log[-1]["type"] == "session_ended" and log[-1]["status"] == "done"
        messages = [e for e in log if e["type"] == "assistant_message"]
        assert len(messages) == 2 and "file exists" in str(messages[1])
    finally:
        running.stop()
