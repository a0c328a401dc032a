"""KV-outer partial kernel for Hopper, written in Gluon (Triton's explicit-layout dialect).

Same work and outputs as `msa_sparse._kv_outer_kernel`: a program loads one key block's K and V once and runs tiles
of ROWS // G gathered queries x G heads against it, writing each (slot, head) row's normalised partial and its
log2-sum-exp. One warpgroup (4 warps) per program; with 255 registers and ~104 KB of shared memory (K, V, two Q
buffers, the store staging), two programs share an SM. What it does that the Triton kernel does not:
- tile i + 1's Q·Kᵀ and tile i's P·V are issued back to back and only the first is waited for, so tile i + 1's
  softmax runs while P·V is on the tensor cores (FlashAttention-3's intra-warpgroup overlap; worth 2-3 % here);
- gathered Q tiles arrive by cp.async one tile ahead, into two shared-memory buffers that alternate;
- partial rows leave through shared memory as 16-byte row chunks (storing them straight from the wgmma layout made
  the kernel slower than the Triton one: half-sector writes saturate L2), marked evict-first;
- a query's row comes from its slot by a shift and a subtraction (the bucket fixes b and the KV head), not by a
  division by T; the softmax scale is folded into the exponent's multiply-add (so it must be positive);
- one loop, always masked, serves every bucket (the Triton kernel compiles a masked and an unmasked copy).
Measured against the Triton kernel in `benchmarks/msa_notes.md` (sixth session): 1.27x on the partials at 128K.

GPU only (sm_90, Triton 3.6's Gluon API): `msa_sparse` uses it for bf16/fp16 on Hopper and keeps the Triton kernel
everywhere else (CPU interpreter, other GPUs, a Triton without this API).
"""

from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    warpgroup_mma,
    warpgroup_mma_wait,
)


@gluon.jit
def _rows(order_ptr, e0, hi, G: gl.constexpr, ROWS: gl.constexpr, L: gl.constexpr):
    # The slot index of each row of the tile starting at order[e0], in 1-D layout L (-1 past hi).
    r = gl.arange(0, ROWS, layout=L)
    e = e0 + r // G
    return gl.load(order_ptr + e, mask=e < hi, other=-1)


@gluon.jit
def _issue_q(q_ptr, flat, buf, t_base, b, h, sq_b, sq_t, sq_h,
             TOPK: gl.constexpr, G: gl.constexpr, D: gl.constexpr, ROWS: gl.constexpr, LOAD: gl.constexpr):
    # cp.async the gathered query rows `flat` (all G heads of each query) into buf; rows with flat = -1 are
    # zero-filled, so a tile past the end computes on zeros and is never stored.
    r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, LOAD))
    d = gl.arange(0, D, layout=gl.SliceLayout(0, LOAD))
    t = flat // TOPK - t_base
    row = b * sq_b + t.to(gl.int64) * sq_t + (h * G + r % G) * sq_h
    async_copy.async_copy_global_to_shared(buf, q_ptr + row[:, None] + d[None, :], mask=(flat >= 0)[:, None])
    async_copy.commit_group()


@gluon.jit
def _softmax(s, kpos, flat, t_base, q_offset, qk_scale, TOPK: gl.constexpr):
    # Rows of raw scores s [ROWS, BS] (fp32, MMA layout) -> (p unnormalised, row max m and row sum l of the scaled
    # scores), log2 domain, under the causal mask. The scale is positive, so the max of raw scores gives the max of
    # scaled ones.
    pos = q_offset + flat // TOPK - t_base
    s = gl.where(kpos[None, :] <= pos[:, None], s, float("-inf"))
    m = gl.max(s, axis=1) * qk_scale
    m = gl.where(m == float("-inf"), 0.0, m)  # a row with no visible key gives l = 0, not NaN
    p = gl.exp2(s * qk_scale - m[:, None])
    l_sum = gl.sum(p, axis=1)
    return p, m, l_sum


@gluon.jit
def _store_partial(o, m, l_sum, part_o_ptr, part_lse_ptr, flat, flat_st,
                   G: gl.constexpr, D: gl.constexpr, ROWS: gl.constexpr, MMA_O: gl.constexpr, LOAD: gl.constexpr):
    # Normalised partial rows (through shared memory into 16-byte row chunks) and their log2-sum-exp.
    r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, MMA_O))
    l_sum = gl.convert_layout(l_sum, gl.SliceLayout(1, MMA_O))
    m = gl.convert_layout(m, gl.SliceLayout(1, MMA_O))
    nonzero = l_sum > 0.0
    l_safe = gl.where(nonzero, l_sum, 1.0)
    o = gl.convert_layout((o * (1.0 / l_safe)[:, None]).to(part_o_ptr.dtype.element_ty), LOAD)
    rs = gl.arange(0, ROWS, layout=gl.SliceLayout(1, LOAD))
    ds = gl.arange(0, D, layout=gl.SliceLayout(0, LOAD))
    prs = flat_st.to(gl.int64) * G + rs % G
    # Partials are read back only by the merge, long after: evict them first, so the gathered Q rows that other
    # blocks' tiles re-read stay in L2 (-2 % on this kernel at 32K and 128K, H100, eighth session).
    gl.store(part_o_ptr + prs[:, None] * D + ds[None, :], o, mask=(flat_st >= 0)[:, None],
             eviction_policy="evict_first")
    prow = flat.to(gl.int64) * G + r % G
    gl.store(part_lse_ptr + prow, gl.where(nonzero, m + gl.log2(l_safe), float("-inf")), mask=flat >= 0,
             eviction_policy="evict_first")


@gluon.jit
def _tiles(q_ptr, k_smem, v_smem, q_bufs, order_ptr, part_o_ptr, part_lse_ptr, lo, hi, b, h, n, t_base, q_offset,
           qk_scale, sq_b, sq_t, sq_h,
           TOPK: gl.constexpr, G: gl.constexpr, D: gl.constexpr, BS: gl.constexpr, ROWS: gl.constexpr,
           MMA: gl.constexpr, MMA_O: gl.constexpr, LOAD: gl.constexpr):
    SUBQ: gl.constexpr = ROWS // G
    P_OP: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=MMA_O, k_width=2)
    L_LOAD: gl.constexpr = gl.SliceLayout(1, LOAD)
    L_S: gl.constexpr = gl.SliceLayout(1, MMA)
    L_O: gl.constexpr = gl.SliceLayout(1, MMA_O)
    kpos = n * BS + gl.arange(0, BS, layout=gl.SliceLayout(0, MMA))
    k_t = k_smem.permute((1, 0))
    zero = gl.zeros([ROWS, BS], gl.float32, MMA)
    zero_o = gl.zeros([ROWS, D], gl.float32, MMA_O)
    n_tiles = (hi - lo + SUBQ - 1) // SUBQ

    # Prologue: K, V and tile 0 were issued by the caller; tile 1 goes now. Then S_0 and its softmax.
    _issue_q(q_ptr, _rows(order_ptr, lo + SUBQ, hi, G, ROWS, L_LOAD), q_bufs.index(1), t_base, b, h, sq_b, sq_t,
             sq_h, TOPK, G, D, ROWS, LOAD)
    # Slot indices are loaded one tile before they are needed, so no iteration waits on an index load.
    flat_q = _rows(order_ptr, lo + 2 * SUBQ, hi, G, ROWS, L_LOAD)  # tile i + 2's rows, for its cp.async
    flat_s = _rows(order_ptr, lo, hi, G, ROWS, L_S)  # tile i's rows, for the causal mask
    flat_o = _rows(order_ptr, lo, hi, G, ROWS, L_O)  # tile i's rows, for its log-sum-exp
    flat_st = _rows(order_ptr, lo, hi, G, ROWS, L_LOAD)  # tile i's rows, for its partial
    async_copy.wait_group(1)
    gl.thread_barrier()
    fence_async_shared()
    s = warpgroup_mma(q_bufs.index(0), k_t, zero, use_acc=False, is_async=True)
    s = warpgroup_mma_wait(num_outstanding=0, deps=(s,))
    p, m, l_sum = _softmax(s, kpos, flat_s, t_base, q_offset, qk_scale, TOPK)

    for i in range(n_tiles):
        e0 = lo + i * SUBQ
        flat_s = _rows(order_ptr, e0 + SUBQ, hi, G, ROWS, L_S)
        flat_o_next = _rows(order_ptr, e0 + SUBQ, hi, G, ROWS, L_O)
        flat_st_next = _rows(order_ptr, e0 + SUBQ, hi, G, ROWS, L_LOAD)
        # Tile i's buffer is free (its Q·Kᵀ finished): fetch tile i + 2 into it, then wait for tile i + 1.
        _issue_q(q_ptr, flat_q, q_bufs.index(i % 2), t_base, b, h, sq_b, sq_t, sq_h, TOPK, G, D, ROWS, LOAD)
        flat_q = _rows(order_ptr, e0 + 3 * SUBQ, hi, G, ROWS, L_LOAD)
        async_copy.wait_group(1)
        gl.thread_barrier()
        fence_async_shared()
        # Issue tile i + 1's Q·Kᵀ, then tile i's P·V; the first completes first (wgmma groups retire in order).
        s_next = warpgroup_mma(q_bufs.index((i + 1) % 2), k_t, zero, use_acc=False, is_async=True)
        p_op = gl.convert_layout(p.to(v_smem.dtype), P_OP)
        o = warpgroup_mma(p_op, v_smem, zero_o, use_acc=False, is_async=True)
        s_next = warpgroup_mma_wait(num_outstanding=1, deps=(s_next,))
        # Tile i + 1's softmax runs while tile i's P·V is on the tensor cores.
        p_next, m_next, l_next = _softmax(s_next, kpos, flat_s, t_base, q_offset, qk_scale, TOPK)
        o, p_op = warpgroup_mma_wait(num_outstanding=0, deps=(o, p_op))
        _store_partial(o, m, l_sum, part_o_ptr, part_lse_ptr, flat_o, flat_st, G, D, ROWS, MMA_O, LOAD)
        p = p_next
        m = m_next
        l_sum = l_next
        flat_o = flat_o_next
        flat_st = flat_st_next
    async_copy.wait_group(0)


@gluon.jit
def kv_outer_kernel_hopper(
    q_ptr, k_ptr, v_ptr, order_ptr, tile_bucket_ptr, tile_lo_ptr, tile_hi_ptr, part_o_ptr, part_lse_ptr,
    B, T, S, q_offset, NB, qk_scale,
    sq_b, sq_t, sq_h, sk_b, sk_s, sk_h, sv_b, sv_s, sv_h,
    HKV: gl.constexpr, TOPK: gl.constexpr, G: gl.constexpr, D: gl.constexpr, BS: gl.constexpr, ROWS: gl.constexpr,
):
    # Q·Kᵀ tiles are [ROWS, BS], P·V tiles [ROWS, D]: one warpgroup, the widest wgmma for each.
    MMA: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BS, 16])
    MMA_O: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, D, 16])
    # 16-byte chunks of a row: D // 8 lanes across a row.
    LOAD: gl.constexpr = gl.BlockedLayout([1, 8], [32 * 8 // D, D // 8], [4, 1], [1, 0])
    SMEM: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    tile = gl.program_id(0)
    lo = gl.load(tile_lo_ptr + tile)
    hi = gl.load(tile_hi_ptr + tile)
    if hi > lo:
        bk = gl.load(tile_bucket_ptr + tile)
        n = (bk // 2) % NB
        h = (bk // (2 * NB)) % HKV
        b = (bk // (2 * NB * HKV)) % B
        t_base = (b * HKV + h) * T  # slot // TOPK - t_base is the query's row in this chunk
        b = b.to(gl.int64)
        k_smem = gl.allocate_shared_memory(k_ptr.dtype.element_ty, [BS, D], SMEM)
        v_smem = gl.allocate_shared_memory(v_ptr.dtype.element_ty, [BS, D], SMEM)
        q_bufs = gl.allocate_shared_memory(q_ptr.dtype.element_ty, [2, ROWS, D], SMEM)
        # The block is read once, with the first query tile, and reused by every tile of gathered queries.
        kr = gl.arange(0, BS, layout=gl.SliceLayout(1, LOAD))
        d = gl.arange(0, D, layout=gl.SliceLayout(0, LOAD))
        kpos = n * BS + kr
        kmask = (kpos < S)[:, None]
        async_copy.async_copy_global_to_shared(k_smem, k_ptr + b * sk_b + kpos[:, None] * sk_s + h * sk_h + d[None, :],
                                               mask=kmask)
        async_copy.async_copy_global_to_shared(v_smem, v_ptr + b * sv_b + kpos[:, None] * sv_s + h * sv_h + d[None, :],
                                               mask=kmask)
        _issue_q(q_ptr, _rows(order_ptr, lo, hi, G, ROWS, gl.SliceLayout(1, LOAD)), q_bufs.index(0), t_base, b, h,
                 sq_b, sq_t, sq_h, TOPK, G, D, ROWS, LOAD)
        # One instantiation of the loop, always masked, for every bucket (half the code of a masked and an unmasked
        # copy, and as fast or a little faster: ninth session). In a bucket whose block lies wholly in its queries'
        # past, the mask passes every key.
        _tiles(q_ptr, k_smem, v_smem, q_bufs, order_ptr, part_o_ptr, part_lse_ptr, lo, hi, b, h, n, t_base,
               q_offset, qk_scale, sq_b, sq_t, sq_h, TOPK, G, D, BS, ROWS, MMA, MMA_O, LOAD)
