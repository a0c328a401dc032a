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
- `msa_decode`: both in one launch for decode (one token per sequence), behind `msa_attention`.
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
    k_scale: torch.Tensor | None = None,
    **launch: Any,
) -> torch.Tensor:
    """Top-k key blocks per (index head, query): int32 [B, H, T, topk], left-packed, -1 padded, distinct.

    With `k_scale`, idx_k is a quantized index-key cache (see `quantize_index_keys`: float8_e4m3fn keys and float32
    scales, per key [B, S] or per key block [B, ceil(S / block_size)]) and the selection is that of the dequantized
    keys `dequantize_index_keys(idx_k, k_scale, block_size)`. The Triton kernel reads the fp8 keys directly (half the
    bytes of a bf16 cache) and upcasts them to idx_q's dtype in registers.
    """
    kernel_ok = triton_enabled(idx_q) and _supported(idx_q, idx_q.shape[-1], block_size)
    if k_scale is not None and idx_k.dtype not in (torch.float32, torch.float16, torch.bfloat16) and not idx_q.is_cuda:
        kernel_ok = False  # fp8 loads need a GPU; the interpreter runs the scale path with float16 stand-ins
    if not kernel_ok:
        if k_scale is not None:
            idx_k = dequantize_index_keys(idx_k, k_scale, block_size=block_size).to(idx_q.dtype)
        return reference.index_topk(
            idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset
        )
    _prepare()
    from runtime.kernels import msa_index

    return msa_index.index_topk(
        idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset,
        k_scale=k_scale, **launch,
    )  # fmt: skip


FP8_MAX = 448.0  # largest finite float8_e4m3fn


def quantize_index_keys(
    idx_k: torch.Tensor, *, per: str = "token", block_size: int = 128, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize an index-key cache [B, S, D] to float8_e4m3fn with float32 absmax scales.

    per="token": scales [B, S] (one per key; 4 bytes per key on top of D bytes); per="block": scales
    [B, ceil(S / block_size)] (one per key block, shared by its keys). Returns (keys, scales) with
    keys * scale ~= idx_k. `dtype` overrides the storage type (tests use float16 to run the same path on CPU).
    """
    b, s, d = idx_k.shape
    x = idx_k.float()
    if per == "token":
        amax = x.abs().amax(-1)
        scale = (amax / FP8_MAX).clamp(min=1e-12)
        q = x / scale[..., None]
    elif per == "block":
        n = -(-s // block_size)
        pad = torch.nn.functional.pad(x, (0, 0, 0, n * block_size - s))
        amax = pad.view(b, n, block_size * d).abs().amax(-1)
        scale = (amax / FP8_MAX).clamp(min=1e-12)
        q = (pad.view(b, n, block_size, d) / scale[..., None, None]).view(b, n * block_size, d)[:, :s]
    else:
        raise ValueError(f"per must be 'token' or 'block', not {per!r}")
    q = q.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    if dtype is not None:
        q = q.to(dtype)
    return q, scale.contiguous()


def dequantize_index_keys(keys: torch.Tensor, scale: torch.Tensor, *, block_size: int = 128) -> torch.Tensor:
    """float32 [B, S, D] from `quantize_index_keys`' output (either scale granularity)."""
    b, s, _ = keys.shape
    x = keys.float()
    if scale.shape == (b, s):
        return x * scale.float()[..., None]
    per_key = scale.float().repeat_interleave(block_size, dim=1)[:, :s]
    return x * per_key[..., None]


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
    k_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """`index_topk` then `sparse_attention` over its selection (see `runtime.kernels.msa_attention`).

    Decode (one token per sequence, one index head per KV head) runs as one fused launch (`msa_decode`); everything
    else as the two kernels. k_scale: a quantized index-key cache, as for `index_topk`."""
    b, t, _, d = q.shape
    fused = (
        t == 1
        and idx_q.shape[2] == k.shape[2]
        and triton_enabled(q)
        and _supported(q, d, block_size)
        and _supported(idx_q, idx_q.shape[-1], block_size)
    )
    if fused:
        _prepare()
        from runtime.kernels.msa_decode import msa_decode
        from runtime.kernels.msa_util import device_programs

        if b <= device_programs(q.device):
            out, _ = msa_decode(
                q, k, v, idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks,
                q_offset=q_offset, scale=scale, k_scale=k_scale, parts=2 if block_size >= 32 else 1,
            )  # fmt: skip
            return out
    blocks = index_topk(
        idx_q, idx_k, block_size=block_size, topk=topk, local_blocks=local_blocks, q_offset=q_offset, k_scale=k_scale
    )
    return sparse_attention(q, k, v, blocks, block_size=block_size, q_offset=q_offset, scale=scale)


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
