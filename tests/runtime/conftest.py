"""Tiny random checkpoints shared by the runtime tests (each written once per session).

Nothing here imports torch at collection time: without the runtime extras, the modules that need it skip themselves
and the rest of the suite still runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _write(directory: Path, layout: str, seed: int) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from runtime.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(directory, layout=layout, seed=seed)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def release_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny checkpoint in the release (VL) layout, with tokenizer and chat template."""
    return _write(tmp_path_factory.mktemp("tiny-release"), "release", 1)


@pytest.fixture(scope="session")
def text_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny checkpoint in transformers' text-model layout."""
    return _write(tmp_path_factory.mktemp("tiny-text"), "text", 2)
