"""MSA Triton kernels against the torch reference: index top-k, KV-outer / split / query-outer sparse attention.

On a machine without CUDA the kernels run on CPU under TRITON_INTERPRET=1 (float32 and float16: the interpreter is
wrong in bf16) at small sizes; with CUDA the same cases run on the GPU, bf16 included. Full-size GPU checks and all
timings live in benchmarks/msa.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
CUDA = torch.cuda.is_available()
if not CUDA:
    # Before our kernel modules are imported: triton.jit picks the interpreter at decoration time.
    os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ["TRITON_INTERPRET"] != "1":
        pytest.skip("no CUDA and TRITON_INTERPRET is off", allow_module_level=True)
pytest.importorskip("triton")
if not CUDA:
    from runtime.kernels.msa_util import interpreter_compat

    interpreter_compat()

from runtime import kernels  # noqa: E402
from runtime.kernels import msa, reference  # noqa: E402
from runtime.kernels.msa_check import pooled_scores, selection_errors, sparse_rows_reference  # noqa: E402
from runtime.kernels.msa_sparse import KVOuterConfig  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if CUDA else [])
# Small tiles so the interpreter exercises several sub-tiles, L2 sub-chunks and merge tiles at test sizes.
SMALL = KVOuterConfig(sub=4, sub_tiles=2, t_sub=64, merge_t=4)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _randn(*shape: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed)).to(dtype).to(DEVICE)


def _no_errors(report: dict[str, int]) -> bool:
    return all(v == 0 for k, v in report.items() if k != "rows")


def _same_sets(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of rows whose selected ids (ignoring -1 and order) agree."""
    width = max(a.shape[-1], b.shape[-1])
    pad = torch.nn.functional.pad
    a = pad(a.long(), (0, width - a.shape[-1]), value=-1).sort(-1).values
    b = pad(b.long(), (0, width - b.shape[-1]), value=-1).sort(-1).values
    return (a == b).all(-1).float().mean().item()


# ---------------------------------------------------------------- index_topk

INDEX_CASES: dict[str, dict[str, Any]] = {
    # T = S, length not a multiple of the block: the fused path and the split path (per-split top-k + merge).
    "prefill-ragged-fused": dict(b=1, t=200, s=200, h=2, d=32, bs=16, topk=4, local=1, splits=1),
    "prefill-ragged-split": dict(b=1, t=200, s=200, h=2, d=32, bs=16, topk=4, local=1, splits=3),
    # 1 < T < S with two local blocks, batch of two.
    "chunk-local2": dict(b=2, t=45, s=230, h=4, d=32, bs=32, topk=3, local=2, splits=None),
    # Decode at M3's index shape (D 128, block 128), more slots than blocks: -1 padding.
    "decode-m3-shape": dict(b=1, t=1, s=700, h=4, d=128, bs=128, topk=16, local=1, splits=None),
    "decode-block64": dict(b=1, t=1, s=1000, h=4, d=64, bs=64, topk=4, local=1, splits=None),
    # Few blocks for many slots; an index head count that does not fill the row tile evenly.
    "few-blocks-3-heads": dict(b=1, t=90, s=90, h=3, d=32, bs=16, topk=8, local=1, splits=None),
}


@pytest.mark.parametrize("dtype", DTYPES[:2], ids=str)
@pytest.mark.parametrize("name", list(INDEX_CASES))
def test_index_topk_matches_reference(name: str, dtype: torch.dtype) -> None:
    c = INDEX_CASES[name]
    q = _randn(c["b"], c["t"], c["h"], c["d"], dtype=dtype, seed=1)
    k = _randn(c["b"], c["s"], c["d"], dtype=dtype, seed=2)
    off = c["s"] - c["t"]
    args = dict(block_size=c["bs"], topk=c["topk"], local_blocks=c["local"], q_offset=off)
    ours = msa.index_topk(q, k, **args, splits=c["splits"])
    ref = reference.index_topk(q, k, **args)
    assert ours.dtype == torch.int32 and ours.shape == (c["b"], c["h"], c["t"], c["topk"])
    report = selection_errors(ours, pooled_scores(q, k, block_size=c["bs"], local_blocks=c["local"], q_offset=off))
    assert _no_errors(report), report
    # Random scores leave no near-ties: the sets agree exactly with the reference's.
    assert _same_sets(ours, ref) == 1.0


@pytest.mark.parametrize("splits", [1, 4])
def test_index_topk_ties_without_duplicates(splits: int) -> None:
    # Every key block is the same 16 keys, so whole blocks tie; the choice among them is free but must be distinct.
    bs, d = 16, 32
    block = _randn(1, bs, d, dtype=torch.float32, seed=3)
    k = block.repeat(1, 12, 1)[:, :185]
    q = _randn(1, 40, 2, d, dtype=torch.float32, seed=4)
    off = k.shape[1] - 40
    ours = msa.index_topk(q, k, block_size=bs, topk=5, local_blocks=1, q_offset=off, splits=splits)
    report = selection_errors(ours, pooled_scores(q, k, block_size=bs, local_blocks=1, q_offset=off))
    assert _no_errors(report), report
    # Ties go to the lower block id, so the choice is deterministic.
    again = msa.index_topk(q, k, block_size=bs, topk=5, local_blocks=1, q_offset=off, splits=splits)
    assert torch.equal(ours, again)


def test_index_topk_rows_with_fewer_blocks_than_topk() -> None:
    q = _randn(1, 70, 2, 32, dtype=torch.float32, seed=5)
    k = _randn(1, 70, 32, dtype=torch.float32, seed=6)
    ours = msa.index_topk(q, k, block_size=16, topk=6, local_blocks=1)
    for t in (0, 15, 16, 40, 69):
        visible = t // 16 + 1
        row = ours[0, 0, t]
        assert (row[:visible] >= 0).all() and (row[visible:] == -1).all(), (t, row)
        assert t // 16 in row.tolist()  # the query's own block is always in


MERGES = {"one-level": dict(merge_group=0), "grouped": dict(merge_group=5)}


@pytest.mark.parametrize("merge", list(MERGES))
@pytest.mark.parametrize("name", ["prefill-ragged-split", "chunk-local2", "decode-m3-shape", "decode-block64"])
def test_index_topk_split_merges_agree(name: str, merge: str) -> None:
    # Split forms: the candidates merged in one level, or in groups of 5 candidates first; both must be exact. One key
    # block per split.
    c = INDEX_CASES[name]
    q = _randn(c["b"], c["t"], c["h"], c["d"], dtype=torch.float32, seed=11)
    k = _randn(c["b"], c["s"], c["d"], dtype=torch.float32, seed=12)
    off = c["s"] - c["t"]
    args = dict(block_size=c["bs"], topk=c["topk"], local_blocks=c["local"], q_offset=off)
    splits = max(2, (off + c["t"] - 1) // c["bs"] + 1)
    ours = msa.index_topk(q, k, **args, splits=splits, **MERGES[merge])
    report = selection_errors(ours, pooled_scores(q, k, block_size=c["bs"], local_blocks=c["local"], q_offset=off))
    assert _no_errors(report), report
    assert _same_sets(ours, reference.index_topk(q, k, **args)) == 1.0
    # Counters reset themselves: a second call (as in a CUDA-graph replay) gives the same answer.
    assert torch.equal(ours, msa.index_topk(q, k, **args, splits=splits, **MERGES[merge]))


@pytest.mark.parametrize("per", ["token", "block"])
def test_quantize_index_keys_roundtrip(per: str) -> None:
    from runtime.kernels.msa import dequantize_index_keys, quantize_index_keys

    k = torch.randn(2, 300, 64, generator=_gen(13)) * torch.linspace(0.01, 30, 300)[None, :, None]
    q8, scale = quantize_index_keys(k, per=per, block_size=64)
    assert q8.dtype == torch.float8_e4m3fn and q8.shape == k.shape
    assert scale.shape == ((2, 300) if per == "token" else (2, 5)) and scale.dtype == torch.float32
    back = dequantize_index_keys(q8, scale, block_size=64)
    # e4m3 keeps 3 mantissa bits: relative error <= 2^-4 for normal values; subnormals are bounded by the scale.
    unit = scale if per == "token" else scale.repeat_interleave(64, dim=1)[:, :300]
    err = (back - k).abs()
    assert (err <= k.abs() / 16 + unit[..., None] * 2.0**-9 + 1e-12).all()
    assert q8.float().abs().max() <= 448


@pytest.mark.parametrize("per", ["token", "block"])
@pytest.mark.parametrize("name", ["prefill-ragged-fused", "chunk-local2", "decode-m3-shape"])
def test_index_topk_with_scaled_keys(name: str, per: str) -> None:
    # The fp8 cache path: quantized keys times a per-key or per-block scale. On CPU the keys travel as float16
    # (every e4m3 value is exact in float16), so the kernel's scale path is tested under the interpreter.
    from runtime.kernels.msa import dequantize_index_keys, quantize_index_keys

    c = INDEX_CASES[name]
    dtype = torch.float32 if CUDA else torch.float16
    q = _randn(c["b"], c["t"], c["h"], c["d"], dtype=dtype, seed=14)
    k = _randn(c["b"], c["s"], c["d"], dtype=torch.float32, seed=15) * 3
    kq, scale = quantize_index_keys(k, per=per, block_size=c["bs"], dtype=None if CUDA else torch.float16)
    off = c["s"] - c["t"]
    args = dict(block_size=c["bs"], topk=c["topk"], local_blocks=c["local"], q_offset=off)
    ours = msa.index_topk(q, kq, **args, k_scale=scale)
    deq = dequantize_index_keys(kq, scale, block_size=c["bs"])
    # On the GPU fp8 keys are scored against a float16 copy of the query (see msa_index._scan_blocks).
    report = selection_errors(ours, pooled_scores(q, deq, block_size=c["bs"], local_blocks=c["local"], q_offset=off),
                              rel_tol=4e-3 if CUDA else 1e-3)
    assert _no_errors(report), report


def test_selection_overlap_and_planted_blocks() -> None:
    from runtime.kernels.msa import dequantize_index_keys, quantize_index_keys
    from runtime.kernels.msa_check import selection_overlap

    a = torch.tensor([[3, 2, 1, -1], [7, 6, 5, 4]])
    b = torch.tensor([[1, 2, 9, -1], [4, 5, 6, 7]])
    assert selection_overlap(a, b) == pytest.approx((2 / 3 + 1) / 2)
    # Quantized keys keep strongly matching (planted) blocks: the reference on dequantized keys finds them all.
    q = torch.randn(1, 4, 2, 64, generator=_gen(16))
    k = torch.randn(1, 2048, 64, generator=_gen(17))
    planted = [2, 5, 9, 11]
    v = q[0].sum((0, 1))
    for n in planted:
        k[0, n * 128 + 7] = 60 * v / v.norm()  # far above the ~22 of the best random key of a block
    args = dict(block_size=128, topk=6, local_blocks=1, q_offset=2044)
    full = reference.index_topk(q, k, **args)
    kq, scale = quantize_index_keys(k, per="token")
    quant = reference.index_topk(q, dequantize_index_keys(kq, scale).float(), **args)
    for sel in (full, quant):
        assert all(set(planted) <= set(row.tolist()) for row in sel.flatten(0, 2))
    assert selection_overlap(quant, full) >= 0.6


# ---------------------------------------------------------------- sparse_attention

SPARSE_CASES: dict[str, dict[str, Any]] = {
    "prefill-ragged": dict(b=1, t=150, s=150, hkv=2, g=4, d=32, bs=32, topk=3, mode="kv_outer"),
    "chunk": dict(b=2, t=40, s=200, hkv=2, g=2, d=32, bs=16, topk=4, mode="kv_outer"),
    "chunk-auto": dict(b=1, t=24, s=200, hkv=1, g=4, d=32, bs=16, topk=5, mode="auto"),
    # Queries start mid-block: diagonal buckets and merge programs straddle a block boundary.
    "chunk-straddle": dict(b=1, t=37, s=150, hkv=2, g=4, d=32, bs=16, topk=4, mode="kv_outer"),
    "decode-group16": dict(b=1, t=1, s=300, hkv=1, g=16, d=64, bs=64, topk=4, mode="auto"),
    "decode-m3-shape": dict(b=1, t=1, s=500, hkv=2, g=16, d=128, bs=128, topk=16, mode="split"),
    "padding": dict(b=1, t=60, s=60, hkv=1, g=4, d=32, bs=16, topk=8, mode="kv_outer"),
    "query-outer": dict(b=1, t=50, s=120, hkv=2, g=4, d=32, bs=16, topk=3, mode="query_outer"),
    "query-outer-decode": dict(b=1, t=1, s=300, hkv=1, g=16, d=64, bs=64, topk=4, mode="query_outer"),
}


def _selection(c: dict[str, Any], dtype: torch.dtype, seed: int) -> torch.Tensor:
    iq = _randn(c["b"], c["t"], c["hkv"], 32, dtype=dtype, seed=seed)
    ik = _randn(c["b"], c["s"], 32, dtype=dtype, seed=seed + 1)
    return msa.index_topk(iq, ik, block_size=c["bs"], topk=c["topk"], local_blocks=1, q_offset=c["s"] - c["t"])


def _run_sparse(
    c: dict[str, Any],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bi: torch.Tensor,
    config: KVOuterConfig = SMALL,
) -> torch.Tensor:
    off = c["s"] - c["t"]
    if c["mode"] == "query_outer":
        return msa.sparse_attention_query_outer(q, k, v, bi, block_size=c["bs"], q_offset=off)
    return msa.sparse_attention(q, k, v, bi, block_size=c["bs"], q_offset=off, mode=c["mode"], config=config)


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(SPARSE_CASES))
def test_sparse_attention_matches_reference(name: str, dtype: torch.dtype) -> None:
    c = SPARSE_CASES[name]
    if dtype == torch.float16 and name in ("decode-m3-shape", "query-outer-decode") and not CUDA:
        pytest.skip("float32 covers this shape on the interpreter")
    q = _randn(c["b"], c["t"], c["hkv"] * c["g"], c["d"], dtype=dtype, seed=10)
    k = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=dtype, seed=11)
    v = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=dtype, seed=12)
    bi = _selection(c, torch.float32, seed=13)
    ours = _run_sparse(c, q, k, v, bi)
    ref = reference.sparse_attention(q.float(), k.float(), v.float(), bi, block_size=c["bs"], q_offset=c["s"] - c["t"])
    assert ours.shape == q.shape and ours.dtype == dtype
    err = (ours.float() - ref).abs().max().item()
    assert err < _tolerance(dtype), err


def test_sparse_attention_any_selection() -> None:
    # Not from index_topk: -1 anywhere in the row, blocks out of order, blocks wholly in a query's future, and rows
    # that leave out their own block (so none of their slots needs the causal mask).
    c = dict(b=1, t=48, s=96, hkv=2, g=4, d=32, bs=16, topk=4, mode="kv_outer")
    off = 48
    q = _randn(1, 48, 8, 32, dtype=torch.float32, seed=20)
    k = _randn(1, 96, 2, 32, dtype=torch.float32, seed=21)
    v = _randn(1, 96, 2, 32, dtype=torch.float32, seed=22)
    gen = _gen(23)
    n_blocks = 6
    bi = torch.stack([torch.randperm(n_blocks, generator=gen)[:4] for _ in range(2 * 48)]).view(1, 2, 48, 4)
    own = ((torch.arange(48) + off) // 16).view(1, 1, 48)
    drop = torch.zeros(48, dtype=torch.bool)
    drop[::7] = True
    first = torch.where(drop, own - 1, own)  # every query sees its own block, or the one before it
    bi[..., 1:] = torch.where((bi[..., 1:] == own[..., None]) | (bi[..., 1:] == first[..., None]), -1, bi[..., 1:])
    bi[..., 0] = first
    bi[:, :, ::5, 2] = -1
    bi = bi.to(torch.int32).to(DEVICE)
    ref = reference.sparse_attention(q, k, v, bi, block_size=16, q_offset=off)
    for mode in ("kv_outer", "split", "query_outer"):
        ours = _run_sparse({**c, "mode": mode}, q, k, v, bi)
        assert (ours - ref).abs().max().item() < 1e-5, mode


def test_sparse_attention_query_chunks_under_a_small_partial_budget() -> None:
    # A batch of two, query chunks with a ragged last one.
    c = {**SPARSE_CASES["prefill-ragged"], "b": 2}
    q = _randn(2, c["t"], 8, 32, dtype=torch.float32, seed=30)
    k = _randn(2, c["s"], 2, 32, dtype=torch.float32, seed=31)
    v = _randn(2, c["s"], 2, 32, dtype=torch.float32, seed=32)
    bi = _selection(c, torch.float32, seed=33)
    per_query = 2 * 2 * 3 * 4 * (32 * 4 + 4)
    tiny = KVOuterConfig(sub=4, sub_tiles=2, t_sub=0, merge_t=4, partial_budget=70 * per_query)
    ours = _run_sparse(c, q, k, v, bi, config=tiny)  # chunks of 70, 70 and 10 queries
    ref = reference.sparse_attention(q, k, v, bi, block_size=32)
    assert (ours - ref).abs().max().item() < 1e-5


HOPPER = CUDA and torch.cuda.get_device_capability()[0] == 9
HOPPER_CASES: dict[str, dict[str, Any]] = {
    # The Gluon partial kernel's shapes: M3's layout with a ragged length and buckets of a few queries ...
    "m3-ragged": dict(b=1, t=700, s=700, hkv=2, g=16, d=128, bs=128, topk=4),
    # ... a chunk against a longer cache (batch of two), and the 64-wide block and head dim.
    "chunk-b2": dict(b=2, t=300, s=900, hkv=2, g=16, d=128, bs=128, topk=5),
    "block64-d64": dict(b=1, t=333, s=333, hkv=1, g=8, d=64, bs=64, topk=4),
    "block128-d64-g4": dict(b=1, t=260, s=520, hkv=3, g=4, d=64, bs=128, topk=3),
}


@pytest.mark.skipif(not HOPPER, reason="the Gluon partial kernel runs on sm_90 only")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", list(HOPPER_CASES))
def test_hopper_partials_match_reference_and_triton(name: str, dtype: torch.dtype) -> None:
    from runtime.kernels.msa_sparse import _hopper_partials

    c = {**HOPPER_CASES[name], "mode": "kv_outer"}
    q = _randn(c["b"], c["t"], c["hkv"] * c["g"], c["d"], dtype=dtype, seed=50)
    k = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=dtype, seed=51)
    v = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=dtype, seed=52)
    bi = _selection(c, torch.float32, seed=53)
    assert _hopper_partials(q, k, v, c["g"], c["bs"])
    gluon = _run_sparse(c, q, k, v, bi, config=KVOuterConfig())
    triton_ = _run_sparse(c, q, k, v, bi, config=KVOuterConfig(hopper=False))
    ref = reference.sparse_attention(q.float(), k.float(), v.float(), bi, block_size=c["bs"], q_offset=c["s"] - c["t"])
    assert (gluon.float() - ref).abs().max().item() < _tolerance(dtype)
    assert (gluon.float() - triton_.float()).abs().max().item() < _tolerance(dtype)


def test_kv_outer_falls_back_when_the_gluon_kernel_does_not_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gluon's API moves between Triton releases: a Triton that cannot compile the Hopper kernel must still give the
    # right answer (through the Triton kernel, on the Gluon kernel's plan), say so once, and not try again.
    import ast

    from triton.compiler.errors import CompilationError

    from runtime.kernels import msa_sparse

    class Uncompilable:
        calls = 0

        def __getitem__(self, grid: tuple[int]) -> Any:
            def launch(*args: Any, **kwargs: Any) -> None:
                Uncompilable.calls += 1
                raise CompilationError(None, ast.parse("x").body[0], "no such builtin in this Triton")

            return launch

    c = {**HOPPER_CASES["chunk-b2"], "t": 40, "s": 300, "d": 32, "mode": "kv_outer"}
    q = _randn(c["b"], c["t"], c["hkv"] * c["g"], c["d"], dtype=torch.float32, seed=60)
    k = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=torch.float32, seed=61)
    v = _randn(c["b"], c["s"], c["hkv"], c["d"], dtype=torch.float32, seed=62)
    bi = _selection(c, torch.float32, seed=63)
    monkeypatch.setattr(msa_sparse, "_GLUON_FAILURE", None)
    monkeypatch.setattr(msa_sparse, "_gluon_kernel", lambda: Uncompilable())
    monkeypatch.setattr(msa_sparse, "_hopper_partials", lambda *a: msa_sparse._GLUON_FAILURE is None)
    with pytest.warns(RuntimeWarning, match="does not compile"):
        ours = _run_sparse(c, q, k, v, bi)
    again = _run_sparse(c, q, k, v, bi)
    ref = reference.sparse_attention(q, k, v, bi, block_size=c["bs"], q_offset=c["s"] - c["t"])
    assert (ours - ref).abs().max().item() < 1e-5 and torch.equal(ours, again)
    assert Uncompilable.calls == 1 and "no such builtin" in str(msa_sparse._GLUON_FAILURE)


def test_sampled_row_reference_agrees_with_reference() -> None:
    # The benchmark's full-size check recomputes sampled rows only; it must agree with the reference itself.
    c = SPARSE_CASES["chunk"]
    q = _randn(2, 40, 4, 32, dtype=torch.float32, seed=40)
    k = _randn(2, 200, 2, 32, dtype=torch.float32, seed=41)
    v = _randn(2, 200, 2, 32, dtype=torch.float32, seed=42)
    bi = _selection(c, torch.float32, seed=43)
    rows = torch.tensor([0, 7, 39], device=DEVICE)
    ref = reference.sparse_attention(q, k, v, bi, block_size=16, q_offset=160)
    sampled = sparse_rows_reference(q, k, v, bi, rows, block_size=16, q_offset=160)
    assert (sampled.float() - ref[:, rows]).abs().max().item() < 1e-5


# ---------------------------------------------------------------- fused decode (index + sparse in one launch)

DECODE_CASES: dict[str, dict[str, Any]] = {
    # M3's shapes (16 query heads per KV head, head dims 128, block 128, top-16) with fewer blocks than slots.
    "m3-shape-short": dict(b=1, s=700, off=699, h=4, g=16, d=128, di=128, bs=128, topk=16, local=1, parts=2),
    # Two sequences, block 64, one program per block.
    "batch2-block64": dict(b=2, s=1000, off=999, h=4, g=16, d=64, di=64, bs=64, topk=4, local=1, parts=1),
    # A query inside a longer cache, two local blocks, 40 programs: three first-level groups in the merge; two key
    # blocks per scan iteration, and a last program with one block (63 blocks in twos).
    "mid-cache-3-groups": dict(b=1, s=3000, off=2000, h=2, g=4, d=32, di=32, bs=32, topk=6, local=2, parts=2,
                               programs=40, pair=True),
    # First-level merges of 4 programs: 11 programs make groups of 4, 4 and 3.
    "groups-of-4": dict(b=1, s=1500, off=1400, h=2, g=4, d=32, di=32, bs=32, topk=5, local=1, parts=2, programs=11,
                        group=4),
}


def _decode_inputs(c: dict[str, Any], dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    q = _randn(c["b"], 1, c["h"] * c["g"], c["d"], dtype=dtype, seed=seed)
    k = _randn(c["b"], c["s"], c["h"], c["d"], dtype=dtype, seed=seed + 1)
    v = _randn(c["b"], c["s"], c["h"], c["d"], dtype=dtype, seed=seed + 2)
    iq = _randn(c["b"], 1, c["h"], c["di"], dtype=dtype, seed=seed + 3)
    ik = _randn(c["b"], c["s"], c["di"], dtype=dtype, seed=seed + 4)
    return q, k, v, iq, ik


@pytest.mark.parametrize("name", list(DECODE_CASES))
def test_msa_decode_matches_index_then_sparse(name: str) -> None:
    from runtime.kernels.msa_decode import msa_decode

    c = DECODE_CASES[name]
    q, k, v, iq, ik = _decode_inputs(c, torch.float32, seed=60)
    args = dict(block_size=c["bs"], topk=c["topk"], local_blocks=c["local"], q_offset=c["off"])
    for _ in range(2):  # a second call finds its arrival counters reset and its epoch flags moved on
        out, sel = msa_decode(q, k, v, iq, ik, **args, parts=c["parts"], programs=c.get("programs"),
                              pair=c.get("pair", False), group=c.get("group", 16))
        assert _same_sets(sel, reference.index_topk(iq, ik, **args)) == 1.0
        assert _no_errors(selection_errors(sel, pooled_scores(iq, ik, block_size=c["bs"], local_blocks=c["local"],
                                                              q_offset=c["off"])))
        want = reference.sparse_attention(q, k, v, sel, block_size=c["bs"], q_offset=c["off"])
        assert (out - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("per", ["token", "block"])
def test_msa_decode_with_scaled_index_keys(per: str, pair: bool) -> None:
    from runtime.kernels.msa import dequantize_index_keys, quantize_index_keys
    from runtime.kernels.msa_decode import msa_decode

    c = DECODE_CASES["mid-cache-3-groups"]
    dtype = torch.float32 if CUDA else torch.float16  # fp8 keys travel as float16 on CPU, as in the index test
    q, k, v, iq, _ = _decode_inputs(c, dtype, seed=70)
    keys = _randn(c["b"], c["s"], c["di"], dtype=torch.float32, seed=75) * 3
    kq, scale = quantize_index_keys(keys, per=per, block_size=c["bs"], dtype=None if CUDA else torch.float16)
    args = dict(block_size=c["bs"], topk=c["topk"], local_blocks=c["local"], q_offset=c["off"])
    # 21 programs of 3 blocks: the scale prefetch crosses each split's end.
    out, sel = msa_decode(q, k, v, iq, kq, **args, k_scale=scale, programs=25, pair=pair)
    deq = dequantize_index_keys(kq, scale, block_size=c["bs"])
    report = selection_errors(sel, pooled_scores(iq, deq, block_size=c["bs"], local_blocks=c["local"],
                                                 q_offset=c["off"]), rel_tol=4e-3 if CUDA else 1e-3)
    assert _no_errors(report), report
    want = reference.sparse_attention(q.float(), k.float(), v.float(), sel, block_size=c["bs"], q_offset=c["off"])
    assert (out.float() - want).abs().max().item() < 2e-3


def test_msa_decode_refuses_more_than_one_token() -> None:
    from runtime.kernels.msa_decode import msa_decode

    c = DECODE_CASES["batch2-block64"]
    q, k, v, iq, ik = _decode_inputs(c, torch.float32, seed=80)
    with pytest.raises(ValueError, match="one token per sequence"):
        msa_decode(q.expand(-1, 2, -1, -1), k, v, iq, ik, block_size=64, topk=4, local_blocks=1, q_offset=998)


def test_msa_attention_fuses_decode_and_composes_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.kernels import msa_decode

    calls = []
    real = msa_decode.msa_decode

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(args[0].shape[1])
        return real(*args, **kw)

    monkeypatch.setattr(msa_decode, "msa_decode", counted)
    c = DECODE_CASES["m3-shape-short"]
    q, k, v, iq, ik = _decode_inputs(c, torch.float32, seed=90)
    args = dict(block_size=128, topk=16, local_blocks=1)
    got = msa.msa_attention(q, k, v, iq, ik, **args, q_offset=699)
    assert calls == [1]
    want = kernels._composed_msa_attention(q, k, v, iq, ik, **args, q_offset=699)  # reference ops (reset state)
    assert (got - want).abs().max().item() < 1e-4
    # Three queries: the two kernels, no fused launch.
    q3, iq3 = _randn(1, 3, 64, 128, dtype=torch.float32, seed=91), _randn(1, 3, 4, 128, dtype=torch.float32, seed=92)
    got3 = msa.msa_attention(q3, k, v, iq3, ik, **args, q_offset=697)
    assert calls == [1]
    assert (got3 - kernels._composed_msa_attention(q3, k, v, iq3, ik, **args, q_offset=697)).abs().max() < 1e-4


def test_msa_attention_fuses_decode_with_fp8_index_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.kernels import msa_decode
    from runtime.kernels.msa import quantize_index_keys

    calls = []
    real = msa_decode.msa_decode
    monkeypatch.setattr(msa_decode, "msa_decode", lambda *a, **kw: calls.append(kw["k_scale"]) or real(*a, **kw))
    c = DECODE_CASES["m3-shape-short"]
    # bf16 on the GPU (what the kernels serve there); on CPU fp8 keys travel as float16, as in the index test.
    dtype = torch.bfloat16 if CUDA else torch.float16
    q, k, v, iq, ik = _decode_inputs(c, dtype, seed=95)
    kq, scale = quantize_index_keys(ik.float(), per="token", block_size=128, dtype=None if CUDA else torch.float16)
    args = dict(block_size=128, topk=16, local_blocks=1, q_offset=699)
    got = msa.msa_attention(q, k, v, iq, kq, **args, k_scale=scale)
    assert len(calls) == 1 and calls[0] is not None
    sel = msa.index_topk(iq, kq, **args, k_scale=scale)
    want = msa.sparse_attention(q, k, v, sel, block_size=128, q_offset=699)
    assert (got.float() - want.float()).abs().max().item() < (1e-2 if CUDA else 2e-3)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")
def test_msa_decode_replays_in_a_cuda_graph() -> None:
    from runtime.kernels.msa_decode import msa_decode

    c = DECODE_CASES["m3-shape-short"]
    static = [x.to(torch.bfloat16) for x in _decode_inputs(c, torch.float32, seed=100)]
    args = dict(block_size=128, topk=16, local_blocks=1, q_offset=699)
    msa_decode(*static, **args)  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, sel = msa_decode(*static, **args)
    for seed in (101, 102, 103):
        for dst, src in zip(static, _decode_inputs(c, torch.float32, seed=seed), strict=True):
            dst.copy_(src)
        graph.replay()
        q, k, v, iq, ik = static
        assert _same_sets(sel, reference.index_topk(iq, ik, block_size=128, topk=16, local_blocks=1,
                                                    q_offset=699)) == 1.0
        want = reference.sparse_attention(q, k, v, sel, block_size=128, q_offset=699)
        assert (out.float() - want.float()).abs().max().item() < 3e-2


# ---------------------------------------------------------------- through the runtime model


def test_model_with_msa_kernels_matches_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    from runtime import load_model
    from runtime.kernels import msa_decode

    fused = []
    real = msa_decode.msa_decode
    monkeypatch.setattr(msa_decode, "msa_decode", lambda *a, **kw: fused.append(1) or real(*a, **kw))
    from runtime.tiny import tiny_text_config, write_tiny_checkpoint

    cfg = tiny_text_config(index_block_size=16, index_topk_blocks=2, head_dim=16, index_head_dim=16)
    path = write_tiny_checkpoint(tmp_path / "tiny", layout="text", seed=5, text_config=cfg, with_tokenizer=False)
    model = load_model(path, device=DEVICE, dtype=torch.float32)
    ids = torch.randint(0, cfg["vocab_size"], (1, 56), generator=_gen(50)).to(DEVICE)

    def run() -> torch.Tensor:
        # Prefill 40 (3 blocks, one ragged), a chunk of 15, then one decode step: KV-outer, split and fused decode.
        cache = model.new_cache()
        parts = [model(ids[:, :40], [cache]), model(ids[:, 40:55], [cache]), model(ids[:, 55:], [cache])]
        return torch.cat(parts, dim=1)

    assert msa.triton_enabled(ids)  # the kernels, not the reference fallback, serve these shapes
    kernels.reset()
    want = run()
    with kernels.overriding(
        index_topk=msa.index_topk, sparse_attention=msa.sparse_attention, msa_attention=msa.msa_attention
    ):
        got = run()
    assert (got - want).abs().max().item() < 1e-4
    assert len(fused) == cfg["layer_types"].count("minimax_m3_sparse")  # the decode step ran fused, once a layer
