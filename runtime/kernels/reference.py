"""Torch reference for every hot op: the semantics each fast kernel must reproduce (see ../NOTES.md).

Clarity first, but the attention ops walk the queries in chunks so they also run at real sizes on a GPU without
materialising a [T, S] score matrix per head for the whole prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Bytes of fp32 scores one attention chunk may hold; bounds memory of the reference at long context.
_SCORE_BUDGET = 1 << 28


def _query_chunk(batch: int, heads: int, keys: int) -> int:
    return max(1, _SCORE_BUDGET // (4 * max(1, batch * heads * keys)))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma RMSNorm over the last dim: fp32 math, scale by (1 + weight), cast back."""
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (out * (1.0 + weight.float())).to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on the first cos.shape[-1] channels of x [..., T, H, D]; cos/sin are [..., T, R]."""
    r = cos.shape[-1]
    cos = cos.unsqueeze(-2)
    sin = sin.unsqueeze(-2)
    x_rot, x_pass = x[..., :r], x[..., r:]
    half = r // 2
    rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """q [B, Hkv, G, Tc, D], k/v [B, Hkv, S, D], allowed broadcastable to [B, Hkv, G, Tc, S] -> [B, Hkv, G, Tc, D]."""
    scores = torch.matmul(q.float(), k.float().unsqueeze(2).transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v.float().unsqueeze(2))


def _grouped(q: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """[B, T, Hq, D] -> [B, Hkv, G, T, D] with query head h in KV group h // G."""
    b, t, hq, d = q.shape
    return q.view(b, t, kv_heads, hq // kv_heads, d).permute(0, 2, 3, 1, 4)


def _ungrouped(o: torch.Tensor) -> torch.Tensor:
    """[B, Hkv, G, T, D] -> [B, T, Hq, D]."""
    b, hkv, g, t, d = o.shape
    return o.permute(0, 3, 1, 2, 4).reshape(b, t, hkv * g, d)


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, q_offset: int = 0, scale: float | None = None
) -> torch.Tensor:
    """Causal GQA softmax attention. q [B, T, Hq, D] at positions q_offset.., k/v [B, S, Hkv, D] at 0..S-1."""
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    scale = d**-0.5 if scale is None else scale
    qg = _grouped(q, hkv)
    kt, vt = k.transpose(1, 2), v.transpose(1, 2)
    key_pos = torch.arange(s, device=q.device)
    out = torch.empty(b, hkv, hq // hkv, t, d, dtype=torch.float32, device=q.device)
    step = _query_chunk(b, hq, s)
    for lo in range(0, t, step):
        hi = min(t, lo + step)
        q_pos = torch.arange(lo, hi, device=q.device) + q_offset
        allowed = key_pos[None, :] <= q_pos[:, None]  # [Tc, S]
        out[:, :, :, lo:hi] = _attend(qg[:, :, :, lo:hi], kt, vt, allowed, scale)
    return _ungrouped(out).to(q.dtype)


def index_topk(
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
) -> torch.Tensor:
    """MSA block selection. idx_q [B, T, H, D], idx_k [B, S, D] -> int32 [B, H, T, topk], left-packed, -1 padded.

    Score = fp32 dot product (no scale), future keys -inf, max-pooled per key block; the query's own block and the
    local_blocks-1 before it are forced in; the best `topk` blocks are kept in descending score order.
    """
    b, t, h, _ = idx_q.shape
    s = idx_k.shape[1]
    n_blocks = -(-s // block_size)
    keep = min(topk, n_blocks)
    out = torch.full((b, h, t, topk), -1, dtype=torch.int32, device=idx_q.device)
    qf = idx_q.float().transpose(1, 2)  # [B, H, T, D]
    kf = idx_k.float().transpose(1, 2)  # [B, D, S]
    key_pos = torch.arange(s, device=idx_q.device)
    pad = n_blocks * block_size - s
    step = _query_chunk(b, h, n_blocks * block_size)
    for lo in range(0, t, step):
        hi = min(t, lo + step)
        q_pos = torch.arange(lo, hi, device=idx_q.device) + q_offset
        scores = torch.matmul(qf[:, :, lo:hi], kf.unsqueeze(1))  # [B, H, Tc, S]
        scores = scores.masked_fill(key_pos[None, :] > q_pos[:, None], float("-inf"))
        if pad:
            scores = F.pad(scores, (0, pad), value=float("-inf"))
        block_scores = scores.view(b, h, hi - lo, n_blocks, block_size).amax(dim=-1)
        q_block = q_pos // block_size
        for j in range(local_blocks):
            local = (q_block - j).clamp(min=0).view(1, 1, -1, 1).expand(b, h, -1, 1)
            block_scores.scatter_(-1, local, float("inf"))
        values, ids = block_scores.topk(keep, dim=-1)
        out[:, :, lo:hi, :keep] = ids.masked_fill(values == float("-inf"), -1).to(torch.int32)
    return out


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
    """Block-sparse causal GQA attention: each query head sees only the key blocks its KV group selected.

    q [B, T, Hq, D], k/v [B, S, Hkv, D], block_indices [B, Hkv, T, topk] (block ids, -1 = unused) -> [B, T, Hq, D].
    """
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    scale = d**-0.5 if scale is None else scale
    n_blocks = -(-s // block_size)
    qg = _grouped(q, hkv)
    kt, vt = k.transpose(1, 2), v.transpose(1, 2)
    key_pos = torch.arange(s, device=q.device)
    key_block = key_pos // block_size
    out = torch.empty(b, hkv, hq // hkv, t, d, dtype=torch.float32, device=q.device)
    step = _query_chunk(b, hq, s)
    for lo in range(0, t, step):
        hi = min(t, lo + step)
        ids = block_indices[:, :, lo:hi].long()
        # -1 slots land in a spare column that is dropped.
        ids = torch.where(ids < 0, n_blocks, ids.clamp(max=n_blocks))
        chosen = torch.zeros(b, hkv, hi - lo, n_blocks + 1, dtype=torch.bool, device=q.device)
        chosen.scatter_(-1, ids, True)
        q_pos = torch.arange(lo, hi, device=q.device) + q_offset
        allowed = chosen[..., key_block] & (key_pos[None, :] <= q_pos[:, None])  # [B, Hkv, Tc, S]
        out[:, :, :, lo:hi] = _attend(qg[:, :, :, lo:hi], kt, vt, allowed.unsqueeze(2), scale)
    return _ungrouped(out).to(q.dtype)


def swiglu_oai(gate_up: torch.Tensor, *, alpha: float, limit: float) -> torch.Tensor:
    """[..., 2I] (gate, then up) -> [..., I]: (clamp(up) + 1) * g * sigmoid(alpha * g) with g = min(gate, limit)."""
    gate, up = gate_up.chunk(2, dim=-1)
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1.0) * (gate * torch.sigmoid(gate * alpha))


def moe_route(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid router: choose by sigmoid(logits) + bias, weight by the renormalised sigmoid scores.

    x [N, H], weight [E, H], bias [E] -> (weights fp32 [N, k], expert ids int64 [N, k]).
    """
    logits = F.linear(x.to(weight.dtype), weight)
    probs = torch.sigmoid(logits.float())
    _, ids = torch.topk(probs + bias.float(), top_k, dim=-1, sorted=False)
    weights = probs.gather(1, ids)
    return weights / weights.sum(dim=-1, keepdim=True), ids


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
    """Weighted sum of the chosen experts. x [N, H], gate_up [E, 2I, H], down [E, H, I], weights/ids [N, k]."""
    out = torch.zeros_like(x)
    for expert in torch.unique(ids).tolist():
        token, slot = torch.where(ids == expert)
        h = swiglu_oai(F.linear(x[token], gate_up[expert]), alpha=alpha, limit=limit)
        h = F.linear(h, down[expert]) * weights[token, slot, None]
        out.index_add_(0, token, h.to(out.dtype))
    return out
