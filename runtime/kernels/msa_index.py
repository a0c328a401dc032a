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

from runtime.kernels.msa_util import device_programs, dot_precision, next_pow2, pdl_kwargs, pdl_wait_then_release

# A (score, block id) pair packs into one int64 whose order is "higher score first, then lower id": the high word is
# the float's bits made order-preserving as an int32, the low word is 0x7FFFFFFF - id. Keys are distinct per row, so
# the running top-k needs a single min per block and the merge a single max per pick.
_NEG_INF_ORDERED = tl.constexpr(-2139095041)  # _ordered(-inf)
_FLOOR = tl.constexpr(-9187343244130779136)  # _pack(-inf, 0x7FFFFFFF): below every real key
KEYS_M_DEFAULT = True  # see `_block_pool`


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
    """The TOPK largest packed keys of each row of keys, in columns 0..TOPK-1 of a [ROWS, KPF] tile (rest _FLOOR).

    A bitonic top-k (`tl.topk`): log-depth rounds of compare-and-swap and pairwise max, where TOPK rounds of
    max-then-remove were a chain of TOPK reductions across the whole program (~0.5 us each with 8 warps on the H200).
    Keys are distinct, so the result is exact. keys must have at least KPF columns."""
    fcol = tl.arange(0, KPF)
    return tl.where(fcol[None, :] < TOPK, tl.topk(keys, KPF, dim=1), _FLOOR)


@triton.jit
def _key_block(key):
    """Block id of a picked key, or -1: a block scoring -inf (wholly in the future) or a placeholder is no block."""
    block = _unpack_id(key)
    return tl.where(((key >> 32) > _NEG_INF_ORDERED) & (block >= 0), block, -1)


@triton.jit
def _block_ids(best, TOPK: tl.constexpr, KP: tl.constexpr):
    """Block ids of a [rows, KP] tile of picked keys (`_top_keys`' output), in descending block order, -1 padded."""
    kcol = tl.arange(0, KP)
    sel = tl.where((kcol < TOPK)[None, :], _key_block(best), -1)  # padding columns are no block either
    return tl.sort(sel, dim=1, descending=True)


@triton.jit
def _topk_insert(keys, pooled, n, ROWS: tl.constexpr):
    """Put block n (pooled scores [ROWS]) into the running top-k keys [ROWS, KP] where it beats the current minimum.

    A fully-future block (-inf) sorts below every placeholder, so it never enters."""
    new = _pack(pooled, n + tl.zeros([ROWS], dtype=tl.int32))
    cur_min = tl.min(keys, axis=1)
    put = (keys == cur_min[:, None]) & (new > cur_min)[:, None]
    return tl.where(put, new[:, None], keys)


@triton.jit
def _block_pool(q, k_base, kpos, k_end, sk_s, sc, pos, need_mask, D: tl.constexpr, PREC: tl.constexpr,
                SCALE: tl.constexpr, KEYS_M: tl.constexpr = False):
    """Pooled score [ROWS] of one key block (keys kpos, those at or past k_end absent): masked row max of q . k.

    KEYS_M: q comes transposed ([D, ROWS]) and the keys are the dot's M side (s is [block, ROWS]), for a few rows
    against many keys (decode): an [M=rows] tile pads 4 index heads to 16 rows, this one pads them to 8 columns and
    needs about a fifth fewer instructions per block (compiled for sm_90)."""
    d = tl.arange(0, D)
    if KEYS_M:
        kb = tl.load(k_base + kpos[:, None] * sk_s + d[None, :], mask=(kpos < k_end)[:, None], other=0.0)
        s = tl.dot(kb.to(q.dtype), q, input_precision=PREC)
        if SCALE == 1:
            s = s * sc[:, None]
        if need_mask:
            s = tl.where(kpos[:, None] <= pos[None, :], s, float("-inf"))
        pooled = tl.max(s, axis=0)
    else:
        kt = tl.load(k_base + kpos[None, :] * sk_s + d[:, None], mask=(kpos < k_end)[None, :], other=0.0)
        s = tl.dot(q, kt.to(q.dtype), input_precision=PREC)
        if SCALE == 1:
            s = s * sc[None, :]
        if need_mask:
            s = tl.where(kpos[None, :] <= pos[:, None], s, float("-inf"))
        pooled = tl.max(s, axis=1)
    if SCALE == 2:
        pooled = pooled * sc  # a positive per-block scale commutes with the max (and leaves -inf alone)
    return pooled


@triton.jit
def _scan_blocks(
    q, k_base, scale_base, n_lo, n_hi, S, pos, pos_min, q_blk, sk_s,
    ROWS: tl.constexpr, D: tl.constexpr, BS: tl.constexpr, TOPK: tl.constexpr, KP: tl.constexpr,
    LOCAL: tl.constexpr, SPLIT: tl.constexpr, PREC: tl.constexpr, SCALE: tl.constexpr, PAIR: tl.constexpr = False,
    KEYS_M: tl.constexpr = False,
):
    """Running top-k (packed keys, [ROWS, KP]) of rows q [ROWS, D] at positions pos over key blocks n_lo..n_hi-1.

    SPLIT: mask every block (decode: branch-free); else only blocks reaching past pos_min, the first query's position.
    SCALE: see `_index_topk_kernel`. PAIR: two blocks per iteration (SPLIT only), so the scales are fetched two
    blocks ahead and twice the key bytes are in flight per pipeline stage. KEYS_M: see `_block_pool`."""
    if k_base.dtype.element_ty.is_fp8():
        # fp8 keys widen to float16 in one instruction per pair (to bfloat16 in three), and a float32 tile of them
        # would not fit the pipeline's shared memory: score in float16. Index queries are normalised, far inside its
        # range, and its 11-bit mantissa is finer than the keys' 4.
        q = q.to(tl.float16)
    if KEYS_M:
        q = tl.trans(q)
    kcol = tl.arange(0, KP)
    # Empty slots hold -inf with distinct placeholder ids -1-col; padding columns beyond TOPK hold +inf so they are
    # never the minimum to replace.
    fill = tl.where(kcol < TOPK, float("-inf"), float("inf"))
    keys = _pack(fill, -1 - kcol)[None, :] + tl.zeros([ROWS, KP], dtype=tl.int64)
    j = tl.arange(0, BS)
    # key < min(S, n_hi * BS) also says the block is in range, without a scalar in a mask (Triton 3.9's interpreter
    # refuses one there).
    k_end = tl.minimum(S, n_hi * BS)
    # Scales are fetched an iteration ahead: a load used in the same iteration stalls the loop for a full memory
    # round trip (Triton pipelines the key tiles, not these small loads; a ring of prefetched registers that shifts
    # each iteration stops it from pipelining the key tiles too).
    sc = 1.0
    sc2 = 1.0
    if SCALE == 1:
        sc = tl.load(scale_base + n_lo * BS + j, mask=n_lo * BS + j < k_end, other=1.0)
        if PAIR:
            sc2 = tl.load(scale_base + n_lo * BS + BS + j, mask=n_lo * BS + BS + j < k_end, other=1.0)
    elif SCALE == 2:
        sc = tl.load(scale_base + n_lo, mask=n_lo < n_hi, other=1.0)
        if PAIR:
            sc2 = tl.load(scale_base + n_lo + 1, mask=n_lo + 1 < n_hi, other=1.0)
    if PAIR:
        for n in range(n_lo, n_hi, 2):
            kpos = n * BS + j
            pa = _block_pool(q, k_base, kpos, k_end, sk_s, sc, pos, True, D, PREC, SCALE, KEYS_M)
            pb = _block_pool(q, k_base, kpos + BS, k_end, sk_s, sc2, pos, True, D, PREC, SCALE, KEYS_M)
            if SCALE == 1:
                sc = tl.load(scale_base + kpos + 2 * BS, mask=kpos + 2 * BS < k_end, other=1.0)
                sc2 = tl.load(scale_base + kpos + 3 * BS, mask=kpos + 3 * BS < k_end, other=1.0)
            elif SCALE == 2:
                sc = tl.load(scale_base + n + 2, mask=n + 2 < n_hi, other=1.0)
                sc2 = tl.load(scale_base + n + 3, mask=n + 3 < n_hi, other=1.0)
            pa = tl.where((n <= q_blk) & (n > q_blk - LOCAL), float("inf"), pa)
            pb = tl.where((n + 1 <= q_blk) & (n + 1 > q_blk - LOCAL), float("inf"), pb)
            # Block n + 1 may lie past this split (an odd count): it belongs to the next one.
            pb = tl.where(n + 1 < n_hi, pb, float("-inf"))
            keys = _topk_insert(keys, pa, n, ROWS)
            keys = _topk_insert(keys, pb, n + 1, ROWS)
    else:
        for n in range(n_lo, n_hi):
            kpos = n * BS + j
            # Only blocks reaching past the tile's first query need the causal mask (that includes the ragged last
            # one); the split (decode) form masks always, a cheap [rows, block] select that keeps the loop
            # branch-free.
            pooled = _block_pool(q, k_base, kpos, S, sk_s, sc, pos, SPLIT or (n * BS + BS - 1 > pos_min), D, PREC,
                                 SCALE, KEYS_M)
            if SCALE == 1:
                sc = tl.load(scale_base + kpos + BS, mask=kpos + BS < k_end, other=1.0)
            elif SCALE == 2:
                sc = tl.load(scale_base + n + 1, mask=n + 1 < n_hi, other=1.0)
            pooled = tl.where((n <= q_blk) & (n > q_blk - LOCAL), float("inf"), pooled)
            keys = _topk_insert(keys, pooled, n, ROWS)
    return keys


@triton.jit
def _index_topk_kernel(
    q_ptr,
    k_ptr,
    scale_ptr,
    out_ptr,
    cand_ptr,
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
    KEYS_M: tl.constexpr = False,
    PDL: tl.constexpr = False,
):
    # SCALE: 0 = keys as stored; 1 = one float32 scale per key (fp8 cache); 2 = one per key block (must be > 0).
    if PDL:
        pdl_wait_then_release()
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

    keys = _scan_blocks(
        q, k_ptr + b * sk_b, scale_ptr + b * ss_b, n_lo, n_hi, S, pos, pos_min, q_blk, sk_s,
        ROWS, D, BS, TOPK, KP, LOCAL, SPLIT, PREC, SCALE, False, KEYS_M,
    )
    kcol = tl.arange(0, KP)
    if SPLIT:
        keys = tl.where(_unpack_id(keys) >= 0, keys, _FLOOR)  # placeholders (incl. +inf padding) are not candidates
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
    group,
    n_groups,
    TOPK: tl.constexpr,
    KP: tl.constexpr,
    NC: tl.constexpr,
    R: tl.constexpr,
    OUT_KEYS: tl.constexpr,
    PDL: tl.constexpr = False,
):
    if PDL:
        pdl_wait_then_release()
    # R (row, group) pairs per program, row = (b, h, t): TOPK picks of the largest packed key among the group's
    # candidates cand[row, grp * group : (grp + 1) * group]. OUT_KEYS: write the picks as packed keys, [row, grp, KP]
    # (a first level that cuts a long candidate list into groups merged in parallel); else the block ids.
    rr = tl.program_id(0).to(tl.int64) * R + tl.arange(0, R)
    row = rr // n_groups
    c = tl.arange(0, NC)
    idx = (rr % n_groups)[:, None] * group + c[None, :]
    ok = (rr < n_rows * n_groups)[:, None] & (c < group)[None, :] & (idx < n_cand)
    keys = tl.load(cand_ptr + row[:, None] * n_cand + idx, mask=ok, other=_FLOOR)
    kcol = tl.arange(0, KP)
    if OUT_KEYS:
        top = _top_keys(keys, R, TOPK, KP)
        tl.store(out_ptr + rr[:, None] * KP + kcol[None, :], top, mask=(rr < n_rows * n_groups)[:, None])
    else:
        sel = _block_ids(_top_keys(keys, R, TOPK, KP), TOPK, KP)
        store_ok = (rr < n_rows)[:, None] & (kcol < TOPK)[None, :]
        tl.store(out_ptr + row[:, None] * TOPK + kcol[None, :], sel, mask=store_ok)


def _merge_candidates(cand: torch.Tensor, out: torch.Tensor, n_rows: int, n_cand: int, topk: int, kp: int,
                      group: int | None, pdl: dict[str, bool]) -> None:
    """out[row] = the topk block ids among cand[row, :n_cand] (packed keys). Long lists are cut into groups of
    `group` candidates merged in parallel first (None: 256 once a row has more than 512; 0: never), because each of
    the topk picks is a reduction across the program, a dependent chain that one program per row walks slowly."""
    if group is None:
        group = 256 if n_cand > 512 else 0
    if group and group < n_cand:
        n_groups = -(-n_cand // group)
        keys = torch.empty((n_rows, n_groups, kp), dtype=torch.int64, device=cand.device)
        _index_merge_kernel[(n_rows * n_groups,)](
            cand, keys, n_rows, n_cand, group, n_groups, TOPK=topk, KP=kp, NC=max(kp, next_pow2(group)), R=1,
            OUT_KEYS=True,
            num_warps=1 if group <= 256 else 4, **pdl,
        )  # fmt: skip
        cand, n_cand = keys, n_groups * kp
    nc = max(kp, next_pow2(n_cand))
    r = min(next_pow2(n_rows), max(1, 4096 // nc))
    warps = 8 if r * nc >= 2048 else (4 if r * nc >= 512 else 1)
    _index_merge_kernel[(triton.cdiv(n_rows, r),)](
        cand, out, n_rows, n_cand, n_cand, 1, TOPK=topk, KP=kp, NC=nc, R=r, OUT_KEYS=False, num_warps=warps, **pdl
    )


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
    num_stages: int | None = None,
    num_warps: int | None = None,
    k_scale: torch.Tensor | None = None,
    merge_group: int | None = None,
    keys_m: bool = KEYS_M_DEFAULT,
) -> torch.Tensor:
    """Triton `index_topk` (see `reference.index_topk`); the keywords after q_offset set the launch shape.

    k_scale: scores use idx_k * k_scale, for a quantized (e.g. float8_e4m3fn) index-key cache: float32 [B, S] (one
    scale per key) or [B, ceil(S / block_size)] (one positive scale per key block). merge_group: see
    `_merge_candidates`. keys_m: score tiles of at most 16 rows with the keys on the dot's M side (see
    `_block_pool`).
    """
    b, t, h, d = idx_q.shape
    s = idx_k.shape[1]
    if idx_k.shape[0] != b or idx_k.shape[2] != d:
        raise ValueError(f"idx_k {tuple(idx_k.shape)} does not match idx_q {tuple(idx_q.shape)}")
    if q_offset < 0 or q_offset + t > s:
        raise ValueError(f"queries at {q_offset}..{q_offset + t - 1} do not sit inside {s} keys")
    if d < 16 or d & (d - 1) or block_size < 16 or block_size & (block_size - 1):
        raise ValueError("index head dim and block size must be powers of two >= 16")
    # Every (row, slot) is written by the kernels (-1 where no block): no fill launch, which decode would feel.
    out = torch.empty((b, h, t, topk), dtype=torch.int32, device=idx_q.device)
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
    keys_m = keys_m and rows <= 16
    if keys_m:
        rows = max(8, next_pow2(min(rows, t * h)))
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
    dev = idx_q.device
    # PDL for bf16 keys only: with an fp8 cache it made decode slower on the H200 (MSA total at 1M 103 vs 86 us, two
    # runs), where bf16 was even or better (128K: 28.5 vs 31.4 us). Cause not found; see msa_notes.md.
    pdl = pdl_kwargs(dev) if k_scale is None else {}
    cand = torch.empty((b, h, t, splits, kp_split) if split else (1,), dtype=torch.int64, device=dev)
    warps = num_warps or (8 if rows * block_size >= 128 * 128 else 4)
    if num_stages is None:
        # Prefill tiles of 128 rows: two key stages leave 121 registers and 96 KB of shared memory, so two programs
        # share an SM and one's top-k update overlaps the other's matmul (three stages: 166 registers, one program).
        num_stages = 3 if split else 2
    _index_topk_kernel[(n_qtiles, splits, b)](
        idx_q, idx_k, k_scale if k_scale is not None else idx_k, out, cand,
        t, s, q_offset, n_qtiles, per_split, splits,
        idx_q.stride(0), idx_q.stride(1), idx_q.stride(2),
        idx_k.stride(0), idx_k.stride(1), k_scale.stride(0) if k_scale is not None else 0,
        out.stride(0), out.stride(1), out.stride(2),
        H=h, D=d, BS=block_size, ROWS=rows, BLOCK_Q=block_q, TOPK=topk, KP=kp_split, LOCAL=local_blocks,
        SPLIT=split, PREC=dot_precision(idx_q), SCALE=scale_mode, KEYS_M=keys_m,
        num_warps=warps, num_stages=num_stages, **pdl,
    )  # fmt: skip
    if split:
        _merge_candidates(cand, out, b * h * t, splits * kp_split, topk, kp, merge_group, pdl)
    return out
