"""Where the MSA kernels' time goes, kernel by kernel: a diagnostic companion to `msa.py` (same shapes and timers).

    python benchmarks/msa_breakdown.py [decode|prefill ...]   # writes $OUT/breakdown.json

- decode (128K and 1M keys): each kernel's own device time (torch profiler over eager calls), then CUDA-graph totals
  with programmatic dependent launch on and off, index launch shapes, and the fp8 index-key paths;
- fused (128K, 512K, 1M keys): the one-launch decode (`msa_decode`) against index + sparse, checked first, then its
  launch parameters one at a time around the default, and with fp8 index keys;
- prefill (128K, or the sizes in PREFILL_T, e.g. PREFILL_T=32768,131072): KV-outer with the Gluon partial kernel
  (the default on Hopper) and with the Triton one (and any `KVOuterConfig` variants in PREFILL_CONFIGS), each
  kernel's device time, and the index branch; with PREFILL_QO=1 the query-outer baseline as well;
- ncu: one KV-outer call at 32K with each partial kernel, as a target for Nsight Compute.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("msa_bench", ROOT / "benchmarks" / "msa.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

OUT: dict[str, Any] = {"decode": [], "prefill": [], "kernels": []}
T = TypeVar("T")


def kernel_times(fn: Callable[[], Any], label: str, reps: int = 10) -> dict[str, float]:
    """Mean device µs per call of each kernel fn launches (eager, so no graph effects)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    totals: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.device_type.name == "CUDA":
            totals[ev.name[:60]] += ev.device_time / reps
    times = dict(sorted(totals.items(), key=lambda kv: -kv[1]))
    OUT["kernels"].append({"what": label, "us": times})
    bench.log(f"kernels {label}: " + ", ".join(f"{k}={v:.1f}" for k, v in times.items()))
    return times


def with_pdl(on: bool, fn: Callable[[], T]) -> T:
    old = os.environ.get("M3_MSA_PDL")
    os.environ["M3_MSA_PDL"] = "1" if on else "0"
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("M3_MSA_PDL")
        else:
            os.environ["M3_MSA_PDL"] = old


def decode(s: int) -> None:
    from runtime.kernels import msa

    off = s - 1
    layers = [bench.make_inputs(1, s, seed=s + i) for i in range(2 if s > 500_000 else 6)]
    args = dict(block_size=bench.BS, topk=bench.TOPK, local_blocks=bench.LOCAL, q_offset=off)
    sels = [msa.index_topk(x["iq"], x["ik"], **args) for x in layers]
    quant = {per: [msa.quantize_index_keys(x["ik"], per=per, block_size=bench.BS) for x in layers]
             for per in ("token", "block")}

    def row(what: str, us: float | None) -> None:
        OUT["decode"].append({"S": s, "what": what, "us": us})
        bench.log(f"decode S={s} {what}: {us}")

    x0, bi0 = layers[0], sels[0]
    # Kernel durations without PDL: a PDL kernel's duration would include its wait for the previous one.
    for mg in (None, 0):
        with_pdl(False, lambda mg=mg: kernel_times(lambda: msa.index_topk(x0["iq"], x0["ik"], **args, merge_group=mg),
                                                   f"decode index S={s} merge_group={mg}"))
    with_pdl(False, lambda: kernel_times(
        lambda: msa.sparse_attention(x0["q"], x0["k"], x0["v"], bi0, block_size=bench.BS, q_offset=off),
        f"decode sparse S={s}"))

    def graph(make: Callable[[dict[str, torch.Tensor], int], Callable[[], Any]]) -> float:
        return bench.graph_time_us([make(x, i) for i, x in enumerate(layers)])

    def idx(**kw: Any) -> Callable[[dict[str, torch.Tensor], int], Callable[[], Any]]:
        return lambda x, i: lambda: msa.index_topk(x["iq"], x["ik"], **args, **kw)

    def sparse(x: dict[str, torch.Tensor], i: int) -> Callable[[], Any]:
        return lambda: msa.sparse_attention(x["q"], x["k"], x["v"], sels[i], block_size=bench.BS, q_offset=off)

    def total(x: dict[str, torch.Tensor], i: int) -> Callable[[], Any]:
        def f() -> None:
            sel = msa.index_topk(x["iq"], x["ik"], **args)
            msa.sparse_attention(x["q"], x["k"], x["v"], sel, block_size=bench.BS, q_offset=off)

        return f

    def total8(per: str) -> Callable[[dict[str, torch.Tensor], int], Callable[[], Any]]:
        def make(x: dict[str, torch.Tensor], i: int) -> Callable[[], Any]:
            kq, sc = quant[per][i]

            def f() -> None:
                sel = msa.index_topk(x["iq"], kq, **args, k_scale=sc)
                msa.sparse_attention(x["q"], x["k"], x["v"], sel, block_size=bench.BS, q_offset=off)

            return f

        return make

    def timed(what: str, on: bool, make: Callable[[dict[str, torch.Tensor], int], Callable[[], Any]]) -> None:
        label = f"{what} ({'pdl' if on else 'no pdl'})"
        row(label, bench.guarded(label, lambda: with_pdl(on, lambda: graph(make))))

    for on in (False, True):
        timed("index", on, idx())
        timed("sparse", on, sparse)
        timed("total", on, total)
        for per in ("token", "block"):
            timed(f"total fp8 per-{per}", on, total8(per))
    for mg in (0, 128, 512):
        timed(f"index merge_group={mg}", True, idx(merge_group=mg))
    for splits in (132, 264, 396, 528):
        for stages in (3, 4):
            timed(f"index splits={splits} stages={stages}", True, idx(splits=splits, num_stages=stages))


def fused(s: int) -> None:
    import math

    from runtime.kernels import msa
    from runtime.kernels.msa_check import pooled_scores, selection_errors
    from runtime.kernels.msa_decode import msa_decode

    off = s - 1
    per_copy = s * (bench.HKV * bench.D * 2 * 2 + bench.DIDX * 2)
    layers = [bench.make_inputs(1, s, seed=s + i) for i in range(int(min(8, max(2, math.ceil(400e6 / per_copy)))))]
    args = dict(block_size=bench.BS, topk=bench.TOPK, local_blocks=bench.LOCAL, q_offset=off)
    quant = {per: [msa.quantize_index_keys(x["ik"], per=per, block_size=bench.BS) for x in layers]
             for per in ("token", "block")}

    def row(what: str, us: float | None) -> None:
        OUT["decode"].append({"S": s, "what": what, "us": us})
        bench.log(f"decode S={s} {what}: {us}")

    def check(**kw: Any) -> None:
        x = layers[0]
        out, sel = msa_decode(x["q"], x["k"], x["v"], x["iq"], x["ik"], **args, **kw)
        want_sel = msa.index_topk(x["iq"], x["ik"], **args)
        want = msa.sparse_attention(x["q"], x["k"], x["v"], sel, block_size=bench.BS, q_offset=off)
        pooled = pooled_scores(x["iq"], x["ik"], block_size=bench.BS, local_blocks=bench.LOCAL, q_offset=off,
                               rows=torch.tensor([0], device="cuda"))
        report = selection_errors(sel, pooled)
        same = set(sel.flatten().tolist()) == set(want_sel.flatten().tolist())
        diff = (out.float() - want.float()).abs().max().item()
        ok = all(v == 0 for k, v in report.items() if k != "rows") and diff < 1e-2
        bench.record_check(f"fused decode S={s} {kw}", ok, {**report, "same_set_as_index_topk": same,
                                                            "max_diff_vs_sparse_attention": diff})

    def fused_call(**kw: Any) -> float:
        return bench.graph_time_us([lambda x=x: msa_decode(x["q"], x["k"], x["v"], x["iq"], x["ik"], **args, **kw)
                                    for x in layers])

    def fused8_call(per: str, **kw: Any) -> float:
        return bench.graph_time_us([
            lambda x=x, q=q: msa_decode(x["q"], x["k"], x["v"], x["iq"], q[0], **args, k_scale=q[1], **kw)
            for x, q in zip(layers, quant[per], strict=True)])

    def unfused(x: dict[str, torch.Tensor]) -> Callable[[], Any]:
        def f() -> None:
            sel = msa.index_topk(x["iq"], x["ik"], **args)
            msa.sparse_attention(x["q"], x["k"], x["v"], sel, block_size=bench.BS, q_offset=off)

        return f

    def check8(per: str, **kw: Any) -> None:
        x, (kq, sc) = layers[0], quant[per][0]
        out, sel = msa_decode(x["q"], x["k"], x["v"], x["iq"], kq, **args, k_scale=sc, **kw)
        want_sel = msa.index_topk(x["iq"], kq, **args, k_scale=sc, keys_m=False)
        want = msa.sparse_attention(x["q"], x["k"], x["v"], sel, block_size=bench.BS, q_offset=off)
        same = set(sel.flatten().tolist()) == set(want_sel.flatten().tolist())
        diff = (out.float() - want.float()).abs().max().item()
        bench.record_check(f"fused decode fp8 per-{per} S={s} {kw}", same and diff < 1e-2,
                           {"same_set_as_index_topk": same, "max_diff_vs_sparse_attention": diff})

    # FUSED_VARIANTS='[{"per_sm": 3}, ...]' (JSON): the launch variants to check and time, instead of the usual sweep.
    extra: list[dict[str, Any]] = json.loads(os.environ.get("FUSED_VARIANTS", "null")) or [
        {"parts": 4}, {"per_sm": 2}, {"per_sm": 1}, {"group": 32}, {"num_stages": 3}]
    for kw in [{}, *extra]:
        bench.guarded(f"fused check {s} {kw}", lambda kw=kw: check(**kw))
        bench.guarded(f"fused check fp8 {s} {kw}", lambda kw=kw: check8("token", **kw))
    row("index + sparse (two launches, pdl)", bench.guarded("unfused", lambda: bench.graph_time_us(
        [unfused(x) for x in layers])))
    # The default first and last: the spread between the two is the run's noise.
    variants: list[dict[str, Any]] = [{}, *extra, {}]
    for kw in variants[: 1 if s == 524288 else None]:
        row(f"fused {kw}", bench.guarded(f"fused {s} {kw}", lambda kw=kw: fused_call(**kw)))
    for kw in variants[: 1 if s == 524288 else None]:
        row(f"fused fp8 per-block {kw}", bench.guarded(f"fused fp8 {s} {kw}", lambda kw=kw: fused8_call("block", **kw)))
    for km in (True,) if s != 1 << 20 else (True, False):
        row(f"index only, fp8 per-token, keys_m={km}", bench.guarded(f"index fp8 {s} {km}", lambda km=km:
            bench.graph_time_us([lambda x=x, q=q: msa.index_topk(x["iq"], q[0], **args, k_scale=q[1], keys_m=km)
                                 for x, q in zip(layers, quant["token"], strict=True)])))
        row(f"index only, bf16, keys_m={km}", bench.guarded(f"index bf16 {s} {km}", lambda km=km:
            bench.graph_time_us([lambda x=x: msa.index_topk(x["iq"], x["ik"], **args, keys_m=km) for x in layers])))
    x0 = layers[0]
    with_pdl(False, lambda: kernel_times(
        lambda: msa_decode(x0["q"], x0["k"], x0["v"], x0["iq"], x0["ik"], **args), f"fused decode S={s}"))
    for kw in [{}, *extra] if "FUSED_VARIANTS" in os.environ else [{}]:
        bench.guarded(f"trace {s} {kw}", lambda kw=kw: fused_trace(s, x0, args, None, **kw))
        bench.guarded(f"trace fp8 {s} {kw}", lambda kw=kw: fused_trace(s, x0, args, quant["block"][0], **kw))


PHASES = ("start", "scan", "group pick", "selection", "picks seen", "item", "output row")


def fused_trace(s: int, x: dict[str, torch.Tensor], args: dict[str, Any], fp8: Any, **kw: Any) -> None:
    """Phase end times of one fused decode launch (µs after the first program started): median and max over the
    programs that reached each phase."""
    from runtime.kernels.msa_decode import msa_decode
    from runtime.kernels.msa_util import device_programs

    keys, scale = (x["ik"], None) if fp8 is None else fp8
    trace = torch.zeros(2 * device_programs(x["q"].device) * 8, dtype=torch.int64, device="cuda")
    for _ in range(3):  # the last of three back-to-back launches (warm caches, as in a graph replay)
        trace.zero_()
        msa_decode(x["q"], x["k"], x["v"], x["iq"], keys, **args, k_scale=scale, trace=trace, **kw)
    torch.cuda.synchronize()
    t = trace.view(-1, 8).double()
    t = t[t[:, 0] > 0]
    t0 = t[:, 0].min()
    summary: dict[str, Any] = {}
    for i, name in enumerate(PHASES):
        col = t[:, i][t[:, i] > 0]
        if len(col):
            rel = (col - t0) / 1000
            summary[name] = {"n": len(col), "median_us": round(rel.median().item(), 2),
                             "max_us": round(rel.max().item(), 2)}
            if name == "scan":  # how ragged the scan's end is: the chain after it starts at the last program
                q = torch.quantile(rel, torch.tensor([0.0, 0.1, 0.9, 0.97], dtype=rel.dtype, device=rel.device))
                summary[name]["min_p10_p90_p97_us"] = [round(v, 2) for v in q.tolist()]
    label = f"trace S={s} {'fp8 ' if fp8 is not None else ''}{kw}"
    OUT.setdefault("traces", []).append({"what": label, "phases": summary})
    bench.log(f"{label}: " + "; ".join(f"{k} n={v['n']} med {v['median_us']} max {v['max_us']}"
                                     for k, v in summary.items()))


def prefill(t: int) -> None:
    from runtime.kernels import msa
    from runtime.kernels.msa_sparse import KVOuterConfig

    inp = bench.make_inputs(t, t, seed=t)
    args = dict(block_size=bench.BS, topk=bench.TOPK, local_blocks=bench.LOCAL)
    bi = msa.index_topk(inp["iq"], inp["ik"], **args)
    OUT["prefill"].append({"T": t, "what": "index", "ms": bench.cuda_time_ms(
        lambda: msa.index_topk(inp["iq"], inp["ik"], **args))})
    if os.environ.get("PREFILL_QO"):  # PREFILL_QO=1: the query-outer baseline too, for the ratio in the same run
        ms = bench.cuda_time_ms(lambda: msa.sparse_attention_query_outer(inp["q"], inp["k"], inp["v"], bi,
                                                                          block_size=bench.BS))
        OUT["prefill"].append({"T": t, "what": "query_outer", "ms": ms})
        bench.log(f"prefill T={t} query_outer: {ms:.2f} ms")
    ref = None
    configs = [("default", KVOuterConfig()), ("triton partials", KVOuterConfig(hopper=False))]
    # PREFILL_CONFIGS="t_sub=2048;sub_tiles=8,t_sub=2048": more KVOuterConfig variants, same inputs and run.
    for spec in filter(None, os.environ.get("PREFILL_CONFIGS", "").split(";")):
        kw = {k: int(v) for k, v in (kv.split("=") for kv in spec.split(","))}
        configs.append((spec, KVOuterConfig(**kw)))  # type: ignore[arg-type]
    for name, cfg in configs:
        def run(cfg: Any = cfg) -> torch.Tensor:
            return msa.sparse_attention(inp["q"], inp["k"], inp["v"], bi, block_size=bench.BS, mode="kv_outer",
                                        config=cfg)

        out = run()
        if ref is None:
            ref = out
        same = (out.float() - ref.float()).abs().max().item()
        ms = bench.cuda_time_ms(run)
        OUT["prefill"].append({"T": t, "what": f"kv_outer {name}", "ms": ms, "max_diff_vs_first": same})
        bench.log(f"prefill T={t} kv_outer {name}: {ms:.2f} ms (max diff vs first config {same:.2e})")
        kernel_times(run, f"prefill kv_outer {name} T={t}", reps=2)


def ncu_target() -> None:
    """KV-outer at 32K, once with each partial kernel (Gluon, then Triton), for `ncu --kernel-name regex:kv_outer`
    (stall reasons, occupancy)."""
    from runtime.kernels import msa
    from runtime.kernels.msa_sparse import KVOuterConfig

    inp = bench.make_inputs(32768, 32768, seed=1)
    bi = msa.index_topk(inp["iq"], inp["ik"], block_size=bench.BS, topk=bench.TOPK, local_blocks=bench.LOCAL)
    for cfg in (KVOuterConfig(), KVOuterConfig(hopper=False)):
        msa.sparse_attention(inp["q"], inp["k"], inp["v"], bi, block_size=bench.BS, mode="kv_outer", config=cfg)
    torch.cuda.synchronize()


def main() -> int:
    what = sys.argv[1:] or ["decode", "prefill"]
    if what == ["ncu"]:
        ncu_target()
        return 0
    OUT["gpu"] = torch.cuda.get_device_name()
    if "decode" in what:
        for s in (131072, 1 << 20):
            bench.guarded(f"decode {s}", lambda s=s: decode(s))
            torch.cuda.empty_cache()
    if "fused" in what:
        for s in [int(x) for x in os.environ.get("FUSED_S", "131072,1048576").split(",")]:
            bench.guarded(f"fused {s}", lambda s=s: fused(s))
            torch.cuda.empty_cache()
    if "prefill" in what:
        for t in [int(x) for x in os.environ.get("PREFILL_T", "131072").split(",")]:
            bench.guarded(f"prefill {t}", lambda t=t: prefill(t))
            torch.cuda.empty_cache()
    (bench.results_dir() / "breakdown.json").write_text(json.dumps(OUT, indent=2))
    print("\n== decode (graph µs per layer-token)")
    for r in OUT["decode"]:
        print(f"  S={r['S']:>8} {r['what']:<40} {r['us'] if r['us'] is None else round(r['us'], 1)}")
    print("== prefill (ms)")
    for r in OUT["prefill"]:
        print(f"  T={r['T']:>7} {r['what']:<30} {r['ms']:.2f}")
    print("== kernels (device µs per call)")
    for r in OUT["kernels"]:
        print(f"  {r['what']}: " + ", ".join(f"{k[:40]}={v:.1f}" for k, v in list(r["us"].items())[:6]))
    print("== fused decode phase ends (µs after the first program starts: median / max over programs)")
    for r in OUT.get("traces", []):
        print(f"  {r['what']}: " + "; ".join(f"{k} {v['median_us']}/{v['max_us']}" for k, v in r["phases"].items()))
    for r in bench.RESULTS["correctness"]:
        print(f"  {'PASS' if r['ok'] else 'FAIL'} {r['check']} {r}")
    print("errors:", bench.RESULTS["errors"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
