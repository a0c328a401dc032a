"""Sharded safetensors checkpoints: find every tensor, check names and shapes, load layer by layer.

Three name layouts map onto the model's canonical names (NOTES.md, "Tensor names"). Everything is checked from the
safetensors headers before a byte of weights is read; then each canonical tensor is allocated on the device and
filled part by part from the memory-mapped shards, so host memory holds about one source tensor at a time.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open

from runtime.config import M3Config

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Parts of a release or VL checkpoint that the text model does not use.
_SKIPPED = re.compile(r"(^|\.)(mtp|vision_tower|visual|multi_modal_projector|patch_merge_mlp)\.")

Op = Literal["copy", "concat", "stack", "stack_concat"]


class CheckpointError(ValueError):
    """The checkpoint directory does not hold the tensors the config describes."""


@dataclass(frozen=True)
class Recipe:
    """How one canonical tensor is built from checkpoint tensors, each of shape `part_shape`.

    copy: one part. concat: parts stacked along dim 0 (gate rows, then up rows). stack: one part per expert.
    stack_concat: first half of parts are per-expert gates, second half per-expert ups; expert e gets
    cat(gate_e, up_e) along dim 0.
    """

    op: Op
    parts: tuple[str, ...]
    part_shape: tuple[int, ...]


class Checkpoint:
    """The tensors of a checkpoint directory: name -> shard, shapes and dtypes read from the headers only."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index = self.directory / INDEX_FILE
        if index.is_file():
            try:
                weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"{index} is not a safetensors index: {e}") from None
        elif (self.directory / SINGLE_FILE).is_file():
            weight_map = {}
        else:
            raise CheckpointError(f"no {INDEX_FILE} or {SINGLE_FILE} in {self.directory}")
        shards = sorted(set(weight_map.values())) or [SINGLE_FILE]
        missing = [s for s in shards if not (self.directory / s).is_file()]
        if missing:
            raise CheckpointError(f"missing shard file(s) in {self.directory}: {', '.join(missing)}")
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        self.shard_of: dict[str, str] = {}
        for shard in shards:
            with safe_open(self.directory / shard, framework="pt", device="cpu") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    sl = f.get_slice(name)
                    self.shapes[name] = tuple(sl.get_shape())
                    self.dtypes[name] = sl.get_dtype()
                    self.shard_of[name] = shard
        listed_absent = sorted(n for n, s in weight_map.items() if self.shard_of.get(n) != s)
        if listed_absent:
            raise CheckpointError(f"tensors listed in {INDEX_FILE} but not in their shard: {_names(listed_absent)}")

    @property
    def names(self) -> set[str]:
        return set(self.shapes)

    def dominant_dtype(self) -> torch.dtype:
        counts: dict[str, int] = defaultdict(int)
        for name, dt in self.dtypes.items():
            counts[dt] += 1 if not _SKIPPED.search(name) else 0
        stored = max(counts, key=lambda k: counts[k])
        return _SAFETENSORS_DTYPES.get(stored, torch.float32)

    @staticmethod
    def open_all(directory: Path, shards: set[str], stack: ExitStack) -> dict[str, Any]:
        return {s: stack.enter_context(safe_open(directory / s, framework="pt", device="cpu")) for s in shards}


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class Layout:
    prefix: str  # before "layers.N." / "embed_tokens" / "norm"
    head: str  # the lm_head tensor's name
    release: bool  # release names (block_sparse_moe, per-expert w1/w2/w3, index_q_proj, gate_proj/up_proj)


_RELEASE_MARKERS = (".block_sparse_moe.", ".self_attn.index_q_proj.", ".mlp.gate_proj.")
_HF_MARKERS = (".mlp.gate_up_proj.", ".mlp.experts.gate_up_proj", ".self_attn.indexer.")


def detect_layout(names: set[str]) -> Layout:
    if any(n.startswith("language_model.model.") for n in names):
        prefix, head = "language_model.model.", "language_model.lm_head.weight"
    elif any(n.startswith("model.language_model.") for n in names):
        prefix, head = "model.language_model.", "lm_head.weight"
    elif any(n.startswith("model.") for n in names):
        prefix, head = "model.", "lm_head.weight"
    else:
        raise CheckpointError("no text-model tensors found (expected names under model., language_model.model. or "
                              "model.language_model.)")
    release = any(m in n for n in names for m in _RELEASE_MARKERS)
    hf = any(m in n for n in names for m in _HF_MARKERS)
    if release and hf:
        raise CheckpointError("checkpoint mixes release names (block_sparse_moe/w1/index_q_proj) with transformers "
                              "names (mlp.experts.gate_up_proj/indexer)")
    return Layout(prefix=prefix, head=head, release=release)


def plan(config: M3Config, layout: Layout, shapes: dict[str, tuple[int, ...]]) -> dict[str, Recipe]:
    """Canonical name -> how to build it from this layout's tensors."""
    c = config
    p = layout.prefix
    recipes: dict[str, Recipe] = {}

    def copy(canonical: str, source: str) -> None:
        recipes[canonical] = Recipe("copy", (source,), shapes[canonical])

    copy("embed_tokens", f"{p}embed_tokens.weight")
    copy("norm", f"{p}norm.weight")
    if not c.tie_word_embeddings:
        copy("lm_head", layout.head)
    for i in range(c.num_layers):
        lp, cp = f"{p}layers.{i}.", f"layers.{i}."
        copy(cp + "input_norm", lp + "input_layernorm.weight")
        copy(cp + "post_attn_norm", lp + "post_attention_layernorm.weight")
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"):
            copy(f"{cp}attn.{name}", f"{lp}self_attn.{name}.weight")
        if c.is_sparse(i):
            for part in ("q_proj", "k_proj", "q_norm", "k_norm"):
                source = f"self_attn.index_{part}.weight" if layout.release else f"self_attn.indexer.{part}.weight"
                copy(f"{cp}attn.index_{part}", lp + source)
        if c.is_moe(i):
            e, inter, hidden = c.num_experts, c.moe_intermediate_size, c.hidden_size
            shared = c.shared_intermediate_size
            if layout.release:
                m = lp + "block_sparse_moe."
                copy(cp + "mlp.router", m + "gate.weight")
                copy(cp + "mlp.router_bias", m + "e_score_correction_bias")
                gates = tuple(f"{m}experts.{j}.w1.weight" for j in range(e))
                ups = tuple(f"{m}experts.{j}.w3.weight" for j in range(e))
                recipes[cp + "mlp.experts_gate_up"] = Recipe("stack_concat", gates + ups, (inter, hidden))
                downs = tuple(f"{m}experts.{j}.w2.weight" for j in range(e))
                recipes[cp + "mlp.experts_down"] = Recipe("stack", downs, (hidden, inter))
                recipes[cp + "mlp.shared_gate_up"] = Recipe(
                    "concat", (m + "shared_experts.gate_proj.weight", m + "shared_experts.up_proj.weight"),
                    (shared, hidden),
                )
                copy(cp + "mlp.shared_down", m + "shared_experts.down_proj.weight")
            else:
                m = lp + "mlp."
                copy(cp + "mlp.router", m + "gate.weight")
                copy(cp + "mlp.router_bias", m + "gate.e_score_correction_bias")
                copy(cp + "mlp.experts_gate_up", m + "experts.gate_up_proj")
                copy(cp + "mlp.experts_down", m + "experts.down_proj")
                copy(cp + "mlp.shared_gate_up", m + "shared_experts.gate_up_proj.weight")
                copy(cp + "mlp.shared_down", m + "shared_experts.down_proj.weight")
        else:
            inter = c.dense_intermediate_size
            if layout.release:
                recipes[cp + "mlp.gate_up_proj"] = Recipe(
                    "concat", (lp + "mlp.gate_proj.weight", lp + "mlp.up_proj.weight"), (inter, c.hidden_size)
                )
            else:
                copy(cp + "mlp.gate_up_proj", lp + "mlp.gate_up_proj.weight")
            copy(cp + "mlp.down_proj", lp + "mlp.down_proj.weight")
    return recipes


def validate(checkpoint: Checkpoint, recipes: dict[str, Recipe], ignored: frozenset[str] = frozenset()) -> None:
    """Every needed tensor present with its shape, nothing unexplained left over; errors name the tensors."""
    needed = {part: r.part_shape for r in recipes.values() for part in r.parts}
    have = checkpoint.names - ignored
    missing = sorted(set(needed) - have)
    unknown = sorted(n for n in have - set(needed) if not _SKIPPED.search(n))
    wrong = sorted(
        f"{n} (expected {list(shape)}, found {list(checkpoint.shapes[n])})"
        for n, shape in needed.items()
        if n in have and checkpoint.shapes[n] != shape
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if wrong:
        problems.append(f"wrong shapes: {_names(wrong)}")
    if unknown:
        problems.append(f"unknown tensors: {_names(unknown)}")
    if problems:
        raise CheckpointError(f"checkpoint {checkpoint.directory} does not match its config: " + "; ".join(problems))


def _layer_of(canonical: str) -> int:
    return int(canonical.split(".")[1]) if canonical.startswith("layers.") else -1


def _build(
    recipe: Recipe,
    target: tuple[int, ...],
    get: Callable[[str], torch.Tensor],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    out = torch.empty(target, dtype=dtype, device=device)
    parts = recipe.parts
    if recipe.op == "copy":
        out.copy_(get(parts[0]))
    elif recipe.op == "concat":
        rows = recipe.part_shape[0]
        for j, name in enumerate(parts):
            out[j * rows : (j + 1) * rows].copy_(get(name))
    elif recipe.op == "stack":
        for j, name in enumerate(parts):
            out[j].copy_(get(name))
    else:  # stack_concat
        experts, rows = len(parts) // 2, recipe.part_shape[0]
        for j in range(experts):
            out[j, :rows].copy_(get(parts[j]))
            out[j, rows:].copy_(get(parts[experts + j]))
    return out


def iter_tensors(
    directory: str | Path,
    config: M3Config,
    *,
    dtype: torch.dtype | None,
    device: torch.device | str,
    keep_fp32: tuple[str, ...] = ("router_bias",),
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (canonical name, tensor on `device`) in layer order, after validating the whole checkpoint."""
    from runtime.model import expected_shapes

    checkpoint = Checkpoint(directory)
    layout = detect_layout(checkpoint.names)
    shapes = expected_shapes(config)
    recipes = plan(config, layout, shapes)
    # A tied head may still be stored; it is the embedding matrix either way.
    validate(checkpoint, recipes, frozenset({layout.head}) if config.tie_word_embeddings else frozenset())
    dtype = dtype or checkpoint.dominant_dtype()
    device = torch.device(device)
    by_layer: dict[int, list[str]] = defaultdict(list)
    for canonical in recipes:
        by_layer[_layer_of(canonical)].append(canonical)
    with ExitStack() as stack:
        handles = Checkpoint.open_all(checkpoint.directory, set(checkpoint.shard_of.values()), stack)

        def get(name: str) -> torch.Tensor:
            return handles[checkpoint.shard_of[name]].get_tensor(name)

        for layer in sorted(by_layer):
            for canonical in by_layer[layer]:
                want = torch.float32 if canonical.rsplit(".", 1)[-1] in keep_fp32 else dtype
                yield canonical, _build(recipes[canonical], shapes[canonical], get, want, device)
