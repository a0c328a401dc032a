"""Checks for MSA kernels that scale to full size: block selection up to float ties, attention on sampled rows.

Two top-k selections are both right when they differ only among blocks whose pooled scores tie within float error, so
selections are judged against float64 pooled scores rather than compared id for id. The attention check recomputes
sampled query rows exactly (float64) over just their selected blocks, so it runs at 128K tokens and beyond.
"""

from __future__ import annotations

import torch


def pooled_scores(
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    local_blocks: int,
    q_offset: int = 0,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Float64 block scores [B, H, R, NB] exactly as the reference defines them (forced local blocks +inf)."""
    if rows is None:
        rows = torch.arange(idx_q.shape[1], device=idx_q.device)
    s = idx_k.shape[1]
    nb = -(-s // block_size)
    q = idx_q[:, rows].double().transpose(1, 2)  # [B, H, R, D]
    k = idx_k.double()  # [B, S, D]
    scores = torch.matmul(q, k.transpose(1, 2).unsqueeze(1))  # [B, H, R, S]
    pos = rows.to(idx_q.device) + q_offset
    key_pos = torch.arange(s, device=idx_q.device)
    scores = scores.masked_fill(key_pos[None, :] > pos[:, None], float("-inf"))
    scores = torch.nn.functional.pad(scores, (0, nb * block_size - s), value=float("-inf"))
    pooled = scores.view(*scores.shape[:-1], nb, block_size).amax(-1)
    q_blk = pos // block_size
    blocks = torch.arange(nb, device=idx_q.device)
    forced = (blocks[None, :] <= q_blk[:, None]) & (blocks[None, :] > q_blk[:, None] - local_blocks)
    return pooled.masked_fill(forced, float("inf"))


def selection_errors(ids: torch.Tensor, pooled: torch.Tensor, *, rel_tol: float = 1e-4) -> dict[str, int]:
    """Rows of `ids` [B, H, R, topk] that break the contract given float64 `pooled` [B, H, R, NB]; all zero = ok.

    A row is right when it is left-packed, distinct, holds min(topk, visible blocks) ids, keeps every forced block,
    and every kept block scores within rel_tol of the k-th best score (so ties may go either way).
    """
    topk = ids.shape[-1]
    nb = pooled.shape[-1]
    ids = ids.long()
    valid = ids >= 0
    packed_bad = (valid[..., 1:] & ~valid[..., :-1]).any(-1)
    visible = (pooled > float("-inf")).sum(-1)
    want = visible.clamp(max=topk)
    count_bad = valid.sum(-1) != want
    sorted_ids = torch.where(valid, ids, -1 - torch.arange(topk, device=ids.device)).sort(-1).values
    dup_bad = ((sorted_ids[..., 1:] == sorted_ids[..., :-1]) & (sorted_ids[..., 1:] >= 0)).any(-1)
    range_bad = (ids >= nb).any(-1)
    chosen = pooled.gather(-1, ids.clamp(0, nb - 1))
    kth_pos = (want - 1).clamp(min=0).unsqueeze(-1)
    kth = pooled.topk(min(topk, nb), dim=-1).values.gather(-1, kth_pos.clamp(max=min(topk, nb) - 1))
    finite = pooled.masked_fill(~torch.isfinite(pooled), 0.0).abs().amax(-1, keepdim=True).clamp(min=1.0)
    score_bad = (valid & (chosen < kth - rel_tol * finite)).any(-1)
    n_forced = (pooled == float("inf")).sum(-1)
    forced_bad = ((valid & (chosen == float("inf"))).sum(-1) != n_forced.clamp(max=topk)) & (want > 0)
    return {
        "rows": int(ids[..., 0].numel()),
        "not_left_packed": int(packed_bad.sum()),
        "wrong_count": int(count_bad.sum()),
        "duplicates": int(dup_bad.sum()),
        "out_of_range": int(range_bad.sum()),
        "below_kth_score": int(score_bad.sum()),
        "forced_missing": int(forced_bad.sum()),
    }


def sparse_rows_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_indices: torch.Tensor,
    rows: torch.Tensor,
    *,
    block_size: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """Exact float64 `sparse_attention` output for query rows `rows` only: [B, R, Hq, D], gathering their blocks."""
    b, _, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = d**-0.5 if scale is None else scale
    ids = block_indices[:, :, rows].long()  # [B, Hkv, R, K]
    valid = ids >= 0
    offs = torch.arange(block_size, device=q.device)
    key_pos = ids.clamp(min=0).unsqueeze(-1) * block_size + offs  # [B, Hkv, R, K, bs]
    pos = (rows.to(q.device) + q_offset).view(1, 1, -1, 1, 1)
    allowed = valid.unsqueeze(-1) & (key_pos <= pos) & (key_pos < s)
    flat = key_pos.clamp(max=s - 1).flatten(2)  # [B, Hkv, R*K*bs]
    kt = k.transpose(1, 2).double()  # [B, Hkv, S, D]
    vt = v.transpose(1, 2).double()
    kk = kt.gather(2, flat.unsqueeze(-1).expand(-1, -1, -1, d)).view(*ids.shape, block_size, d)
    vv = vt.gather(2, flat.unsqueeze(-1).expand(-1, -1, -1, d)).view(*ids.shape, block_size, d)
    qq = q[:, rows].double().view(b, len(rows), hkv, g, d).permute(0, 2, 1, 3, 4)  # [B, Hkv, R, G, D]
    kk = kk.flatten(3, 4)  # [B, Hkv, R, K*bs, D]
    vv = vv.flatten(3, 4)
    scores = torch.matmul(qq, kk.transpose(-1, -2)) * scale  # [B, Hkv, R, G, K*bs]
    scores = scores.masked_fill(~allowed.flatten(3, 4).unsqueeze(3), float("-inf"))
    out = torch.matmul(torch.softmax(scores, dim=-1), vv)  # [B, Hkv, R, G, D]
    return out.permute(0, 2, 1, 3, 4).reshape(b, len(rows), hq, d)


def selection_overlap(ids: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over rows of |ids ∩ ref| / |ref| (ignoring -1 and order): how much of ref's selection ids kept."""
    a = ids.reshape(-1, ids.shape[-1]).long()
    b = ref.reshape(-1, ref.shape[-1]).long()
    hit = ((a[:, :, None] == b[:, None, :]) & (b >= 0)[:, None, :]).any(1).sum(-1).float()
    return (hit / (b >= 0).sum(-1).clamp(min=1).float()).mean().item()
