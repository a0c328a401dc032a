"""MSA main branch in Triton: block-sparse causal GQA attention, KV-outer.

Each query of a KV group picked `topk` key blocks. Instead of each query walking its own blocks (query-outer: every
block load feeds just the G heads of one query), we invert the selection: for each (KV head, key block) gather the
queries that chose it, load the block's K and V once, and compute every gathered row's partial softmax against it.
Rows are (query, head-of-group) pairs, SUB queries x G heads per `tl.dot`, and one program runs up to SUB_TILES such
tiles against the block it loaded. Each (query, slot) partial leaves a normalised output and its log-sum-exp; a merge
kernel folds a query's `topk` partials.

Entry points share the partial layout [B, Hkv, T, topk, G, D] (flat index = the slot's index in block_indices):
- `kv_outer` (prefill, chunked prefill): the inverse map is a counting sort of slots by bucket (L2 sub-chunk of
  queries, b, h, block, whether the block reaches past the query). Programs run bucket after bucket, so a sub-chunk of
  queries stays hot in L2, and in the Triton kernel only diagonal buckets pay for a causal mask (the Gluon kernel masks
  every tile, in one loop). Then `_merge_kernel`.
- `split` (decode, tiny chunks): one program per (query, slot), no inverse map; the last program of each query to
  finish merges its partials in the same launch.

Partials are kept in the activation dtype (bf16 on the GPU): normalised values in [-|v|max, |v|max] lose nothing
that the bf16 output would keep, and halve the bytes of the dominant traffic (topk partials per output). Long prompts
are processed in query chunks so the partial buffer stays under `partial_budget` bytes.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from triton.compiler.errors import CompilationError

from runtime.kernels.msa_util import dot_precision, kernel_state, next_pow2, pdl_kwargs, pdl_wait_then_release

LOG2E = 1.4426950408889634
PARTIAL_BUDGET = 4 << 30
HOPPER_ROWS = 64  # rows (gathered queries x group heads) per wgmma tile in the Gluon partial kernel: one warpgroup's M


@dataclass(frozen=True)
class KVOuterConfig:
    sub: int = 4  # queries per tl.dot tile (rows = sub x G)
    # Tiles one program runs against the block it loaded once. 64, not 16: fewer programs pay the K/V prologue
    # (partials -6 % at 128K on an H100, Gluon and Triton kernels alike; msa_notes.md, ninth session).
    sub_tiles: int = 64
    t_sub: int = 4096  # queries per L2 sub-chunk in the sort key (0 = no sub-chunking)
    merge_t: int = 8  # queries per merge program
    num_warps: int = 4
    num_stages: int = 3
    partial_budget: int = PARTIAL_BUDGET
    hopper: bool = True  # the Gluon partial kernel (async wgmma) where it applies; False keeps the Triton one


@triton.jit
def _block_partial(q, k, v, kpos, pos, need_mask, qk_scale, PREC: tl.constexpr):
    """Softmax of rows q [R, D] over one key block k/v [BS, D]: (normalised output [R, D] fp32, log2-sum-exp [R]).

    need_mask may be a constexpr (KV-outer: the bucket says) or a runtime flag (split)."""
    s = tl.dot(q, tl.trans(k), input_precision=PREC)
    s = s * qk_scale
    if need_mask:
        s = tl.where(kpos[None, :] <= pos[:, None], s, float("-inf"))
    m = tl.max(s, axis=1)
    # A row with no visible key (a block wholly in its future) must give l = 0, not NaN.
    m = tl.where(m == float("-inf"), 0.0, m)
    p = tl.exp2(s - m[:, None])
    l_sum = tl.sum(p, axis=1)
    acc = tl.dot(p.to(v.dtype), v, input_precision=PREC)
    nonzero = l_sum > 0.0
    l_safe = tl.where(nonzero, l_sum, 1.0)
    o = acc / l_safe[:, None]
    lse = tl.where(nonzero, m + tl.log2(l_safe), float("-inf"))
    return o, lse


@triton.jit
def _kv_tiles(
    q_ptr, k, v, order_ptr, part_o_ptr, part_lse_ptr, lo, hi, b, h, kpos, t_base, q_offset, qk_scale, sq_b, sq_t,
    sq_h, TOPK: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, SUB: tl.constexpr,
    PREC: tl.constexpr, MASK: tl.constexpr,
):
    # Every gathered query of order[lo:hi] against the block already in registers, SUB queries x G heads a tile.
    # A slot's query row is slot // TOPK - t_base: the bucket fixes b and h (a subtraction, not a division by T).
    d = tl.arange(0, D)
    r = tl.arange(0, SUB * GP)
    g = r % GP
    for e0 in range(lo, hi, SUB):
        e = e0 + r // GP
        e_ok = e < hi
        row_ok = e_ok & (g < G)
        flat = tl.load(order_ptr + e, mask=e_ok, other=0)
        t = flat // TOPK - t_base
        q = tl.load(
            q_ptr + b * sq_b + t[:, None].to(tl.int64) * sq_t + (h * G + g)[:, None] * sq_h + d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        )
        o, lse = _block_partial(q, k, v, kpos, q_offset + t, MASK, qk_scale, PREC)
        prow = flat.to(tl.int64) * G + g
        tl.store(part_o_ptr + prow[:, None] * D + d[None, :], o.to(part_o_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(part_lse_ptr + prow, lse, mask=row_ok)


@triton.jit
def _kv_outer_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    order_ptr,
    tile_bucket_ptr,
    tile_lo_ptr,
    tile_hi_ptr,
    part_o_ptr,
    part_lse_ptr,
    B,
    T,
    S,
    q_offset,
    NB,
    qk_scale,
    sq_b,
    sq_t,
    sq_h,
    sk_b,
    sk_s,
    sk_h,
    sv_b,
    sv_s,
    sv_h,
    HKV: tl.constexpr,
    TOPK: tl.constexpr,
    G: tl.constexpr,
    GP: tl.constexpr,
    D: tl.constexpr,
    BS: tl.constexpr,
    SUB: tl.constexpr,
    PREC: tl.constexpr,
):
    tile = tl.program_id(0)
    lo = tl.load(tile_lo_ptr + tile)
    hi = tl.load(tile_hi_ptr + tile)
    if hi > lo:
        bk = tl.load(tile_bucket_ptr + tile)
        diag = bk % 2
        n = (bk // 2) % NB
        h = (bk // (2 * NB)) % HKV
        b = (bk // (2 * NB * HKV)) % B
        t_base = (b * HKV + h) * T
        b = b.to(tl.int64)
        d = tl.arange(0, D)
        kpos = n * BS + tl.arange(0, BS)
        kmask = (kpos < S)[:, None]
        # The block is read once here and reused by every tile of gathered queries.
        k = tl.load(k_ptr + b * sk_b + kpos[:, None] * sk_s + h * sk_h + d[None, :], mask=kmask, other=0.0)
        v = tl.load(v_ptr + b * sv_b + kpos[:, None] * sv_s + h * sv_h + d[None, :], mask=kmask, other=0.0)
        # Buckets keep slots whose query sits inside the block (causal mask needed) apart from the rest, so each
        # inner loop is branch-free.
        if diag == 1:
            _kv_tiles(q_ptr, k, v, order_ptr, part_o_ptr, part_lse_ptr, lo, hi, b, h, kpos, t_base, q_offset,
                      qk_scale, sq_b, sq_t, sq_h, TOPK, G, GP, D, SUB, PREC, True)
        else:
            _kv_tiles(q_ptr, k, v, order_ptr, part_o_ptr, part_lse_ptr, lo, hi, b, h, kpos, t_base, q_offset,
                      qk_scale, sq_b, sq_t, sq_h, TOPK, G, GP, D, SUB, PREC, False)


@triton.jit
def _keys_partial(
    q_base, k_base, v_base, part_o_ptr, part_lse_ptr, prow, k0, S, pos, g, row_ok, qk_scale, sq_h, sk_s, sv_s,
    D: tl.constexpr, N: tl.constexpr, PREC: tl.constexpr,
):
    """One query's partial over keys k0 .. k0+N-1 (those past S absent), written to partial rows prow: the rows are
    query heads g of q_base (the group's first head), k_base/v_base point at the KV head. Decode work items."""
    d = tl.arange(0, D)
    kpos = k0 + tl.arange(0, N)
    kmask = (kpos < S)[:, None]
    k = tl.load(k_base + kpos[:, None] * sk_s + d[None, :], mask=kmask, other=0.0)
    v = tl.load(v_base + kpos[:, None] * sv_s + d[None, :], mask=kmask, other=0.0)
    q = tl.load(q_base + g[:, None] * sq_h + d[None, :], mask=row_ok[:, None], other=0.0)
    rows_pos = pos + tl.zeros_like(g).to(tl.int32)
    o, lse = _block_partial(q, k, v, kpos, rows_pos, k0 + N - 1 > pos, qk_scale, PREC)
    tl.store(part_o_ptr + prow[:, None] * D + d[None, :], o.to(part_o_ptr.dtype.element_ty), mask=row_ok[:, None])
    tl.store(part_lse_ptr + prow, lse, mask=row_ok)


@triton.jit
def _split_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    bi_ptr,
    part_o_ptr,
    part_lse_ptr,
    count_ptr,
    out_ptr,
    so_b,
    so_t,
    so_h,
    T,
    S,
    q_offset,
    qk_scale,
    sq_b,
    sq_t,
    sq_h,
    sk_b,
    sk_s,
    sk_h,
    sv_b,
    sv_s,
    sv_h,
    HKV: tl.constexpr,
    TOPK: tl.constexpr,
    G: tl.constexpr,
    RP: tl.constexpr,
    D: tl.constexpr,
    BS: tl.constexpr,
    PREC: tl.constexpr,
    FUSED: tl.constexpr,
    KP: tl.constexpr,
    PDL: tl.constexpr = False,
):
    # One (b, h, t, slot) per program: the decode form, split over the selected blocks. FUSED: the last program of a
    # query to finish merges its partials, saving the merge launch (decode latency).
    if PDL:
        pdl_wait_then_release()
    flat = tl.program_id(0).to(tl.int64)
    n = tl.load(bi_ptr + flat)
    if n >= 0:
        t = (flat // TOPK) % T
        h = (flat // (TOPK * T)) % HKV
        b = flat // (TOPK * T * HKV)
        pos = q_offset + t
        g = tl.arange(0, RP)
        row_ok = g < G
        _keys_partial(
            q_ptr + b * sq_b + t * sq_t + h * G * sq_h, k_ptr + b * sk_b + h * sk_h, v_ptr + b * sv_b + h * sv_h,
            part_o_ptr, part_lse_ptr, flat * G + g, n * BS, S, pos, g, row_ok, qk_scale, sq_h, sk_s, sv_s, D, BS, PREC,
        )  # fmt: skip
        if FUSED:
            row = flat // TOPK
            kk = tl.arange(0, KP)
            ids = tl.load(bi_ptr + row * TOPK + kk, mask=kk < TOPK, other=-1)
            n_valid = tl.sum((ids >= 0).to(tl.int32), axis=0)
            # Every thread's partial is written before the release; the acquire makes the others' visible to us.
            tl.debug_barrier()
            done = tl.atomic_add(count_ptr + row, 1, sem="acq_rel")
            if done == n_valid - 1:
                tt = t + tl.zeros([RP], dtype=tl.int64)
                _merge_rows(part_o_ptr, part_lse_ptr, bi_ptr, out_ptr, row * TOPK + tl.zeros([RP], dtype=tl.int64),
                            tt, g, row_ok, b, h, so_b, so_t, so_h, TOPK, G, D, True, KP, 4)
                tl.store(count_ptr + row, 0)  # leave the counter ready for the next call (CUDA-graph replays)


@triton.jit
def _merge_rows(
    part_o_ptr, part_lse_ptr, bi_ptr, out_ptr, slot0, t, g, ok, b, h, so_b, so_t, so_h,
    TOPK: tl.constexpr, G: tl.constexpr, D: tl.constexpr, CG: tl.constexpr, KP: tl.constexpr, UNROLL: tl.constexpr,
):
    """Log-sum-exp merge of the topk partials of rows (query t, head g); -1 slots weigh nothing. CG reads through L2
    only (partials another program just wrote).

    Every slot's log-sum-exp comes first, in one [rows, KP] load, so the weights are known before any partial is read;
    the partial loads then depend on nothing loaded in the loop, and the pipeliner can run them ahead (a loop whose
    loads wait on the previous slot's block id ran at ~2.6 TB/s at 128K, latency-bound). UNROLL slots per step, for
    a single program merging alone (decode), whose loads are then in flight together."""
    d = tl.arange(0, D)
    j = tl.arange(0, KP)
    slots = slot0[:, None] + j[None, :]
    live = ok[:, None] & (j < TOPK)[None, :]
    valid = live & (tl.load(bi_ptr + slots, mask=live, other=-1) >= 0)
    if CG:
        lse = tl.load(part_lse_ptr + slots * G + g[:, None], mask=valid, other=float("-inf"), cache_modifier=".cg")
    else:
        lse = tl.load(part_lse_ptr + slots * G + g[:, None], mask=valid, other=float("-inf"))
    m = tl.max(lse, axis=1)
    m = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp2(lse - m[:, None])  # 0 for -1 slots and for blocks wholly in a row's future
    l_sum = tl.sum(w, axis=1)
    acc = tl.zeros([t.shape[0], D], dtype=tl.float32)
    for j0 in range(0, TOPK, UNROLL):
        for u in tl.static_range(UNROLL):
            wj = tl.sum(tl.where(j[None, :] == j0 + u, w, 0.0), axis=1)  # 0 past TOPK
            prow = (slot0 + j0 + u) * G + g
            if CG:
                o = tl.load(part_o_ptr + prow[:, None] * D + d[None, :], mask=(wj > 0.0)[:, None], other=0.0,
                            cache_modifier=".cg")
            else:
                o = tl.load(part_o_ptr + prow[:, None] * D + d[None, :], mask=(wj > 0.0)[:, None], other=0.0)
            acc += wj[:, None] * o.to(tl.float32)
    res = acc / tl.where(l_sum > 0.0, l_sum, 1.0)[:, None]
    head = h * G + g
    tl.store(
        out_ptr + b * so_b + t[:, None].to(tl.int64) * so_t + head[:, None] * so_h + d[None, :],
        res.to(out_ptr.dtype.element_ty),
        mask=ok[:, None],
    )


@triton.jit
def _merge_kernel(
    part_o_ptr,
    part_lse_ptr,
    bi_ptr,
    out_ptr,
    T,
    so_b,
    so_t,
    so_h,
    HKV: tl.constexpr,
    TOPK: tl.constexpr,
    G: tl.constexpr,
    GP: tl.constexpr,
    D: tl.constexpr,
    BLOCK_T: tl.constexpr,
    KP: tl.constexpr,
):
    pid_t = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    r = tl.arange(0, BLOCK_T * GP)
    t = pid_t * BLOCK_T + r // GP
    g = r % GP
    ok = (t < T) & (g < G)
    slot0 = ((b * HKV + h) * T + t).to(tl.int64) * TOPK
    _merge_rows(part_o_ptr, part_lse_ptr, bi_ptr, out_ptr, slot0, t, g, ok, b, h, so_b, so_t, so_h,
                TOPK, G, D, False, KP, 1)


@triton.jit
def _bucket_kernel(
    bi_ptr, counts_ptr, cursor_ptr, starts_ptr, order_ptr, n_entries, T, NB, B, t_sub, q_offset,
    HKV: tl.constexpr, TOPK: tl.constexpr, BS: tl.constexpr, SCATTER: tl.constexpr, BLOCK: tl.constexpr,
):
    # Counting sort of slots by bucket (sub-chunk, b, h, block, needs-causal-mask): one pass counts, one scatters.
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n_entries
    n = tl.load(bi_ptr + i, mask=ok, other=-1)
    valid = ok & (n >= 0)
    t = (i // TOPK) % T
    h = (i // (TOPK * T)) % HKV
    b = i // (TOPK * T * HKV)
    diag = (n * BS + BS - 1 > q_offset + t).to(tl.int32)
    key = ((((t // t_sub) * B + b) * HKV + h) * NB + n) * 2 + diag
    if SCATTER:
        rank = tl.atomic_add(cursor_ptr + key, 1, mask=valid)
        start = tl.load(starts_ptr + key, mask=valid, other=0)
        tl.store(order_ptr + start + rank, i, mask=valid)
    else:
        tl.atomic_add(counts_ptr + key, 1, mask=valid)


@triton.jit
def _tile_kernel(
    counts_ptr, starts_ptr, tile_start_ptr, tile_bucket_ptr, tile_lo_ptr, tile_hi_ptr, n_buckets,
    TILE_Q: tl.constexpr, BLOCK: tl.constexpr,
):
    # Cut each bucket into tiles of TILE_Q slots; tiles past the last real one stay empty (lo = hi = 0).
    bk = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = bk < n_buckets
    count = tl.load(counts_ptr + bk, mask=ok, other=0)
    start = tl.load(starts_ptr + bk, mask=ok, other=0)
    first = tl.load(tile_start_ptr + bk, mask=ok, other=0)
    n_tiles = (count + TILE_Q - 1) // TILE_Q
    for j in range(0, tl.max(n_tiles, axis=0)):
        live = ok & (j < n_tiles)
        lo = start + j * TILE_Q
        tl.store(tile_bucket_ptr + first + j, bk, mask=live)
        tl.store(tile_lo_ptr + first + j, lo, mask=live)
        tl.store(tile_hi_ptr + first + j, tl.minimum(lo + TILE_Q, start + count), mask=live)


def _kv_outer_plan(
    bi: torch.Tensor, n_blocks: int, t_sub: int, tile_q: int, q_offset: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse map of a contiguous bi [B, Hkv, T, K], without a host sync (a few small launches, no sort).

    Returns (order, tile_bucket, tile_lo, tile_hi): `order` lists slot indices grouped by bucket (sub-chunk, b, h,
    block, whether the block reaches past the query), buckets in that order; tile i covers order[lo:hi] of bucket
    tile_bucket[i]. Inside a bucket the order comes from atomics and varies run to run, which changes nothing in the
    results: every slot's partial depends only on its own query rows and block. The tile count is an upper bound;
    tiles past the real ones are empty.
    """
    b, hkv, t, k = bi.shape
    dev = bi.device
    t_sub = t if t_sub <= 0 else t_sub
    n_buckets = -(-t // t_sub) * b * hkv * n_blocks * 2
    n_entries = bi.numel()
    counts = torch.zeros(2, n_buckets, dtype=torch.int32, device=dev)  # counts, then the scatter cursor
    order = torch.empty(n_entries, dtype=torch.int32, device=dev)
    block = 1024
    grid = (triton.cdiv(n_entries, block),)
    args = (bi, counts[0], counts[1], counts[0], order, n_entries, t, n_blocks, b, t_sub, q_offset)
    _bucket_kernel[grid](*args, HKV=hkv, TOPK=k, BS=block_size, SCATTER=False, BLOCK=block)
    starts = torch.cumsum(counts[0], 0, dtype=torch.int32) - counts[0]
    args = (bi, counts[0], counts[1], starts, order, n_entries, t, n_blocks, b, t_sub, q_offset)
    _bucket_kernel[grid](*args, HKV=hkv, TOPK=k, BS=block_size, SCATTER=True, BLOCK=block)
    tiles = (counts[0] + tile_q - 1) // tile_q
    tile_start = torch.cumsum(tiles, 0, dtype=torch.int32) - tiles
    max_tiles = n_entries // tile_q + min(n_buckets, n_entries)
    table = torch.zeros(3, max_tiles, dtype=torch.int32, device=dev)
    _tile_kernel[(triton.cdiv(n_buckets, 256),)](
        counts[0], starts, tile_start, table[0], table[1], table[2], n_buckets, TILE_Q=tile_q, BLOCK=256
    )
    return order, table[0], table[1], table[2]


def _hopper_partials(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: int, block_size: int) -> bool:
    """Whether the Gluon partial kernel applies: an sm_90 GPU, 16-bit inputs whose rows start on 16 bytes (it copies
    16-byte chunks), Triton's Gluon API as in 3.6, and the shapes it was written for (a power-of-two group that tiles
    64 rows, head dim and block 64 or 128)."""
    if not q.is_cuda or q.dtype not in (torch.bfloat16, torch.float16):
        return False
    if torch.cuda.get_device_capability(q.device)[0] != 9:
        return False
    if g & (g - 1) or g > 64 or q.shape[-1] not in (64, 128) or block_size not in (64, 128):
        return False
    if any(x.data_ptr() % 16 or any(st % 8 for st in x.stride()[:-1]) for x in (q, k, v)):
        return False
    return _GLUON_FAILURE is None and _gluon_kernel() is not None


_GLUON_FAILURE: str | None = None  # why the Gluon kernel did not compile here, once it has failed


@functools.cache
def _gluon_kernel() -> Any:
    try:
        from runtime.kernels.msa_sparse_hopper import kv_outer_kernel_hopper
    except ImportError:  # a Triton without Gluon's Hopper API
        return None
    return kv_outer_kernel_hopper


def _launch_gluon_partials(grid: int, args: tuple[Any, ...], **constexprs: Any) -> bool:
    """Launch the Gluon partial kernel; False (and a warning, once) if this Triton cannot compile it. Gluon's API is
    still experimental and moves between Triton releases; the kernel is written for Triton 3.6's."""
    global _GLUON_FAILURE
    try:
        _gluon_kernel()[(grid,)](*args, **constexprs, num_warps=4)
    except CompilationError as exc:
        _GLUON_FAILURE = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
        warnings.warn(
            f"MSA: the Gluon KV-outer kernel does not compile with Triton {triton.__version__} ({_GLUON_FAILURE}); "
            "using the Triton kernel instead (same results, slower prefill)",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bi: torch.Tensor, block_size: int, q_offset: int) -> None:
    b, t, hq, d = q.shape
    if k.shape != v.shape or k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"k {tuple(k.shape)} / v {tuple(v.shape)} do not match q {tuple(q.shape)}")
    s, hkv = k.shape[1], k.shape[2]
    if hq % hkv:
        raise ValueError(f"{hq} query heads do not split into {hkv} KV groups")
    if bi.shape[:3] != (b, hkv, t):
        raise ValueError(f"block_indices {tuple(bi.shape)} should be [B, Hkv, T, topk] = [{b}, {hkv}, {t}, topk]")
    if q_offset < 0 or q_offset + t > s:
        raise ValueError(f"queries at {q_offset}..{q_offset + t - 1} do not sit inside {s} keys")
    if d < 16 or d & (d - 1) or block_size < 16 or block_size & (block_size - 1):
        raise ValueError("head dim and block size must be powers of two >= 16")


def _last_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_indices: torch.Tensor,
    *,
    block_size: int,
    q_offset: int = 0,
    scale: float | None = None,
    mode: str = "auto",
    config: KVOuterConfig | None = None,
) -> torch.Tensor:
    """Triton `sparse_attention` (see `reference.sparse_attention`); block ids per row must be distinct.

    mode: "kv_outer" (gathered queries per block), "split" (one program per query slot: decode), or "auto" (split
    when a block would gather fewer than ~2 queries on average, else kv_outer).
    """
    _check(q, k, v, block_indices, block_size, q_offset)
    cfg = config or KVOuterConfig()
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    topk = block_indices.shape[-1]
    n_blocks = -(-s // block_size)
    scale = d**-0.5 if scale is None else scale
    q, k, v = _last_contiguous(q), _last_contiguous(k), _last_contiguous(v)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if t == 0:
        return out
    if mode == "auto":
        mode = "split" if t * topk < 2 * n_blocks else "kv_outer"
    if mode not in ("kv_outer", "split"):
        raise ValueError(f"unknown mode {mode!r}")
    qk_scale = scale * LOG2E
    gp = next_pow2(g)
    per_query = b * hkv * topk * g * (d * q.element_size() + 4)
    chunk = max(1, min(t, cfg.partial_budget // per_query))
    if cfg.t_sub > 0 and chunk > cfg.t_sub:
        chunk -= chunk % cfg.t_sub  # keep L2 sub-chunks whole
    common = dict(HKV=hkv, TOPK=topk, G=g, D=d, BS=block_size, PREC=dot_precision(q))
    hopper = mode == "kv_outer" and cfg.hopper and scale > 0 and _hopper_partials(q, k, v, g, block_size)
    triton_sub = max(cfg.sub, -(-16 // gp))  # queries per tile of the Triton kernel: tl.dot wants >= 16 rows
    for t0 in range(0, t, chunk):
        t1 = min(t, t0 + chunk)
        tc = t1 - t0
        qc, oc = q[:, t0:t1], out[:, t0:t1]
        bi = block_indices[:, :, t0:t1].to(torch.int32).contiguous()
        part_o = torch.empty((b, hkv, tc, topk, g, d), dtype=q.dtype, device=q.device)
        part_lse = torch.empty((b, hkv, tc, topk, g), dtype=torch.float32, device=q.device)
        if mode == "split":
            # Decode: the merge runs in the same launch (last program per query); the counters reset themselves.
            counts = kernel_state(q.device, "split counters", b * hkv * tc)
            _split_kernel[(bi.numel(),)](
                qc, k, v, bi, part_o, part_lse, counts, oc, oc.stride(0), oc.stride(1), oc.stride(2),
                tc, s, q_offset + t0, qk_scale,
                qc.stride(0), qc.stride(1), qc.stride(2),
                k.stride(0), k.stride(1), k.stride(2),
                v.stride(0), v.stride(1), v.stride(2),
                RP=max(16, gp), FUSED=True, KP=next_pow2(max(topk, 2)), **common, num_warps=4, num_stages=2,
                **pdl_kwargs(q.device),
            )  # fmt: skip
            continue
        sub = HOPPER_ROWS // g if hopper else triton_sub
        order, tile_bucket, tile_lo, tile_hi = _kv_outer_plan(
            bi, n_blocks, cfg.t_sub, sub * cfg.sub_tiles, q_offset + t0, block_size
        )
        args = (
            qc, k, v, order, tile_bucket, tile_lo, tile_hi, part_o, part_lse,
            b, tc, s, q_offset + t0, n_blocks, qk_scale,
            qc.stride(0), qc.stride(1), qc.stride(2),
            k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2),
        )  # fmt: skip
        # The Triton kernel walks any tile table in steps of its own SUB, so it can take over the Gluon one's plan.
        if not (hopper and _launch_gluon_partials(
            tile_lo.numel(), args, HKV=hkv, TOPK=topk, G=g, D=d, BS=block_size, ROWS=HOPPER_ROWS
        )):
            hopper = False
            _kv_outer_kernel[(tile_lo.numel(),)](
                *args, GP=gp, SUB=triton_sub, **common, num_warps=cfg.num_warps, num_stages=cfg.num_stages
            )
        merge_t = max(1, min(cfg.merge_t, next_pow2(tc)))
        _merge_kernel[(triton.cdiv(tc, merge_t), hkv, b)](
            part_o, part_lse, bi, oc, tc, oc.stride(0), oc.stride(1), oc.stride(2),
            HKV=hkv, TOPK=topk, G=g, GP=gp, D=d, BLOCK_T=merge_t, KP=next_pow2(topk), num_warps=4,
        )  # fmt: skip
    return out
