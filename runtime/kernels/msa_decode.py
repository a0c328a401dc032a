"""MSA decode in one launch: index scan, top-k merge and sparse attention for one query token per sequence.

Decode at long context is one memory stream (the index keys, 268 MB at 1M in bf16) followed by a chain of small,
latency-bound steps: merge each split's top-k candidates, then attend over 16 selected blocks and merge their
partials. As separate kernels those steps cost more than their work (launch gaps and ramp-up, ~25 µs at 1M). Here one
grid of at most one program per SM does all of it:

1. every program scans its share of key blocks (`msa_index._scan_blocks`), writes its top-k candidates and counts
   itself into its group of GROUP programs;
2. one program per (group, index head) waits for that group, and writes the top-k of its candidates for that head;
3. every program with attention work (one item per (KV head, slot, part of a block)) waits for its head's group
   picks, takes their top-k itself (the selection: each item's program computes the same one, so nobody waits for
   a single final merger to publish it), and writes its partial;
4. one program per (KV head, query head) waits for that head's items and folds their partials into the output row.

Each step waits on an arrival counter reaching its count: the waiter sees the data the moment the last writer lands
it, with no flag between. One-row merges are spread over programs because a top-k's cost grows with its rows (a
[4, 256] bitonic top-k is ~1,750 instructions on one program, a [1, 256] one ~530).

Waiting is safe only while every program of the grid is resident at once, which holds because the grid never exceeds
the SM count and each program fits on one SM; and a program waits only on work that never waits on it (scans wait on
nothing; merges only on scans; items only on merges; rows only on items, and a program takes its row after its
items). Counters are per sequence in two sets, used by alternate launches: a launch reads its sequence's epoch to
pick its set, zeroes the other set (which the previous launch used) and bumps the epoch once every program has read
it. So CUDA-graph replays need no memset. Under the CPU interpreter programs run one after another, so nothing may
wait: there (COOP=False) the last program to arrive does every merge, item and row itself, through the same code.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from runtime.kernels.msa_index import (
    _FLOOR,
    KEYS_M_DEFAULT,
    _block_ids,
    _key_block,
    _scan_blocks,
    _top_keys,
    _unpack_id,
)
from runtime.kernels.msa_sparse import LOG2E, _keys_partial
from runtime.kernels.msa_util import (
    device_programs,
    dot_precision,
    global_time,
    kernel_state,
    next_pow2,
    pdl_kwargs,
    pdl_wait_then_release,
    resident_programs,
    spin_pause,
)

GROUP = 16  # programs per first-level candidate merge (default)
_FITS: dict[tuple[object, ...], int] = {}  # programs of a compiled variant that fit on one SM


@triton.jit
def _wait_for(counter, target):
    """Spin until counter (acquire) reaches target; what its writers stored before arriving is then visible."""
    while tl.atomic_add(counter, 0, sem="acquire") < target:
        spin_pause()


@triton.jit
def _decode_kernel(
    iq_ptr, ik_ptr, scale_ptr, q_ptr, k_ptr, v_ptr,
    sel_ptr, out_ptr, cand_ptr, cand2_ptr, part_o_ptr, part_lse_ptr, state_ptr, trace_ptr,
    S, pos, blocks_per_prog, n_progs, n_groups, qk_scale,
    siq_b, siq_h, sik_b, sik_s, ss_b,
    sq_b, sq_h, sk_b, sk_s, sk_h, sv_b, sv_s, sv_h, so_b, so_h,
    H: tl.constexpr, DI: tl.constexpr, ROWS: tl.constexpr, BS: tl.constexpr, TOPK: tl.constexpr,
    KP: tl.constexpr, LOCAL: tl.constexpr, PREC: tl.constexpr, SCALE: tl.constexpr, KEYS_M: tl.constexpr,
    G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, PARTS: tl.constexpr,
    MKP: tl.constexpr, GROUP: tl.constexpr, NC1: tl.constexpr, NC2: tl.constexpr, NSET: tl.constexpr,
    NSETP: tl.constexpr, COOP: tl.constexpr, PAIR: tl.constexpr, TRACE: tl.constexpr, PDL: tl.constexpr = False,
):
    if PDL:
        pdl_wait_then_release()
    p = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    trace = trace_ptr + (b * n_progs + p) * 8  # TRACE: global ns at each phase's end, 0 where not reached
    if TRACE:
        tl.store(trace, global_time())
    # This sequence's state: [epoch, counter set 0, counter set 1]; a set is NSET counters: group arrivals
    # [n_groups], group picks written per head [H], items written per head [H], arrivals (COOP=False) [1].
    st = state_ptr + b * (1 + 2 * NSET)
    epoch = tl.atomic_add(st, 0, sem="relaxed")  # moves only once every program has read it (see step 3)
    cnt = st + 1 + (epoch % 2) * NSET
    picks_done = cnt + n_groups
    items_done = cnt + n_groups + H
    if p == 0:  # the other set was the previous launch's, which has finished: zero it for the next one
        z = tl.arange(0, NSETP)
        tl.store(st + 1 + ((epoch + 1) % 2) * NSET + z, tl.zeros_like(z), mask=z < NSET)

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
        sik_s, ROWS, DI, BS, TOPK, KP, LOCAL, True, PREC, SCALE, PAIR, KEYS_M,
    )  # fmt: skip
    keys = tl.where(_unpack_id(keys) >= 0, keys, _FLOOR)  # placeholders are not candidates
    kcol = tl.arange(0, KP)
    tl.store(cand_ptr + ((b * n_progs + p) * H + r)[:, None] * KP + kcol[None, :], keys, mask=row_ok[:, None])
    if TRACE:
        tl.store(trace + 1, global_time())
    tl.debug_barrier()  # every thread's candidates are written before the release
    tl.atomic_add(cnt + p // GROUP, 1, sem="release")
    final = p * 0
    if COOP:
        start = p
        step = n_progs
    else:
        final = (tl.atomic_add(cnt + n_groups + 2 * H, 1, sem="acq_rel") == n_progs - 1).to(tl.int32)
        start = tl.where(final == 1, 0, 1 << 30)  # the last program to arrive does all that follows
        step = 1

    # 2. Group picks: task (group, head) takes the top-k of the group's candidates for that head.
    c1 = tl.arange(0, NC1)[None, :]
    for task in range(start, n_groups * H, step):
        grp = task // H
        h = task % H
        if COOP:
            _wait_for(cnt + grp, tl.minimum(GROUP, n_progs - grp * GROUP))
        prog = grp * GROUP + c1 // KP
        src = ((b * n_progs + prog) * H + h) * KP + c1 % KP
        top = _top_keys(tl.load(cand_ptr + src, mask=prog < n_progs, other=_FLOOR, cache_modifier=".cg"), 1, TOPK,
                        KP)
        tl.store(cand2_ptr + ((b * n_groups + grp) * H + h) * KP + kcol[None, :], top)
        tl.debug_barrier()
        tl.atomic_add(picks_done + h, 1, sem="release")
        if TRACE:
            tl.store(trace + 2, global_time())

    # 3. Attention: item w = (KV head, slot, part); PARTS programs share a block, BS // PARTS keys each.
    NSLOT: tl.constexpr = TOPK * PARTS
    BSP: tl.constexpr = BS // PARTS
    n_items = H * NSLOT
    c2 = tl.arange(0, NC2)[None, :]
    g = tl.arange(0, GP)
    g_ok = g < G
    d = tl.arange(0, D)
    for w in range(start, n_items, step):
        h = w // NSLOT
        slot = w % NSLOT
        if COOP:
            _wait_for(picks_done + h, n_groups)
            if TRACE:
                tl.store(trace + 4, global_time())
        if w == 0:  # every program has arrived, so every program has read the epoch
            tl.atomic_add(st, 1, sem="relaxed")
        src2 = ((b * n_groups + c2 // KP) * H + h) * KP + c2 % KP
        picks = tl.load(cand2_ptr + src2, mask=c2 < n_groups * KP, other=_FLOOR, cache_modifier=".cg")
        # The selection of head h as picked keys [1, KP]. Items take slots in the picks' own order (the same in every
        # program); only the selection's writer sorts it into block order, after its own item.
        top = _top_keys(picks, 1, TOPK, KP)
        if TRACE:
            tl.store(trace + 3, global_time())
        n = _key_block(tl.sum(tl.sum(tl.where(kcol[None, :] == slot // PARTS, top, 0), axis=1), axis=0))
        prow = ((b * H + h) * NSLOT + slot) * G + g
        if n >= 0:
            _keys_partial(
                q_ptr + b * sq_b + h * G * sq_h, k_ptr + b * sk_b + h * sk_h, v_ptr + b * sv_b + h * sv_h,
                part_o_ptr, part_lse_ptr, prow, n * BS + (slot % PARTS) * BSP, S, pos, g, g_ok, qk_scale,
                sq_h, sk_s, sv_s, D, BSP, PREC,
            )  # fmt: skip
        else:
            tl.store(part_lse_ptr + prow, tl.full([GP], float("-inf"), tl.float32), mask=g_ok)
        if slot == 0:
            ids = _block_ids(top, TOPK, KP)
            tl.store(sel_ptr + (b * H + h) * TOPK + kcol[None, :], ids, mask=(kcol < TOPK)[None, :])
        tl.debug_barrier()
        tl.atomic_add(items_done + h, 1, sem="release")
        if TRACE:
            tl.store(trace + 5, global_time())

    # 4. Output rows: task (KV head, query head of its group) folds that head's NSLOT partials by log-sum-exp. One
    # task per program, after its attention items: a single program folding a KV head's 32 partial tiles took 11 µs
    # of dependent loads at 1M.
    j = tl.arange(0, MKP)
    for m in range(start, H * G, step):
        h = m // G
        if COOP:
            _wait_for(items_done + h, NSLOT)
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
    keys_m: bool = KEYS_M_DEFAULT,
    per_sm: int | None = None,
    group: int = GROUP,
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
    pair: scan two key blocks per loop iteration. keys_m: see `msa_index._block_pool`.
    per_sm: programs per SM, checked against the compiled kernel's registers and shared memory. Two give each
    scheduler two warps to switch between while one waits: an fp8 scan needs that to keep up with its bytes (H200,
    1M keys: 51 vs 62 us), a bf16 one gains nothing (77 either way) and its merges get twice the candidates. None: 2
    for scaled (fp8) keys where two fit, else 1. group: programs per first-level candidate merge (a
    power of two). pdl: programmatic dependent launch (None: for bf16
    keys only).
    trace: int64, zeroed, at least B x programs x 8 (programs: up to per_sm x SMs), to receive each program's phase
    end times (GPU only; diagnostics): start, scan, group pick, selection, picks seen, attention item, output row.
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
    if group & (group - 1) or group < 1:
        raise ValueError(f"group={group}: the first-level merge takes a power of two of programs")
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
    scale_mode = 0
    if k_scale is not None:
        scale_mode = 1 if k_scale.shape == (b, s) else 2
        if scale_mode == 2 and k_scale.shape != (b, -(-s // block_size)):
            raise ValueError(f"k_scale {tuple(k_scale.shape)} is neither [B, S] nor [B, S / block_size]")
        k_scale = k_scale.to(torch.float32).contiguous()
    q, k, v, idx_q, idx_k = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v, idx_q, idx_k))
    out = torch.empty_like(q)
    sel = torch.empty((b, h, 1, topk), dtype=torch.int32, device=dev)
    nslot = topk * parts
    part_o = torch.empty((b, h, nslot, g, d), dtype=q.dtype, device=dev)
    part_lse = torch.empty((b, h, nslot, g), dtype=torch.float32, device=dev)
    qk_scale = (d**-0.5 if scale is None else scale) * LOG2E
    # PDL for bf16 keys only by default, as in msa_index (it made the fp8 index launch slower on the H200).
    launch_pdl = pdl_kwargs(dev) if (k_scale is None if pdl is None else pdl) else {}
    # On the GPU every program must be resident at once (see the module docstring): at most `fit` per SM, checked
    # against what the compiled kernel needs; by default two for fp8 keys, falling back to one where two do not fit.
    want = per_sm or (2 if k_scale is not None else 1)
    for fit in (want,) if per_sm or want == 1 else (want, 1):
        cap = fit * sms // b
        width = min(programs or cap, cap if coop else n_blocks, n_blocks)
        per = -(-n_blocks // width)
        n_progs = -(-n_blocks // per)
        n_groups = -(-n_progs // group)
        cand = torch.empty((b, n_progs, h, kp), dtype=torch.int64, device=dev)
        cand2 = torch.empty((b, n_groups, h, kp), dtype=torch.int64, device=dev)
        # Per sequence: an epoch and two sets of counters (see the module docstring). The layout depends on n_groups
        # and h, so each (n_groups, h) keeps its own state: a set zeroed under one layout is never read under another.
        nset = n_groups + 2 * h + 1
        state = kernel_state(dev, f"decode state {n_groups} {h}", sms * (1 + 2 * nset))
        args = (
            idx_q, idx_k, k_scale if k_scale is not None else idx_k, q, k, v,
            sel, out, cand, cand2, part_o, part_lse, state, trace if trace is not None else cand,
            s, q_offset, per, n_progs, n_groups, qk_scale,
            idx_q.stride(0), idx_q.stride(2), idx_k.stride(0), idx_k.stride(1),
            k_scale.stride(0) if k_scale is not None else 0,
            q.stride(0), q.stride(2), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
            out.stride(0), out.stride(2),
        )  # fmt: skip
        meta = dict(
            H=h, DI=di, ROWS=max(8 if keys_m else 16, next_pow2(h)), BS=block_size, TOPK=topk, KP=kp,
            LOCAL=local_blocks, PREC=dot_precision(q), SCALE=scale_mode, KEYS_M=keys_m, G=g, GP=max(16, next_pow2(g)),
            D=d, PARTS=parts, MKP=next_pow2(nslot), GROUP=group, NC1=group * kp, NC2=max(kp, next_pow2(n_groups * kp)),
            NSET=nset, NSETP=next_pow2(nset), COOP=coop, PAIR=pair, TRACE=trace is not None, num_warps=num_warps,
            num_stages=num_stages, **launch_pdl,
        )  # fmt: skip
        if coop and fit > 1 and n_progs * b > sms:
            fit_key = (dev, idx_k.dtype, q.dtype, tuple(sorted(meta.items())))
            if fit_key not in _FITS:  # compiling (or finding the compiled kernel) costs ~0.1 ms of host time: once
                _FITS[fit_key] = resident_programs(_decode_kernel.warmup(*args, grid=(1,), **meta), num_warps, dev)
            if _FITS[fit_key] < fit:
                if per_sm:
                    raise ValueError(f"per_sm={per_sm}: only {_FITS[fit_key]} of these decode programs fit on an SM")
                continue
        _decode_kernel[(n_progs, b)](*args, **meta)
        break
    return out, sel
