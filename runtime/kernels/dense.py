"""Dense causal attention for M3's full-attention layers through torch's FlashAttention kernel (SDPA), on CUDA.

The torch reference (`reference.causal_attention`) materialises fp32 scores for every (query, key) pair in query
chunks: exact, and fine for tests, but at a 64K prompt that is ~70 TFLOP of fp32 matmuls and ~0.5 TB of score
traffic per layer. FlashAttention never holds the scores, runs on the tensor cores and takes GQA natively.

The runtime's queries are always the last T of the S cached keys (q_offset = S - T): a prompt from the start, a
prompt chunk after a cache (the engine's chunked prefill), or one decode token. That is causal attention aligned at
the bottom right, which SDPA expresses exactly (`is_causal` for T = S, no mask for T = 1, `causal_lower_right`
otherwise). Anything else, and any input FlashAttention cannot take (fp32, a CPU tensor, head_dim over 256, an older
GPU), keeps the reference: SDPA's other backends would hold T x S scores per head, which the reference bounds.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from runtime.kernels import reference


def sdpa_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float | None = None) -> torch.Tensor:
    """Causal attention of queries q [B, T, Hq, D] that sit at the last T of the keys k/v [B, S, Hkv, D], through
    SDPA (whichever backend it picks for these inputs)."""
    t, s = q.shape[1], k.shape[1]
    if t > s:
        raise ValueError(f"{t} queries cannot be the last ones of {s} keys")
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = q.shape[2] != k.shape[2]
    if t == s:
        out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=t > 1, scale=scale, enable_gqa=gqa)
    elif t == 1:
        out = F.scaled_dot_product_attention(qt, kt, vt, scale=scale, enable_gqa=gqa)
    else:
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=causal_lower_right(t, s), scale=scale,
                                             enable_gqa=gqa)
    return out.transpose(1, 2)


def _flash_can_run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    if not q.is_cuda or q.shape[2] % k.shape[2]:
        return False
    from torch.backends.cuda import SDPAParams, can_use_flash_attention

    params = SDPAParams(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, 0.0, False,
                        q.shape[2] != k.shape[2])
    return bool(can_use_flash_attention(params, False))


_broken: list[str] = []  # why SDPA failed here once, if it did: the reference serves from then on


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, q_offset: int = 0, scale: float | None = None
) -> torch.Tensor:
    """Same contract as `reference.causal_attention`: q [B, T, Hq, D] at positions q_offset.., k/v [B, S, Hkv, D]."""
    if not _broken and q_offset + q.shape[1] == k.shape[1]:
        try:
            if _flash_can_run(q, k, v):
                return sdpa_causal(q, k, v, scale=scale)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, TypeError) as exc:  # an SDPA API this torch lacks or changed: slower, still exact
            _broken.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(f"SDPA failed ({_broken[0]}); full-attention layers use the torch reference", stacklevel=2)
    return reference.causal_attention(q, k, v, q_offset=q_offset, scale=scale)
