"""The narrow kernel interface the model calls for every hot op.

Each op has a torch reference (`reference.py`). A fast backend (the Triton kernels) plugs in with `register(name, fn)`
per op, or `use(module)` for a module that defines some of the op names; ops it lacks keep the reference. Signatures
and semantics are fixed by the reference functions' docstrings; `msa_attention`, which has none, composes
`index_topk` and `sparse_attention` unless a backend fuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch

from runtime.kernels import reference

OPS = (
    "rms_norm",
    "apply_rope",
    "causal_attention",
    "index_topk",
    "sparse_attention",
    "msa_attention",
    "swiglu_oai",
    "moe_route",
    "moe_experts",
)


def _composed_msa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """An MSA layer's attention: the active `index_topk`, then the active `sparse_attention` over its selection.

    One op so that a backend may fuse the two (the Triton one does for decode); by default it composes the two ops,
    so overriding either one still takes effect."""
    blocks = index_topk(idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset)
    return sparse_attention(q, k, v, blocks, block_size=block_size, q_offset=q_offset, scale=scale)


def _default(name: str) -> Callable[..., Any]:
    return _composed_msa_attention if name == "msa_attention" else getattr(reference, name)


_active: dict[str, Callable[..., Any]] = {name: _default(name) for name in OPS}


def register(name: str, fn: Callable[..., Any]) -> None:
    """Route op `name` to `fn` (same signature and semantics as the reference)."""
    if name not in OPS:
        raise KeyError(f"unknown kernel op {name!r}; ops are {', '.join(OPS)}")
    _active[name] = fn


def use(backend: ModuleType) -> list[str]:
    """Take every op the module defines; returns the names taken."""
    taken = [name for name in OPS if callable(getattr(backend, name, None))]
    for name in taken:
        _active[name] = getattr(backend, name)
    return taken


def reset() -> None:
    """Back to the torch reference for every op."""
    for name in OPS:
        _active[name] = _default(name)


def active() -> dict[str, str]:
    """Which implementation each op uses now, as 'module.function'."""
    return {name: f"{fn.__module__}.{fn.__qualname__}" for name, fn in _active.items()}


@contextmanager
def overriding(**fns: Callable[..., Any]) -> Iterator[None]:
    """Temporarily route some ops elsewhere (tests compare a kernel against the reference this way)."""
    saved = dict(_active)
    try:
        for name, fn in fns.items():
            register(name, fn)
        yield
    finally:
        _active.clear()
        _active.update(saved)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _active["rms_norm"](x, weight, eps)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return _active["apply_rope"](x, cos, sin)


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, q_offset: int = 0, scale: float | None = None
) -> torch.Tensor:
    return _active["causal_attention"](q, k, v, q_offset=q_offset, scale=scale)


def index_topk(
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
) -> torch.Tensor:
    return _active["index_topk"](
        idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset
    )


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_indices: torch.Tensor,
    *,
    block_size: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    return _active["sparse_attention"](q, k, v, block_indices, block_size=block_size, q_offset=q_offset, scale=scale)


def msa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    return _active["msa_attention"](
        q, k, v, idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset,
        scale=scale,
    )  # fmt: skip


def swiglu_oai(gate_up: torch.Tensor, *, alpha: float, limit: float) -> torch.Tensor:
    return _active["swiglu_oai"](gate_up, alpha=alpha, limit=limit)


def moe_route(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return _active["moe_route"](x, weight, bias, top_k=top_k)


def moe_experts(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    weights: torch.Tensor,
    ids: torch.Tensor,
    *,
    alpha: float,
    limit: float,
) -> torch.Tensor:
    return _active["moe_experts"](x, gate_up, down, weights, ids, alpha=alpha, limit=limit)
