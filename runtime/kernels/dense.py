"""Dense causal attention for M3's full-attention layers through torch's SDPA (FlashAttention on CUDA in 16-bit).

The torch reference (`reference.causal_attention`) materialises fp32 scores for every (query, key) pair in query
chunks: exact, and fine for tests, but at a 64K prompt that is ~70 TFLOP of fp32 matmuls and ~0.5 TB of score
traffic per layer. SDPA's fused kernels never hold the scores and run on the tensor cores, with GQA handled natively
(`enable_gqa`). Two query layouts map onto SDPA's causal forms exactly:

- a prompt from the start (q_offset = 0, T = S): `is_causal=True`;
- one token after the cache (q_offset = S - 1, T = 1): every key is visible, no mask.

Any other layout (a chunk after a cache, or queries that do not end at the last key) keeps the reference, which bounds
its score memory: SDPA with an explicit [T, S] mask would fall back to a kernel that cannot take GQA, or to the math
path, which holds T x S scores per head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runtime.kernels import reference


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, q_offset: int = 0, scale: float | None = None
) -> torch.Tensor:
    """Same contract as `reference.causal_attention`: q [B, T, Hq, D] at positions q_offset.., k/v [B, S, Hkv, D]."""
    t, hq = q.shape[1], q.shape[2]
    s, hkv = k.shape[1], k.shape[2]
    prompt = q_offset == 0 and t == s
    next_token = t == 1 and q_offset == s - 1
    if not (prompt or next_token) or hq % hkv:
        return reference.causal_attention(q, k, v, q_offset=q_offset, scale=scale)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=prompt and t > 1, scale=scale,
        enable_gqa=hq != hkv,
    )  # fmt: skip
    return out.transpose(1, 2)
