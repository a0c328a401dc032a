"""What-if bounds for the KV-outer prefill: how fast would it be if its reads never missed L2?

    python benchmarks/msa_whatif.py         # on the GPU machine; WHATIF_T=32768 for another length

Same inputs and selection as `msa.py` (M3's layout, random bf16, our index branch's blocks). The KV-outer call runs
with its inputs as they are, then with zero strides that make one of its two read streams L2-resident:
- gathered Q: q with stride 0 over queries, so every gathered query reads query 0's rows;
- K/V: k and v with stride 0 over keys, so every block load reads key 0's row.
The results of those runs are wrong on purpose; only their times matter. The gap to the normal run bounds what any
change to the partial kernel's Q or K/V traffic (sub-chunk sizes, L2 policies, prefetching) can gain. Each row is
the whole call's median (`benchmarks/msa.py`'s `cuda_time_ms`) and its four longest kernels' device times
(`msa_breakdown.kernel_times`, mean of 3 calls); writes $OUT/whatif_<T>.json (or benchmarks/results/ when OUT is
unset).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the root first: benchmarks/runtime.py would shadow `runtime`

import msa_breakdown as breakdown  # noqa: E402

from runtime.kernels import msa  # noqa: E402

bench = breakdown.bench


def main() -> None:
    t = int(os.environ.get("WHATIF_T", "131072"))
    inp = bench.make_inputs(t, t, seed=t)
    bi = msa.index_topk(inp["iq"], inp["ik"], block_size=bench.BS, topk=bench.TOPK, local_blocks=bench.LOCAL)
    q, k, v = inp["q"], inp["k"], inp["v"]
    q0 = q[:, :1].expand(q.shape)
    k0, v0 = k[:, :1].expand(k.shape), v[:, :1].expand(v.shape)
    variants = {
        "as is": (q, k, v),
        "gathered Q L2-resident": (q0, k, v),
        "K/V L2-resident": (q, k0, v0),
        "both L2-resident": (q0, k0, v0),
        "as is, again": (q, k, v),
    }
    result: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "T": t}
    for name, (qq, kk, vv) in variants.items():

        def run(qq: torch.Tensor = qq, kk: torch.Tensor = kk, vv: torch.Tensor = vv) -> torch.Tensor:
            return msa.sparse_attention(qq, kk, vv, bi, block_size=bench.BS, mode="kv_outer")

        ms = bench.cuda_time_ms(run)
        top = list(breakdown.kernel_times(run, f"whatif {name} T={t}", reps=3).items())[:4]
        result[name] = {"call_ms": ms, "kernels_ms": {key: us / 1000 for key, us in top}}
        bench.log(f"T={t} {name}: {ms:.2f} ms")
    (bench.results_dir() / f"whatif_{t}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
