"""Loading both name layouts, dtype handling, and bad checkpoints failing with errors that name the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402

from runtime import load_model  # noqa: E402
from runtime.config import ConfigError, load_config  # noqa: E402
from runtime.weights import INDEX_FILE, Checkpoint, CheckpointError, detect_layout  # noqa: E402


def copy_checkpoint(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(source, target)
    return target


def shard_holding(directory: Path, name: str) -> Path:
    weight_map = json.loads((directory / INDEX_FILE).read_text())["weight_map"]
    return directory / weight_map[name]


def rewrite_shard(directory: Path, name: str, change: dict[str, torch.Tensor | None]) -> None:
    """Replace/add (tensor) or drop (None) tensors in the shard that holds `name`, keeping the index in step."""
    shard = shard_holding(directory, name)
    tensors = load_file(shard)
    index = json.loads((directory / INDEX_FILE).read_text())
    for key, value in change.items():
        if value is None:
            tensors.pop(key)
            index["weight_map"].pop(key)
        else:
            tensors[key] = value
            index["weight_map"][key] = shard.name
    save_file(tensors, shard, metadata={"format": "pt"})
    (directory / INDEX_FILE).write_text(json.dumps(index))


def test_layouts_are_detected(release_checkpoint: Path, text_checkpoint: Path) -> None:
    release = detect_layout(Checkpoint(release_checkpoint).names)
    assert release.release and release.prefix == "language_model.model."
    text = detect_layout(Checkpoint(text_checkpoint).names)
    assert not text.release and text.prefix == "model."


def test_both_layouts_load_the_same_model(release_checkpoint: Path, tmp_path: Path) -> None:
    """The release layout (per-expert w1/w2/w3) and the fused layout give identical tensors for the same weights."""
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3SparseForConditionalGeneration

    vl = MiniMaxM3SparseForConditionalGeneration.from_pretrained(release_checkpoint, dtype=torch.float32)
    text_dir = tmp_path / "as-text"
    text_dir.mkdir()
    # Re-save the language model alone in transformers' text layout.
    from transformers import MiniMaxM3VLForCausalLM

    text_model = MiniMaxM3VLForCausalLM(vl.config.text_config)
    text_model.model.load_state_dict(vl.model.language_model.state_dict())
    text_model.lm_head.load_state_dict(vl.lm_head.state_dict())
    text_model.save_pretrained(text_dir)
    a = load_model(release_checkpoint, device="cpu", dtype=torch.float32)
    b = load_model(text_dir, device="cpu", dtype=torch.float32)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_dtype_kept_or_cast(release_checkpoint: Path) -> None:
    kept = load_model(release_checkpoint, device="cpu", dtype=None)
    assert kept.dtype == torch.float32
    cast = load_model(release_checkpoint, device="cpu", dtype=torch.bfloat16)
    assert cast.dtype == torch.bfloat16
    assert cast.layers[1].attn.q_proj.dtype == torch.bfloat16
    # The routing bias stays fp32: it only steers the choice, and bf16 would blur close experts.
    assert cast.layers[1].mlp.router_bias.dtype == torch.float32
    logits = cast(torch.tensor([[1, 2, 3, 4]]))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_missing_shard(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    shard = shard_holding(directory, "language_model.model.norm.weight")
    shard.unlink()
    with pytest.raises(CheckpointError, match=shard.name):
        load_model(directory, device="cpu")


def test_wrong_shape(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    name = "language_model.model.layers.1.self_attn.index_k_proj.weight"
    rewrite_shard(directory, name, {name: torch.zeros(3, 64)})
    with pytest.raises(CheckpointError, match=r"wrong shapes: .*index_k_proj\.weight \(expected \[16, 64\], found \[3"):
        load_model(directory, device="cpu")


def test_unknown_tensor(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    anchor = "language_model.model.norm.weight"
    bogus = "language_model.model.layers.0.self_attn.bogus.weight"
    rewrite_shard(directory, anchor, {bogus: torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"unknown tensors: .*self_attn\.bogus\.weight"):
        load_model(directory, device="cpu")


def test_missing_tensor(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    name = "language_model.model.layers.1.block_sparse_moe.experts.3.w3.weight"
    rewrite_shard(directory, name, {name: None})
    with pytest.raises(CheckpointError, match=r"missing tensors: .*experts\.3\.w3\.weight"):
        load_model(directory, device="cpu")


def test_mtp_tensors_are_skipped(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    rewrite_shard(directory, "language_model.model.norm.weight", {"mtp.layers.0.eh_proj.weight": torch.zeros(4, 4)})
    model = load_model(directory, device="cpu", dtype=torch.float32)
    assert model.config.num_layers == 4


def test_config_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match="llama"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "minimax_m3_vl_text", "num_hidden_layers": 2, "layer_types": ["full_attention"]})
    )
    with pytest.raises(ConfigError, match="num_hidden_layers is 2"):
        load_config(tmp_path)


def test_vl_config_reads_text_config(release_checkpoint: Path) -> None:
    config = load_config(release_checkpoint)
    assert config.attention_kinds == ("full", "sparse", "full", "sparse")
    assert config.mlp_kinds == ("dense", "moe", "moe", "dense")
    assert config.rotary_dim == 8 and config.index_block_size == 8


def test_quantized_checkpoint_is_refused_by_name(release_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_checkpoint(release_checkpoint, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"quantized checkpoint .*'fp8'"):
        load_model(directory, device="cpu")
