"""MSA (MiniMax Sparse Attention) kernels behind the runtime's kernel interface.

`index_topk` and `sparse_attention` keep the signatures and semantics of `reference.index_topk` /
`reference.sparse_attention` and run the Triton kernels on CUDA tensors (and on CPU tensors when TRITON_INTERPRET=1,
which is how the tests run them); other devices, and shapes the kernels do not take (blocks or head dims under 16),
use the torch reference, so `kernels.use(msa)` is safe anywhere. Two presentation differences from the reference,
both inside its contract: selected block ids come out in descending block order (the reference sorts by score), and
ties between equal pooled scores go to the lower block id.

- `msa_index`: fused scoring + max-pool + running top-k (no [T, S] matrix), split over key blocks for decode.
- `msa_sparse`: KV-outer prefill/chunked prefill (gathered queries per key block, log-sum-exp merge) and the split
  decode form.
- `msa_query_outer`: the query-outer baseline, for benchmarks.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

from runtime.kernels import reference

_HAVE_TRITON = importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_enabled(x: torch.Tensor) -> bool:
    """Whether the Triton kernels serve tensor x (CUDA, or CPU under the Triton interpreter)."""
    if not _HAVE_TRITON:
        return False
    if x.is_cuda:
        return not _interpreting()
    return x.device.type == "cpu" and _interpreting()


def _pow2_at_least_16(n: int) -> bool:
    return n >= 16 and n & (n - 1) == 0


def _supported(x: torch.Tensor, head_dim: int, block_size: int) -> bool:
    """Shapes the kernels take (tl.dot wants >= 16 along each side); others (tiny test configs) use the reference."""
    return (
        x.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and _pow2_at_least_16(head_dim)
        and head_dim <= 256
        and _pow2_at_least_16(block_size)
        and block_size <= 256
    )


def _prepare() -> None:
    if _interpreting():
        from runtime.kernels.msa_util import interpreter_compat

        interpreter_compat()


def index_topk(
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
    **launch: Any,
) -> torch.Tensor:
    """Top-k key blocks per (index head, query): int32 [B, H, T, topk], left-packed, -1 padded, distinct."""
    if not (triton_enabled(idx_q) and _supported(idx_q, idx_q.shape[-1], block_size)):
        return reference.index_topk(
            idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset
        )
    _prepare()
    from runtime.kernels import msa_index

    return msa_index.index_topk(
        idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset, **launch
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
    **launch: Any,
) -> torch.Tensor:
    """Exact causal softmax of each query head over its KV group's selected blocks: [B, T, Hq, D].

    KV-outer for prefill and chunked prefill, split over blocks for decode (`launch` may pass `mode`/`config`).
    """
    if not (triton_enabled(q) and _supported(q, q.shape[-1], block_size)):
        return reference.sparse_attention(q, k, v, block_indices, block_size=block_size, q_offset=q_offset, scale=scale)
    _prepare()
    from runtime.kernels import msa_sparse

    return msa_sparse.sparse_attention(
        q, k, v, block_indices, block_size=block_size, q_offset=q_offset, scale=scale, **launch
    )


def sparse_attention_query_outer(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_indices: torch.Tensor,
    *,
    block_size: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """The query-outer baseline (Triton only): same contract as `sparse_attention`."""
    _prepare()
    from runtime.kernels import msa_query_outer

    return msa_query_outer.sparse_attention_query_outer(
        q, k, v, block_indices, block_size=block_size, q_offset=q_offset, scale=scale
    )
