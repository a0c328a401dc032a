"""MSA decode in one launch: index scan, top-k merge and sparse attention for one query token per sequence.

Decode at long context is one memory stream (the index keys, 268 MB at 1M in bf16) followed by a chain of small,
latency-bound steps: merge each split's top-k candidates, then attend over 16 selected blocks and merge their
partials. As separate kernels those steps cost more than their work (launch gaps and ramp-up, ~25 µs at 1M). Here one
grid of at most one program per SM does all of it:

1. every program scans its share of key blocks (`msa_index._scan_blocks`) and writes its top-k candidates;
2. the last program of each group of GROUP to finish merges the group's candidates; the last group merger merges
   those, writes the selection and bumps the sequence's epoch flag;
3. programs with attention work (one item per (KV head, slot, part of a block)) wait for the flag and write their
   partial; the last of a KV head's items bumps that head's flag;
4. one program per (KV head, query head) waits for its KV head's flag and folds that row's partials into the output.

"Last to finish" is an acq_rel arrival counter that resets itself (CUDA-graph replays need no memset). Waiting on a
flag is safe only while every program of the grid is resident at once, which holds because the grid never exceeds
the SM count and each program fits on one SM; and a program waits only once its own attention items are written.
Flags are per-sequence epochs, read before a program arrives anywhere and bumped once per launch, so they never need
resetting either. Under the CPU interpreter programs run one after another, so nothing may wait: there (COOP=False)
the final merger does every attention item and output row itself, through the same code.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from runtime.kernels.msa_index import _FLOOR, _block_ids, _scan_blocks, _top_keys, _unpack_id
from runtime.kernels.msa_sparse import LOG2E, _keys_partial
from runtime.kernels.msa_util import (
    device_programs,
    dot_precision,
    global_time,
    kernel_state,
    next_pow2,
    pdl_kwargs,
    pdl_wait_then_release,
    spin_pause,
)

GROUP = 16  # programs per first-level candidate merge


@triton.jit
def _decode_kernel(
    iq_ptr, ik_ptr, scale_ptr, q_ptr, k_ptr, v_ptr,
    sel_ptr, out_ptr, cand_ptr, cand2_ptr, part_o_ptr, part_lse_ptr, count_ptr, flag_ptr, trace_ptr,
    S, pos, blocks_per_prog, n_progs, n_groups, qk_scale,
    siq_b, siq_h, sik_b, sik_s, ss_b,
    sq_b, sq_h, sk_b, sk_s, sk_h, sv_b, sv_s, sv_h, so_b, so_h,
    H: tl.constexpr, HP: tl.constexpr, DI: tl.constexpr, ROWS: tl.constexpr, BS: tl.constexpr, TOPK: tl.constexpr,
    KP: tl.constexpr, LOCAL: tl.constexpr, PREC: tl.constexpr, SCALE: tl.constexpr,
    G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, PARTS: tl.constexpr,
    MKP: tl.constexpr, GROUP: tl.constexpr, NC1: tl.constexpr, NC2: tl.constexpr, COOP: tl.constexpr,
    PAIR: tl.constexpr, TRACE: tl.constexpr, PDL: tl.constexpr = False,
):
    if PDL:
        pdl_wait_then_release()
    p = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    trace = trace_ptr + (b * n_progs + p) * 8  # TRACE: global ns at each phase's end, 0 where not reached
    if TRACE:
        tl.store(trace, global_time())
    n_cnt = n_groups + 1 + H  # per sequence: group counters, the second-level counter, one per KV head
    cnt = count_ptr + b * n_cnt
    # Epoch flags, per sequence: [0] moves when the selection is written, [1 + h] when KV head h's partials are.
    # Read before this program arrives anywhere: no flag moves before every program has arrived.
    flags = flag_ptr + b * (1 + H)
    epoch = tl.atomic_add(flags, 0, sem="relaxed")
    hh = tl.arange(0, HP)
    h_ok = hh < H
    head_epochs = tl.atomic_add(flags + 1 + hh, tl.zeros([HP], dtype=tl.int32), mask=h_ok, sem="relaxed")

    # 1. This program's share of the index keys: one row per index head (= KV head), padded to ROWS.
    r = tl.arange(0, ROWS)
    row_ok = r < H
    di = tl.arange(0, DI)
    iq = tl.load(iq_ptr + b * siq_b + r[:, None] * siq_h + di[None, :], mask=row_ok[:, None], other=0.0)
    q_blk = pos // BS
    n_lo = p * blocks_per_prog
    n_hi = tl.minimum(n_lo + blocks_per_prog, q_blk + 1)
    rows_pos = pos + tl.zeros([ROWS], dtype=tl.int32)
    keys = _scan_blocks(
        iq, ik_ptr + b * sik_b, scale_ptr + b * ss_b, n_lo, n_hi, S, rows_pos, pos, q_blk + tl.zeros_like(rows_pos),
        sik_s, ROWS, DI, BS, TOPK, KP, LOCAL, True, PREC, SCALE, PAIR,
    )  # fmt: skip
    keys = tl.where(_unpack_id(keys) >= 0, keys, _FLOOR)  # placeholders are not candidates
    kcol = tl.arange(0, KP)
    tl.store(cand_ptr + ((b * n_progs + p) * H + r)[:, None] * KP + kcol[None, :], keys, mask=row_ok[:, None])
    if TRACE:
        tl.store(trace + 1, global_time())

    # 2. Candidate merge, two levels, each done by the last program to arrive. The merges take HP rows, not the
    # scan's ROWS (16 for the dot): a top-k over [16, 256] int64 keys was ~10K instructions a level.
    final = p * 0
    grp = p // GROUP
    tl.debug_barrier()  # every thread's candidates are written before the release
    if tl.atomic_add(cnt + grp, 1, sem="acq_rel") == tl.minimum(GROUP, n_progs - grp * GROUP) - 1:
        tl.store(cnt + grp, 0)
        c = tl.arange(0, NC1)
        src = ((b * n_progs + grp * GROUP + c // KP)[None, :] * H + hh[:, None]) * KP + (c % KP)[None, :]
        ok = h_ok[:, None] & (grp * GROUP + c // KP < n_progs)[None, :]
        top = _top_keys(tl.load(cand_ptr + src, mask=ok, other=_FLOOR, cache_modifier=".cg"), HP, TOPK, KP)
        tl.store(cand2_ptr + ((b * n_groups + grp) * H + hh)[:, None] * KP + kcol[None, :], top, mask=h_ok[:, None])
        if TRACE:
            tl.store(trace + 2, global_time())
        tl.debug_barrier()
        if tl.atomic_add(cnt + n_groups, 1, sem="acq_rel") == n_groups - 1:
            tl.store(cnt + n_groups, 0)
            c2 = tl.arange(0, NC2)
            src2 = ((b * n_groups + c2 // KP)[None, :] * H + hh[:, None]) * KP + (c2 % KP)[None, :]
            ok2 = h_ok[:, None] & (c2 < n_groups * KP)[None, :]
            best = _top_keys(tl.load(cand2_ptr + src2, mask=ok2, other=_FLOOR, cache_modifier=".cg"), HP, TOPK, KP)
            ids = _block_ids(best, TOPK, KP)
            tl.store(sel_ptr + (b * H + hh)[:, None] * TOPK + kcol[None, :], ids,
                     mask=h_ok[:, None] & (kcol < TOPK)[None, :])
            tl.debug_barrier()
            tl.atomic_add(flags, 1, sem="release")
            final = p * 0 + 1
            if TRACE:
                tl.store(trace + 3, global_time())

    # 3. Attention: item w = (KV head, slot, part); PARTS programs share a block, BS // PARTS keys each.
    NSLOT: tl.constexpr = TOPK * PARTS
    BSP: tl.constexpr = BS // PARTS
    n_items = H * NSLOT
    if COOP:
        start = p
        step = n_progs
        if p < n_items:
            while tl.atomic_add(flags, 0, sem="acquire") == epoch:
                spin_pause()
            if TRACE:
                tl.store(trace + 4, global_time())
    else:
        start = tl.where(final == 1, 0, n_items)
        step = 1
    g = tl.arange(0, GP)
    g_ok = g < G
    d = tl.arange(0, D)
    for w in range(start, n_items, step):
        h = w // NSLOT
        slot = w % NSLOT
        n = tl.load(sel_ptr + (b * H + h) * TOPK + slot // PARTS, cache_modifier=".cg")
        prow = ((b * H + h) * NSLOT + slot) * G + g
        if n >= 0:
            _keys_partial(
                q_ptr + b * sq_b + h * G * sq_h, k_ptr + b * sk_b + h * sk_h, v_ptr + b * sv_b + h * sv_h,
                part_o_ptr, part_lse_ptr, prow, n * BS + (slot % PARTS) * BSP, S, pos, g, g_ok, qk_scale,
                sq_h, sk_s, sv_s, D, BSP, PREC,
            )  # fmt: skip
        else:
            tl.store(part_lse_ptr + prow, tl.full([GP], float("-inf"), tl.float32), mask=g_ok)
        tl.debug_barrier()
        if TRACE:
            tl.store(trace + 5, global_time())
        if tl.atomic_add(cnt + n_groups + 1 + h, 1, sem="acq_rel") == NSLOT - 1:
            tl.store(cnt + n_groups + 1 + h, 0)
            tl.atomic_add(flags + 1 + h, 1, sem="release")

    # 4. Output rows: task (KV head, query head of its group) folds that head's NSLOT partials by log-sum-exp. One
    # task per program, after all of its attention items (so no program waits while holding work another waits on):
    # a single program folding a KV head's 32 partial tiles took 11 µs of dependent loads at 1M.
    start = tl.where(final == 1, 0, H * G)  # COOP=False: the final merger takes every row
    if COOP:
        start = p
    j = tl.arange(0, MKP)
    for m in range(start, H * G, step):
        h = m // G
        if COOP:
            head_epoch = tl.sum(tl.where(hh == h, head_epochs, 0), axis=0)
            while tl.atomic_add(flags + 1 + h, 0, sem="acquire") == head_epoch:
                spin_pause()
        prow = ((b * H + h) * NSLOT + j) * G + m % G
        live = j < NSLOT
        lse = tl.load(part_lse_ptr + prow, mask=live, other=float("-inf"), cache_modifier=".cg")
        o = tl.load(part_o_ptr + prow[:, None] * D + d[None, :], mask=live[:, None], other=0.0, cache_modifier=".cg")
        top = tl.max(lse, axis=0)
        top = tl.where(top == float("-inf"), 0.0, top)
        wt = tl.exp2(lse - top)  # 0 for empty slots and blocks wholly in the future
        # Partials of empty slots were never written: select, not multiply, so garbage (even NaN) weighs nothing.
        acc = tl.sum(tl.where(wt[:, None] > 0.0, o.to(tl.float32) * wt[:, None], 0.0), axis=0)
        l_sum = tl.sum(wt, axis=0)
        res = acc / tl.where(l_sum > 0.0, l_sum, 1.0)
        tl.store(out_ptr + b * so_b + m * so_h + d, res.to(out_ptr.dtype.element_ty))
        if TRACE:
            tl.store(trace + 6, global_time())


def msa_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    idx_q: torch.Tensor,
    idx_k: torch.Tensor,
    *,
    block_size: int,
    topk: int,
    local_blocks: int,
    q_offset: int,
    scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    programs: int | None = None,
    parts: int = 2,
    pair: bool = False,
    num_warps: int = 4,
    num_stages: int = 4,
    pdl: bool | None = None,
    trace: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode token per sequence: (attention output [B, 1, Hq, D], selection int32 [B, H, 1, topk]).

    The same results as `index_topk` then `sparse_attention` (see `msa_index`, `msa_sparse`), in one launch. Shapes:
    q [B, 1, Hq, D], k/v [B, S, H, D], idx_q [B, 1, H, DI] (one index head per KV head), idx_k [B, S, DI], with
    optional k_scale as for `index_topk`. programs: grid width per sequence (default: the SMs shared among the
    sequences; it must stay at or under the SM count, see the module docstring). parts: programs per selected block.
    pair: scan two key blocks per loop iteration. pdl: programmatic dependent launch (None: for bf16 keys only).
    trace: int64, zeroed, at least B x SMs x 8, to receive each program's phase end times (GPU only; diagnostics):
    start, scan, group merge, final merge, wait, attention item, head merge.
    """
    b, t, hq, d = q.shape
    s, h = k.shape[1], k.shape[2]
    di = idx_q.shape[-1]
    if t != 1 or idx_q.shape[:3] != (b, 1, h) or idx_k.shape != (b, s, di) or v.shape != k.shape:
        raise ValueError(
            f"msa_decode takes one token per sequence with one index head per KV head: q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}, idx_q {tuple(idx_q.shape)}, idx_k {tuple(idx_k.shape)}"
        )
    if not 0 <= q_offset < s:
        raise ValueError(f"the query at {q_offset} does not sit inside {s} keys")
    if hq % h or block_size % parts or block_size // parts < 16:
        raise ValueError(f"{hq} query heads over {h} KV heads, block {block_size} in {parts} parts: not supported")
    dev = q.device
    sms = device_programs(dev)
    if b > sms:
        raise ValueError(f"{b} sequences need more programs than the {sms} SMs: decode them with index_topk + "
                         "sparse_attention")
    g = hq // h
    kp = next_pow2(max(topk, 2))
    n_blocks = q_offset // block_size + 1
    coop = dev.type == "cuda"
    # On the GPU every program must be resident at once (see the module docstring): at most one per SM.
    width = min(programs or sms // b, sms // b if coop else n_blocks, n_blocks)
    per = -(-n_blocks // width)
    n_progs = -(-n_blocks // per)
    n_groups = -(-n_progs // GROUP)
    scale_mode = 0
    if k_scale is not None:
        scale_mode = 1 if k_scale.shape == (b, s) else 2
        if scale_mode == 2 and k_scale.shape != (b, -(-s // block_size)):
            raise ValueError(f"k_scale {tuple(k_scale.shape)} is neither [B, S] nor [B, S / block_size]")
        k_scale = k_scale.to(torch.float32).contiguous()
    q, k, v, idx_q, idx_k = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v, idx_q, idx_k))
    out = torch.empty_like(q)
    sel = torch.empty((b, h, 1, topk), dtype=torch.int32, device=dev)
    cand = torch.empty((b, n_progs, h, kp), dtype=torch.int64, device=dev)
    cand2 = torch.empty((b, n_groups, h, kp), dtype=torch.int64, device=dev)
    nslot = topk * parts
    part_o = torch.empty((b, h, nslot, g, d), dtype=q.dtype, device=dev)
    part_lse = torch.empty((b, h, nslot, g), dtype=torch.float32, device=dev)
    counts = kernel_state(dev, "decode counters", b * (n_groups + 1 + h))
    flags = kernel_state(dev, "decode epochs", b * (1 + h))
    qk_scale = (d**-0.5 if scale is None else scale) * LOG2E
    # PDL for bf16 keys only by default, as in msa_index (it made the fp8 index launch slower on the H200).
    launch_pdl = pdl_kwargs(dev) if (k_scale is None if pdl is None else pdl) else {}
    _decode_kernel[(n_progs, b)](
        idx_q, idx_k, k_scale if k_scale is not None else idx_k, q, k, v,
        sel, out, cand, cand2, part_o, part_lse, counts, flags, trace if trace is not None else counts,
        s, q_offset, per, n_progs, n_groups, qk_scale,
        idx_q.stride(0), idx_q.stride(2), idx_k.stride(0), idx_k.stride(1),
        k_scale.stride(0) if k_scale is not None else 0,
        q.stride(0), q.stride(2), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(2),
        H=h, HP=next_pow2(h), DI=di, ROWS=max(16, next_pow2(h)), BS=block_size, TOPK=topk, KP=kp, LOCAL=local_blocks,
        PREC=dot_precision(q), SCALE=scale_mode, G=g, GP=max(16, next_pow2(g)), D=d, PARTS=parts,
        MKP=next_pow2(nslot), GROUP=GROUP, NC1=GROUP * kp, NC2=max(kp, next_pow2(n_groups * kp)), COOP=coop,
        PAIR=pair, TRACE=trace is not None, num_warps=num_warps, num_stages=num_stages, **launch_pdl,
    )  # fmt: skip
    return out, sel
