"""Tiny random MiniMax-M3 checkpoints for tests and demos.

Weights are written by transformers' own MiniMax-M3 classes (so names, shapes and config are the real format), with
every tensor re-drawn at a scale where routing and block selection are decisive. A byte-level BPE tokenizer with
M3's special markers is trained on the spot, and the M3-format chat template beside this file is copied in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import torch

CHAT_TEMPLATE = Path(__file__).with_name("chat_template.jinja")
# M3's control markers (NOTES.md, "Chat format"); each is one token.
SPECIAL_TOKENS = (
    "]~!b[",
    "]~b]",
    "[e~[",
    "<mm:think>",
    "</mm:think>",
    "]<]minimax[>[",
    "<think>",
    "</think>",
    "]<]image[>[",
    "]<]video[>[",
)
Layout = Literal["release", "text"]


def tiny_text_config(**overrides: Any) -> dict[str, Any]:
    """A small text config with full and sparse attention, dense and MoE MLPs mixed."""
    config: dict[str, Any] = {
        "model_type": "minimax_m3_vl_text",
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 32,
        "dense_intermediate_size": 96,
        "shared_intermediate_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "routed_scaling_factor": 2.0,
        "layer_types": ["full_attention", "minimax_m3_sparse", "full_attention", "minimax_m3_sparse"],
        "mlp_layer_types": ["dense", "sparse", "sparse", "dense"],
        "index_n_heads": 2,
        "index_head_dim": 16,
        "index_block_size": 8,
        "index_topk_blocks": 2,
        "index_local_blocks": 1,
        "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0, "partial_rotary_factor": 0.5},
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    # save_pretrained writes rotary_dim (which nothing reads) as 64 unless told; keep it truthful.
    rope = config.get("rope_parameters") or {}
    config.setdefault("rotary_dim", int(config["head_dim"] * rope.get("partial_rotary_factor", 1.0)))
    return config


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Redraw every tensor: matrices ~ N(0, 1/fan_in), norms and router biases visibly away from zero."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()) + sorted(model.named_buffers()):
        if not p.is_floating_point() or "inv_freq" in name:
            continue
        if "norm" in name or "layernorm" in name:
            values = torch.randn(p.shape, generator=gen) * 0.2
        elif "e_score_correction_bias" in name:
            values = torch.randn(p.shape, generator=gen) * 0.3
        elif "embed_tokens" in name:
            values = torch.randn(p.shape, generator=gen)
        else:
            values = torch.randn(p.shape, generator=gen) * p.shape[-1] ** -0.5
        p.copy_(values.to(p.dtype))


def _build_model(text_config: dict[str, Any], layout: Layout) -> Any:  # a transformers PreTrainedModel
    from transformers import MiniMaxM3VLConfig, MiniMaxM3VLForCausalLM, MiniMaxM3VLTextConfig
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3SparseForConditionalGeneration

    text = {k: v for k, v in text_config.items() if k != "model_type"}
    if layout == "text":
        return MiniMaxM3VLForCausalLM(MiniMaxM3VLTextConfig(**text))
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "patch_size": 14,
        "image_size": 28,
        "spatial_merge_size": 1,
    }
    config = MiniMaxM3VLConfig(text_config=text, vision_config=vision, projector_hidden_size=text["hidden_size"])
    return MiniMaxM3SparseForConditionalGeneration(config)


_CORPUS = """\
The quick brown fox jumps over the lazy dog. A tiny model writes tiny words.
def add(a, b):\n    return a + b\n\nclass Greeter:\n    def hello(self, name: str) -> str:\n        return f"hi {name}"
Run the tests, read the diff, fix the bug, and open a pull request when everything passes.
{"name": "read_file", "arguments": {"path": "README.md", "lines": [1, 20]}} <response>ok</response>
<tool_call> <invoke name="bash"> <command>ls -la</command> </invoke> </tool_call> <item> </item>
You are a helpful assistant. Think step by step. Current thinking mode: adaptive enabled disabled.
0 1 2 3 4 5 6 7 8 9 10 100 1000 true false null [] {} () <> = + - * / % # @ ! ? , . ; : ' " ` ~ ^ & |
"""


def write_tokenizer(out_dir: Path, vocab_size: int) -> dict[str, int]:
    """Train a byte-level BPE on a small built-in corpus; write tokenizer.json and tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    ids: dict[str, int] = {}
    for tok in SPECIAL_TOKENS:
        found = tokenizer.token_to_id(tok)
        assert found is not None, f"the trained tokenizer lost special token {tok!r}"
        ids[tok] = found
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "]~b]",
                "eos_token": "[e~[",
                "unk_token": None,
                "added_tokens_decoder": {
                    str(i): {"content": tok, "special": True} for tok, i in ids.items()
                },
                "model_max_length": 4096,
            },
            indent=2,
        )
    )
    return ids


def write_tiny_checkpoint(
    out_dir: str | Path,
    *,
    layout: Layout = "release",
    seed: int = 0,
    text_config: dict[str, Any] | None = None,
    max_shard_size: str = "200KB",
    with_tokenizer: bool = True,
) -> Path:
    """Write a random MiniMax-M3 checkpoint to `out_dir` and return the directory.

    layout "release": the VL wrapper's format (`language_model.model.…`, per-expert w1/w2/w3, a vision tower that
    the runtime skips). layout "text": transformers' text-model format (`model.…`, fused expert tensors).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = dict(text_config or tiny_text_config())
    ids: dict[str, int] = {}
    if with_tokenizer:
        ids = write_tokenizer(out, int(cfg["vocab_size"]))
        cfg.setdefault("bos_token_id", ids["]~b]"])
        cfg.setdefault("eos_token_id", ids["[e~["])
    cfg.setdefault("bos_token_id", 1)
    cfg.setdefault("eos_token_id", 2)
    model = _build_model(cfg, layout)
    randomize(model, seed)
    model.save_pretrained(out, max_shard_size=max_shard_size)
    if with_tokenizer:
        shutil.copyfile(CHAT_TEMPLATE, out / "chat_template.jinja")
    return out
