"""MSA index branch in Triton: score, max-pool per key block and select the top-k blocks without a [T, S] matrix.

One kernel walks key blocks for a tile of (query, index head) rows. All index heads share one key, so a tile stacks
BLOCK_Q queries x H heads as rows of one `tl.dot` against a [D, block] key tile; the block's pooled score (row max
under the causal mask) is folded straight into a running top-k held in registers (value, block id) per row. Nothing
bigger than [rows, block] ever exists.

When there are too few query tiles to fill the GPU (decode, short chunks against a long cache) the key blocks are
also split across programs; each split leaves its own top-k candidates and a small merge kernel picks the final k.

Semantics are `reference.index_topk`'s, with one difference in presentation: selected ids come out in descending
block order (most recent first) rather than by score. Ties between equal pooled scores go to the lower block id.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from runtime.kernels.msa_util import device_programs, dot_precision, next_pow2

# A (score, block id) pair packs into one int64 whose order is "higher score first, then lower id": the high word is
# the float's bits made order-preserving as an int32, the low word is 0x7FFFFFFF - id. Keys are distinct per row, so
# the running top-k needs a single min per block and the merge a single max per pick.
_NEG_INF_ORDERED = tl.constexpr(-2139095041)  # _ordered(-inf)
_FLOOR = tl.constexpr(-9187343244130779136)  # _pack(-inf, 0x7FFFFFFF): below every real key
_MERGE_ELEMS = 4096  # most packed keys one program merges at once in the fused split merge ([rows, candidates])


@triton.jit
def _ordered(x):
    bits = x.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _pack(score, block):
    return (_ordered(score).to(tl.int64) << 32) + (0x7FFFFFFF - block.to(tl.int64))


@triton.jit
def _unpack_id(key):
    # Ids below zero are placeholders (no block); the caller maps them to -1.
    return (0x7FFFFFFF - (key & 0xFFFFFFFF)).to(tl.int32)


@triton.jit
def _top_keys(keys, ROWS: tl.constexpr, TOPK: tl.constexpr, KPF: tl.constexpr):
    """The TOPK largest packed keys of each row of keys, in columns 0..TOPK-1 of a [ROWS, KPF] tile (rest _FLOOR)."""
    fcol = tl.arange(0, KPF)
    sel = tl.full([ROWS, KPF], _FLOOR, dtype=tl.int64)
    for i in tl.static_range(TOPK):
        best = tl.max(keys, axis=1)
        sel = tl.where(fcol[None, :] == i, best[:, None], sel)
        keys = tl.where(keys == best[:, None], _FLOOR, keys)
    return sel


@triton.jit
def _index_topk_kernel(
    q_ptr,
    k_ptr,
    scale_ptr,
    out_ptr,
    cand_ptr,
    cand2_ptr,
    count_ptr,
    T,
    S,
    q_offset,
    n_qtiles,
    blocks_per_split,
    n_splits,
    sq_b,
    sq_t,
    sq_h,
    sk_b,
    sk_s,
    ss_b,
    so_b,
    so_h,
    so_t,
    H: tl.constexpr,
    D: tl.constexpr,
    BS: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    TOPK: tl.constexpr,
    KP: tl.constexpr,
    LOCAL: tl.constexpr,
    SPLIT: tl.constexpr,
    PREC: tl.constexpr,
    SCALE: tl.constexpr = 0,
    FUSE: tl.constexpr = False,
    GS: tl.constexpr = 1,
    NG: tl.constexpr = 1,
    KPF: tl.constexpr = 16,
):
    # SCALE: 0 = keys as stored; 1 = one float32 scale per key (fp8 cache); 2 = one per key block (must be > 0).
    # FUSE (split form only): the last split of each group of GS merges the group's candidates, and the last group
    # of the query tile merges the groups' winners and writes the result, all in this launch (no merge kernel).
    # Latest query tiles walk the most key blocks: launch them first so the tail of the grid is short work.
    pid_q = n_qtiles - 1 - tl.program_id(0)
    pid_s = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)

    r = tl.arange(0, ROWS)
    t = pid_q * BLOCK_Q + r // H
    h = r % H
    row_ok = (r < BLOCK_Q * H) & (t < T)
    pos = q_offset + t
    q_blk = pos // BS
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * sq_b + t[:, None] * sq_t + h[:, None] * sq_h + d[None, :], mask=row_ok[:, None], other=0.0)

    t_last = tl.minimum((pid_q + 1) * BLOCK_Q, T) - 1
    pos_min = q_offset + pid_q * BLOCK_Q
    n_lo = pid_s * blocks_per_split
    n_hi = tl.minimum(n_lo + blocks_per_split, (q_offset + t_last) // BS + 1)

    kcol = tl.arange(0, KP)
    # Empty slots hold -inf with distinct placeholder ids -1-col; padding columns beyond TOPK hold +inf so they are
    # never the minimum to replace.
    fill = tl.where(kcol < TOPK, float("-inf"), float("inf"))
    keys = _pack(fill, -1 - kcol)[None, :] + tl.zeros([ROWS, KP], dtype=tl.int64)
    j = tl.arange(0, BS)
    for n in range(n_lo, n_hi):
        kpos = n * BS + j
        kt = tl.load(k_ptr + b * sk_b + kpos[None, :] * sk_s + d[:, None], mask=(kpos < S)[None, :], other=0.0)
        s = tl.dot(q, kt.to(q.dtype), input_precision=PREC)
        if SCALE == 1:
            s = s * tl.load(scale_ptr + b * ss_b + kpos, mask=kpos < S, other=1.0)[None, :]
        elif SCALE == 2:
            s = s * tl.load(scale_ptr + b * ss_b + n)
        # Only blocks reaching past the tile's first query need the causal mask (that includes the ragged last one);
        # the split (decode) form masks always, a cheap [rows, block] select that keeps the loop branch-free.
        if SPLIT:  # noqa: SIM114 - a constexpr branch and a runtime one; Triton compiles them differently
            s = tl.where(kpos[None, :] <= pos[:, None], s, float("-inf"))
        elif n * BS + BS - 1 > pos_min:
            s = tl.where(kpos[None, :] <= pos[:, None], s, float("-inf"))
        pooled = tl.max(s, axis=1)
        forced = (n <= q_blk) & (n > q_blk - LOCAL)
        pooled = tl.where(forced, float("inf"), pooled)
        new = _pack(pooled, n + tl.zeros([ROWS], dtype=tl.int32))
        cur_min = tl.min(keys, axis=1)
        # A fully-future block (-inf) sorts below every placeholder, so it never enters.
        put = (keys == cur_min[:, None]) & (new > cur_min)[:, None]
        keys = tl.where(put, new[:, None], keys)

    if SPLIT:
        keys = tl.where(_unpack_id(keys) >= 0, keys, _FLOOR)  # placeholders (incl. +inf padding) are not candidates
        if FUSE:
            # Candidates per program: [b, qtile, split, ROWS, KP]; group winners: [b, qtile, group, ROWS, KPF].
            tile = b * n_qtiles + pid_q
            tl.store(cand_ptr + ((tile * n_splits + pid_s) * ROWS + r)[:, None] * KP + kcol[None, :], keys)
            n_groups = tl.cdiv(n_splits, GS)
            grp = pid_s // GS
            in_grp = tl.minimum(GS, n_splits - grp * GS)
            # Every thread's store precedes the release; the acquire makes the other programs' stores visible.
            tl.debug_barrier()
            done = tl.atomic_add(count_ptr + tile * (NG + 1) + grp, 1, sem="acq_rel")
            if done == in_grp - 1:
                tl.store(count_ptr + tile * (NG + 1) + grp, 0)  # ready for the next call (CUDA-graph replays)
                c = tl.arange(0, GS * KP)
                sp = grp * GS + c // KP
                src = ((tile * n_splits + sp)[None, :] * ROWS + r[:, None]) * KP + (c % KP)[None, :]
                cand = tl.load(cand_ptr + src, mask=(sp < n_splits)[None, :], other=_FLOOR, cache_modifier=".cg")
                win = _top_keys(cand, ROWS, TOPK, KPF)
                fcol = tl.arange(0, KPF)
                tl.store(cand2_ptr + ((tile * NG + grp) * ROWS + r)[:, None] * KPF + fcol[None, :], win)
                tl.debug_barrier()
                done2 = tl.atomic_add(count_ptr + tile * (NG + 1) + NG, 1, sem="acq_rel")
                if done2 == n_groups - 1:
                    tl.store(count_ptr + tile * (NG + 1) + NG, 0)
                    c2 = tl.arange(0, NG * KPF)
                    g2 = c2 // KPF
                    src2 = ((tile * NG + g2)[None, :] * ROWS + r[:, None]) * KPF + (c2 % KPF)[None, :]
                    cand2 = tl.load(cand2_ptr + src2, mask=(g2 < n_groups)[None, :], other=_FLOOR, cache_modifier=".cg")
                    best = _top_keys(cand2, ROWS, TOPK, KPF)
                    ids = _unpack_id(best)
                    ids = tl.where(((best >> 32) > _NEG_INF_ORDERED) & (ids >= 0), ids, -1)
                    ids = tl.sort(ids, dim=1, descending=True)
                    off = b * so_b + h[:, None] * so_h + t[:, None] * so_t + fcol[None, :]
                    tl.store(out_ptr + off, ids, mask=row_ok[:, None] & (fcol[None, :] < TOPK))
        else:
            off = (((b * H + h) * T + t).to(tl.int64) * n_splits + pid_s)[:, None] * KP + kcol[None, :]
            tl.store(cand_ptr + off, keys, mask=row_ok[:, None])
    else:
        ids = _unpack_id(keys)
        ids = tl.sort(tl.where(ids >= 0, ids, -1), dim=1, descending=True)
        off = b * so_b + h[:, None] * so_h + t[:, None] * so_t + kcol[None, :]
        tl.store(out_ptr + off, ids, mask=row_ok[:, None] & (kcol[None, :] < TOPK))


@triton.jit
def _index_merge_kernel(
    cand_ptr,
    out_ptr,
    n_rows,
    n_cand,
    TOPK: tl.constexpr,
    KP: tl.constexpr,
    NC: tl.constexpr,
    R: tl.constexpr,
):
    # R (b, h, t) rows per program: TOPK picks of the largest packed key among every split's candidates.
    row = tl.program_id(0).to(tl.int64) * R + tl.arange(0, R)
    c = tl.arange(0, NC)
    ok = (row < n_rows)[:, None] & (c < n_cand)[None, :]
    keys = tl.load(cand_ptr + row[:, None] * n_cand + c[None, :], mask=ok, other=_FLOOR)
    kcol = tl.arange(0, KP)
    sel = tl.full([R, KP], -1, dtype=tl.int32)
    for i in tl.static_range(TOPK):
        best = tl.max(keys, axis=1)
        pick = _unpack_id(best)
        # Blocks scoring -inf (wholly in the future) and placeholders both mean "no block".
        pick = tl.where((best >> 32) > _NEG_INF_ORDERED, pick, -1)
        pick = tl.where(pick >= 0, pick, -1)
        sel = tl.where(kcol[None, :] == i, pick[:, None], sel)
        keys = tl.where(keys == best[:, None], _FLOOR, keys)
    sel = tl.sort(sel, dim=1, descending=True)
    tl.store(out_ptr + row[:, None] * TOPK + kcol[None, :], sel, mask=(row < n_rows)[:, None] & (kcol < TOPK)[None, :])


def index_topk(
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int = 0,
    splits: int | None = None,
    rows: int | None = None,
    num_stages: int = 3,
    num_warps: int | None = None,
    k_scale: torch.Tensor | None = None,
    fuse_merge: bool = False,
) -> torch.Tensor:
    """Triton `index_topk` (see `reference.index_topk`); the keywords after q_offset set the launch shape.

    k_scale: scores use idx_k * k_scale, for a quantized (e.g. float8_e4m3fn) index-key cache: float32 [B, S] (one
    scale per key) or [B, ceil(S / block_size)] (one positive scale per key block). fuse_merge: merge the split
    candidates inside the scoring launch (slower on the H200: see msa_notes.md; off by default).
    """
    b, t, h, d = idx_q.shape
    s = idx_k.shape[1]
    if idx_k.shape[0] != b or idx_k.shape[2] != d:
        raise ValueError(f"idx_k {tuple(idx_k.shape)} does not match idx_q {tuple(idx_q.shape)}")
    if q_offset < 0 or q_offset + t > s:
        raise ValueError(f"queries at {q_offset}..{q_offset + t - 1} do not sit inside {s} keys")
    if d < 16 or d & (d - 1) or block_size < 16 or block_size & (block_size - 1):
        raise ValueError("index head dim and block size must be powers of two >= 16")
    out = torch.full((b, h, t, topk), -1, dtype=torch.int32, device=idx_q.device)
    if t == 0 or topk == 0:
        return out
    if idx_q.stride(-1) != 1:
        idx_q = idx_q.contiguous()
    if idx_k.stride(-1) != 1:
        idx_k = idx_k.contiguous()
    scale_mode = 0
    if k_scale is not None:
        n_blk = -(-s // block_size)
        if k_scale.shape == (b, s):
            scale_mode = 1
        elif k_scale.shape == (b, n_blk):
            scale_mode = 2
        else:
            raise ValueError(f"k_scale {tuple(k_scale.shape)} is neither [B, S] nor [B, S / block_size]")
        k_scale = k_scale.to(torch.float32).contiguous()
    kp = next_pow2(max(topk, 2))
    if rows is None:
        rows = min(128, max(16, next_pow2(t * h)))
    rows = max(rows, next_pow2(h))
    block_q = rows // h
    n_qtiles = triton.cdiv(t, block_q)
    max_blocks = (q_offset + t - 1) // block_size + 1
    few_tiles = b * n_qtiles < 2 * device_programs(idx_q.device)
    if splits is None:
        splits = 1 if not few_tiles else -(-2 * device_programs(idx_q.device) // (b * n_qtiles))
        # Merge cost grows with splits x kp candidates per row; at least 4 key blocks per split.
        splits = max(1, min(splits, 4096 // kp, -(-max_blocks // 4)))
    per_split = -(-max_blocks // splits)
    splits = -(-max_blocks // per_split)
    split = splits > 1
    # A split cannot contribute more candidates than it has blocks.
    kp_split = max(2, min(kp, next_pow2(per_split))) if split else kp
    # Fused merge: groups of gs splits (gs x kp_split candidates per row), then ng groups' kp winners per row.
    gs = max(1, min(next_pow2(splits), _MERGE_ELEMS // (rows * kp_split)))
    n_groups = -(-splits // gs)
    ng = next_pow2(n_groups)
    fuse = split and rows * ng * kp <= _MERGE_ELEMS and fuse_merge
    dev = idx_q.device
    if fuse:
        cand = torch.empty((b, n_qtiles, splits, rows, kp_split), dtype=torch.int64, device=dev)
        cand2 = torch.empty((b, n_qtiles, ng, rows, kp), dtype=torch.int64, device=dev)
        counts = torch.zeros((b, n_qtiles, ng + 1), dtype=torch.int32, device=dev)
    else:
        cand = torch.empty((b, h, t, splits, kp_split) if split else (1,), dtype=torch.int64, device=dev)
        cand2 = counts = cand
    warps = num_warps or (8 if rows * block_size >= 128 * 128 else 4)
    _index_topk_kernel[(n_qtiles, splits, b)](
        idx_q, idx_k, k_scale if k_scale is not None else idx_k, out, cand, cand2, counts,
        t, s, q_offset, n_qtiles, per_split, splits,
        idx_q.stride(0), idx_q.stride(1), idx_q.stride(2),
        idx_k.stride(0), idx_k.stride(1), k_scale.stride(0) if k_scale is not None else 0,
        out.stride(0), out.stride(1), out.stride(2),
        H=h, D=d, BS=block_size, ROWS=rows, BLOCK_Q=block_q, TOPK=topk, KP=kp_split, LOCAL=local_blocks,
        SPLIT=split, PREC=dot_precision(idx_q), SCALE=scale_mode, FUSE=fuse, GS=gs, NG=ng, KPF=kp,
        num_warps=warps, num_stages=num_stages,
    )  # fmt: skip
    if split and not fuse:
        n_cand = splits * kp_split
        nc = next_pow2(n_cand)
        n_rows = b * h * t
        r = min(next_pow2(n_rows), max(1, 4096 // nc))
        _index_merge_kernel[(triton.cdiv(n_rows, r),)](
            cand, out, n_rows, n_cand, TOPK=topk, KP=kp, NC=nc, R=r, num_warps=8 if r * nc >= 2048 else 4
        )
    return out
