"""The query-outer form of MSA's sparse attention: the baseline the KV-outer kernel is measured against.

One program per (query, KV head) walks that query's selected blocks with an online softmax, as the public Hopper
path does: every K/V block load feeds only the G heads of one query, so the kernel is bound by block loads. Exact and
usable (any T), just slower than `msa_sparse` at prefill.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from runtime.kernels.msa_sparse import LOG2E, _check, _last_contiguous
from runtime.kernels.msa_util import dot_precision, next_pow2


@triton.jit
def _query_outer_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    bi_ptr,
    out_ptr,
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
    sbi_b,
    sbi_h,
    sbi_t,
    so_b,
    so_t,
    so_h,
    TOPK: tl.constexpr,
    G: tl.constexpr,
    RP: tl.constexpr,
    D: tl.constexpr,
    BS: tl.constexpr,
    PREC: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    pos = q_offset + t
    d = tl.arange(0, D)
    g = tl.arange(0, RP)
    row_ok = g < G
    head = h * G + g
    q = tl.load(q_ptr + b * sq_b + t * sq_t + head[:, None] * sq_h + d[None, :], mask=row_ok[:, None], other=0.0)
    m_run = tl.full([RP], float("-inf"), dtype=tl.float32)
    l_run = tl.zeros([RP], dtype=tl.float32)
    acc = tl.zeros([RP, D], dtype=tl.float32)
    j = tl.arange(0, BS)
    for slot in range(TOPK):
        n = tl.load(bi_ptr + b * sbi_b + h * sbi_h + t * sbi_t + slot)
        # -1 slots and blocks wholly in the future contribute nothing.
        if (n >= 0) & (n * BS <= pos):
            kpos = n * BS + j
            kmask = (kpos < S)[:, None]
            k = tl.load(k_ptr + b * sk_b + kpos[:, None] * sk_s + h * sk_h + d[None, :], mask=kmask, other=0.0)
            v = tl.load(v_ptr + b * sv_b + kpos[:, None] * sv_s + h * sv_h + d[None, :], mask=kmask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PREC)
            s = tl.where((kpos <= pos)[None, :], s * qk_scale, float("-inf"))
            m_new = tl.maximum(m_run, tl.max(s, axis=1))
            alpha = tl.exp2(m_run - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_run = l_run * alpha + tl.sum(p, axis=1)
            pv = tl.dot(p.to(v.dtype), v, input_precision=PREC)
            acc = acc * alpha[:, None] + pv
            m_run = m_new
    res = acc / tl.where(l_run > 0.0, l_run, 1.0)[:, None]
    tl.store(out_ptr + b * so_b + t * so_t + head[:, None] * so_h + d[None, :], res.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None])


def sparse_attention_query_outer(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_indices: torch.Tensor,
    *,
    block_size: int,
    q_offset: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """Same contract as `sparse_attention`; one program per (query, KV head) walking its blocks."""
    _check(q, k, v, block_indices, block_size, q_offset)
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    topk = block_indices.shape[-1]
    scale = d**-0.5 if scale is None else scale
    q, k, v = _last_contiguous(q), _last_contiguous(k), _last_contiguous(v)
    bi = _last_contiguous(block_indices.to(torch.int32))
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if t == 0:
        return out
    _query_outer_kernel[(t, hkv, b)](
        q, k, v, bi, out,
        t, s, q_offset, scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        bi.stride(0), bi.stride(1), bi.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        TOPK=topk, G=g, RP=max(16, next_pow2(g)), D=d, BS=block_size, PREC=dot_precision(q),
        num_warps=4, num_stages=2,
    )  # fmt: skip
    return out
