"""Our logits against transformers' MiniMax-M3 on tiny random checkpoints (float32, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from runtime import kernels, load_model  # noqa: E402
from runtime.tiny import tiny_text_config, write_tiny_checkpoint  # noqa: E402

TOLERANCE = 1e-4


def reference_logits(directory: Path, input_ids: torch.Tensor, layout: str) -> torch.Tensor:
    from transformers import MiniMaxM3VLForCausalLM
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3SparseForConditionalGeneration

    cls = MiniMaxM3VLForCausalLM if layout == "text" else MiniMaxM3SparseForConditionalGeneration
    model = cls.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def random_ids(vocab: int, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


CONFIGS: dict[str, tuple[str, dict[str, Any], tuple[int, int]]] = {
    # M3's shape in miniature: mixed layer kinds, partial RoPE, 7+ key blocks against top-2.
    "mixed-release": ("release", tiny_text_config(), (2, 60)),
    "mixed-text": ("text", tiny_text_config(), (2, 60)),
    # Two local blocks, top-3 of small blocks, a length that is not a whole number of blocks.
    "local2-ragged": (
        "text",
        tiny_text_config(index_block_size=4, index_topk_blocks=3, index_local_blocks=2),
        (1, 37),
    ),
    # Legacy config keys (sparse_attention_config, moe_layer_freq), full RoPE, tied embeddings, no GQA sharing.
    "legacy-keys": (
        "release",
        {
            **{
                k: v
                for k, v in tiny_text_config(num_attention_heads=2, tie_word_embeddings=True).items()
                if k not in ("layer_types", "mlp_layer_types", "rope_parameters") and not k.startswith("index_")
            },
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "rotary_dim": 16,
            "moe_layer_freq": [0, 1, 1, 1],
            "sparse_attention_config": {
                "sparse_attention_freq": [0, 1, 1, 1],
                "sparse_block_size": 4,
                "sparse_index_dim": 8,
                "sparse_local_block": 1,
                "sparse_num_index_heads": 2,
                "sparse_topk_blocks": 2,
                "sparse_score_type": "max",
            },
        },
        (2, 41),
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers(name: str, tmp_path: Path) -> None:
    layout, text_config, (batch, length) = CONFIGS[name]
    directory = write_tiny_checkpoint(tmp_path, layout=layout, seed=7, text_config=text_config, with_tokenizer=False)
    model = load_model(directory, device="cpu", dtype=torch.float32)
    ids = random_ids(model.config.vocab_size, batch, length)
    ours = model(ids)
    theirs = reference_logits(directory, ids, layout)
    assert ours.shape == theirs.shape == (batch, length, model.config.vocab_size)
    err = (ours - theirs).abs().max().item()
    assert err < TOLERANCE, f"{name}: max abs error {err:.3g}"


def test_block_selection_matters(release_checkpoint: Path) -> None:
    """The parity sequences are long enough that dense attention on the sparse layers gives other logits."""
    model = load_model(release_checkpoint, device="cpu", dtype=torch.float32)
    ids = random_ids(model.config.vocab_size, 1, 60)
    sparse = model(ids)

    def dense(q: Any, k: Any, v: Any, blocks: Any, *, block_size: int, q_offset: int = 0, scale: Any = None) -> Any:
        return kernels.reference.causal_attention(q, k, v, q_offset=q_offset, scale=scale)

    with kernels.overriding(sparse_attention=dense):
        full = model(ids)
    assert (sparse - full).abs().max().item() > 1e-2


def test_index_topk_contract() -> None:
    """Left-packed, -1 padded, own block always first, no duplicates, nothing from the future."""
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 20, 2, 8, generator=gen)
    k = torch.randn(1, 20, 8, generator=gen)
    out = kernels.index_topk(q, k, block_size=4, topk=3, local_blocks=1)
    assert out.dtype == torch.int32 and out.shape == (1, 2, 20, 3)
    for t in range(20):
        for h in range(2):
            row = out[0, h, t].tolist()
            valid = [b for b in row if b >= 0]
            assert row[: len(valid)] == valid and all(b == -1 for b in row[len(valid) :])
            assert valid[0] == t // 4 and len(set(valid)) == len(valid)
            assert all(b <= t // 4 for b in valid)
            assert len(valid) == min(3, t // 4 + 1)


def test_index_topk_offset_equals_suffix() -> None:
    """Scoring queries at an offset equals the tail of scoring all of them (what decode relies on)."""
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(2, 30, 2, 8, generator=gen)
    k = torch.randn(2, 30, 8, generator=gen)
    full = kernels.index_topk(q, k, block_size=4, topk=3, local_blocks=2)
    tail = kernels.index_topk(q[:, 25:], k, block_size=4, topk=3, local_blocks=2, q_offset=25)
    assert torch.equal(full[:, :, 25:], tail)
