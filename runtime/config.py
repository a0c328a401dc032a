"""Typed MiniMax-M3 text config, read from a Hugging Face `config.json` (see NOTES.md, "Config")."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

AttentionKind = Literal["full", "sparse"]
MlpKind = Literal["dense", "moe"]

_ATTENTION_NAMES: dict[str, AttentionKind] = {"full_attention": "full", "minimax_m3_sparse": "sparse"}
_MLP_NAMES: dict[str, MlpKind] = {"dense": "dense", "sparse": "moe"}
_LEGACY_INDEX_KEYS = {
    "sparse_num_index_heads": "index_n_heads",
    "sparse_index_dim": "index_head_dim",
    "sparse_block_size": "index_block_size",
    "sparse_topk_blocks": "index_topk_blocks",
    "sparse_local_block": "index_local_blocks",
}
TEXT_MODEL_TYPES = ("minimax_m3_vl_text",)
VL_MODEL_TYPES = ("minimax_m3_vl",)


class ConfigError(ValueError):
    """The checkpoint's config.json is not a MiniMax-M3 config we can run."""


@dataclass(frozen=True)
class M3Config:
    """The text model's shape. Defaults are the reference's defaults for fields a config.json leaves out."""

    vocab_size: int = 200064
    hidden_size: int = 6144
    num_layers: int = 60
    num_heads: int = 64
    num_kv_heads: int = 4
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 5_000_000.0
    rotary_dim: int = 128
    max_position_embeddings: int = 524288
    tie_word_embeddings: bool = False
    attention_kinds: tuple[AttentionKind, ...] = ()
    mlp_kinds: tuple[MlpKind, ...] = ()
    dense_intermediate_size: int = 12288
    moe_intermediate_size: int = 3072
    shared_intermediate_size: int = 3072
    num_experts: int = 128
    experts_per_token: int = 4
    routed_scaling_factor: float = 2.0
    swiglu_alpha: float = 1.702
    swiglu_limit: float = 7.0
    index_heads: int = 4
    index_head_dim: int = 128
    index_block_size: int = 128
    index_topk_blocks: int = 16
    index_local_blocks: int = 1
    bos_token_id: int | None = 200034
    eos_token_ids: tuple[int, ...] = (200020,)
    # The whole file as read, for the server's /v1/models and for debugging.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kv_group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    def is_sparse(self, layer: int) -> bool:
        return self.attention_kinds[layer] == "sparse"

    def is_moe(self, layer: int) -> bool:
        return self.mlp_kinds[layer] == "moe"

    def validate(self) -> None:
        n = self.num_layers
        if len(self.attention_kinds) != n or len(self.mlp_kinds) != n:
            raise ConfigError(
                f"layer_types has {len(self.attention_kinds)} entries and mlp_layer_types {len(self.mlp_kinds)}, "
                f"but num_hidden_layers is {n}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_attention_heads {self.num_heads} is not a multiple of num_key_value_heads")
        if any(k == "sparse" for k in self.attention_kinds) and self.index_heads != self.num_kv_heads:
            raise ConfigError(
                f"index_n_heads ({self.index_heads}) must equal num_key_value_heads ({self.num_kv_heads}): "
                "one index head per KV group"
            )
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            raise ConfigError(f"rotated channels {self.rotary_dim} must be even and within head_dim {self.head_dim}")
        if any(k == "moe" for k in self.mlp_kinds) and not 0 < self.experts_per_token <= self.num_experts:
            raise ConfigError(f"num_experts_per_tok {self.experts_per_token} vs num_local_experts {self.num_experts}")


def _pick(d: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if d.get(name) is not None:
            return d[name]
    return default


def text_section(raw: dict[str, Any]) -> dict[str, Any]:
    """The text model's part of a config.json: `text_config` for the VL wrapper, the file itself otherwise."""
    model_type = raw.get("model_type")
    if model_type in VL_MODEL_TYPES or "text_config" in raw:
        text = raw.get("text_config")
        if not isinstance(text, dict):
            raise ConfigError("config.json of a minimax_m3_vl checkpoint has no text_config object")
        if text.get("model_type") not in (None, *TEXT_MODEL_TYPES):
            raise ConfigError(f"text_config.model_type {text.get('model_type')!r} is not minimax_m3_vl_text")
        return text
    if model_type not in TEXT_MODEL_TYPES:
        raise ConfigError(f"config.json model_type {model_type!r} is not minimax_m3_vl or minimax_m3_vl_text")
    return raw


def _rope(text: dict[str, Any], head_dim: int) -> tuple[float, int]:
    params = _pick(text, "rope_parameters", "rope_scaling", default={}) or {}
    if not isinstance(params, dict):
        raise ConfigError("rope_parameters must be an object")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise ConfigError(f"rope_type {rope_type!r} is not supported (only 'default' RoPE)")
    theta = float(_pick(params, "rope_theta", default=_pick(text, "rope_theta", default=5_000_000.0)))
    factor = float(_pick(params, "partial_rotary_factor", default=_pick(text, "partial_rotary_factor", default=1.0)))
    rotated = int(head_dim * factor)
    legacy = text.get("rotary_dim")
    if legacy is not None and legacy != rotated:
        # The reference ignores rotary_dim (save_pretrained writes a default 64 regardless), so we do too.
        log.warning("config rotary_dim=%s ignored; partial_rotary_factor gives %d rotated channels", legacy, rotated)
    return theta, rotated


def parse_config(raw: dict[str, Any]) -> M3Config:
    text = text_section(raw)
    n = int(_pick(text, "num_hidden_layers", default=60))
    sparse_cfg = text.get("sparse_attention_config") or {}

    layer_types = text.get("layer_types")
    if layer_types is None and "sparse_attention_freq" in sparse_cfg:
        layer_types = ["minimax_m3_sparse" if f else "full_attention" for f in sparse_cfg["sparse_attention_freq"]]
    if layer_types is None:
        layer_types = ["full_attention"] * n
    mlp_types = text.get("mlp_layer_types")
    if mlp_types is None and text.get("moe_layer_freq") is not None:
        mlp_types = ["sparse" if f else "dense" for f in text["moe_layer_freq"]]
    if mlp_types is None:
        mlp_types = ["sparse"] * n
    try:
        attention_kinds = tuple(_ATTENTION_NAMES[t] for t in layer_types)
        mlp_kinds = tuple(_MLP_NAMES[t] for t in mlp_types)
    except KeyError as e:
        raise ConfigError(f"unknown layer type {e.args[0]!r} in layer_types/mlp_layer_types") from None

    index = {
        "index_n_heads": int(_pick(text, "index_n_heads", default=4)),
        "index_head_dim": int(_pick(text, "index_head_dim", default=128)),
        "index_block_size": int(_pick(text, "index_block_size", default=128)),
        "index_topk_blocks": int(_pick(text, "index_topk_blocks", default=16)),
        "index_local_blocks": int(_pick(text, "index_local_blocks", default=1)),
    }
    for legacy, flat in _LEGACY_INDEX_KEYS.items():
        if legacy in sparse_cfg:  # the reference lets the legacy block win
            index[flat] = int(sparse_cfg[legacy])

    hidden = int(_pick(text, "hidden_size", default=6144))
    heads = int(_pick(text, "num_attention_heads", default=64))
    head_dim = int(_pick(text, "head_dim", default=hidden // heads))
    theta, rotated = _rope(text, head_dim)
    eos = _pick(text, "eos_token_id", default=200020)
    eos_ids = tuple(int(e) for e in (eos if isinstance(eos, list) else [eos]))
    tie = bool(text.get("tie_word_embeddings", False) or raw.get("tie_word_embeddings", False))

    cfg = M3Config(
        vocab_size=int(_pick(text, "vocab_size", default=200064)),
        hidden_size=hidden,
        num_layers=n,
        num_heads=heads,
        num_kv_heads=int(_pick(text, "num_key_value_heads", default=4)),
        head_dim=head_dim,
        rms_norm_eps=float(_pick(text, "rms_norm_eps", default=1e-6)),
        rope_theta=theta,
        rotary_dim=rotated,
        max_position_embeddings=int(_pick(text, "max_position_embeddings", default=524288)),
        tie_word_embeddings=tie,
        attention_kinds=attention_kinds,
        mlp_kinds=mlp_kinds,
        dense_intermediate_size=int(_pick(text, "dense_intermediate_size", default=12288)),
        moe_intermediate_size=int(_pick(text, "intermediate_size", default=3072)),
        shared_intermediate_size=int(_pick(text, "shared_intermediate_size", default=3072)),
        num_experts=int(_pick(text, "num_local_experts", "num_experts", default=128)),
        experts_per_token=int(_pick(text, "num_experts_per_tok", default=4)),
        routed_scaling_factor=float(_pick(text, "routed_scaling_factor", default=2.0)),
        swiglu_alpha=float(_pick(text, "swiglu_alpha", default=1.702)),
        swiglu_limit=float(_pick(text, "swiglu_limit", default=7.0)),
        index_heads=index["index_n_heads"],
        index_head_dim=index["index_head_dim"],
        index_block_size=index["index_block_size"],
        index_topk_blocks=index["index_topk_blocks"],
        index_local_blocks=index["index_local_blocks"],
        bos_token_id=_pick(text, "bos_token_id"),
        eos_token_ids=eos_ids,
        raw=raw,
    )
    cfg.validate()
    return cfg


def load_config(path: str | Path) -> M3Config:
    """Read `config.json` from a checkpoint directory (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ConfigError(f"no config.json at {p}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p} is not valid JSON: {e}") from None
    return parse_config(raw)
