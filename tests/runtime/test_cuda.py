"""The runtime on a GPU (skipped without CUDA): parity there, bf16 sanity, and generation."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.minimax_m3_vl", reason="needs transformers >= 5.23 (MiniMax-M3)")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from runtime import load_model  # noqa: E402
from runtime.engine import Engine  # noqa: E402
from runtime.sampling import SamplingParams  # noqa: E402
from tests.runtime.test_parity import random_ids, reference_logits  # noqa: E402


def test_cuda_float32_matches_transformers(release_checkpoint: Path) -> None:
    model = load_model(release_checkpoint, device="cuda", dtype=torch.float32)
    ids = random_ids(model.config.vocab_size, 2, 60)
    ours = model(ids).cpu()
    theirs = reference_logits(release_checkpoint, ids, "release")
    assert (ours - theirs).abs().max().item() < 1e-3  # TF32 matmuls may be on


def test_cuda_bfloat16_is_close_to_float32(release_checkpoint: Path) -> None:
    exact = load_model(release_checkpoint, device="cpu", dtype=torch.float32)
    fast = load_model(release_checkpoint, device="cuda", dtype=torch.bfloat16)
    ids = random_ids(exact.config.vocab_size, 1, 48)
    a, b = exact(ids), fast(ids).float().cpu()
    assert torch.isfinite(b).all()
    # bf16 keeps ~3 significant digits; the argmax should mostly survive.
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    assert agree > 0.8, agree


def test_cuda_generation(release_checkpoint: Path) -> None:
    model = load_model(release_checkpoint, device="cuda", dtype=torch.float32)
    engine = Engine(model, eos_token_ids=())
    prompt = random_ids(model.config.vocab_size, 1, 20)[0].tolist()
    greedy = engine.generate(prompt, SamplingParams(temperature=0, max_tokens=6)).token_ids
    seq = list(prompt)
    for _ in range(6):
        seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert greedy == seq[20:]
    sampled = engine.generate(prompt, SamplingParams(temperature=0.8, top_p=0.9, seed=3, max_tokens=6))
    assert len(sampled.token_ids) == 6
