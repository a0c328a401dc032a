"""What the KV-outer partials' storage format costs in accuracy (CPU, float64; no GPU needed).

    python benchmarks/msa_partial_precision.py

Each query attends to 16 blocks of 128 keys (M3's top-16, block 128, head dim 128), inputs rounded to bf16 as in
`msa.py`. The per-block partials (normalised outputs) are rounded to a storage format, merged exactly by their
log-sum-exps, and the output is rounded to bf16, as `sparse_attention` returns it. Printed: the relative RMS and max
absolute error against the exact output, for bf16 partials (what `msa_sparse` stores) and for the coarser formats
that would halve the partials' bytes (int8 with a per-row scale, fp8 e4m3), on random inputs and on two harder ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Rounding = Callable[[torch.Tensor], torch.Tensor]


def _int8_rows(p: torch.Tensor) -> torch.Tensor:
    scale = p.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 127
    return torch.round(p / scale).clamp(-127, 127) * scale


def _e4m3_rows(p: torch.Tensor) -> torch.Tensor:
    scale = p.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 448  # e4m3's largest finite value
    return (p / scale).to(torch.float8_e4m3fn).double() * scale


FORMATS: dict[str, Rounding] = {
    "fp32": lambda p: p.float().double(),
    "bf16 (msa_sparse)": lambda p: p.to(torch.bfloat16).double(),
    "int8, per-row scale": _int8_rows,
    "fp8 e4m3, per-row scale": _e4m3_rows,
}


def errors(n: int = 1024, blocks: int = 16, bs: int = 128, d: int = 128, q_gain: float = 1.0,
           v_outliers: float = 1.0, seed: int = 0) -> dict[str, tuple[float, float]]:
    """(relative RMS, max abs) error of the merged bf16 output for each partial format."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=g, dtype=torch.float64) * q_gain
    k = torch.randn(n, blocks, bs, d, generator=g, dtype=torch.float64)
    v = torch.randn(n, blocks, bs, d, generator=g, dtype=torch.float64)
    v[..., :4] *= v_outliers  # a few large channels, as trained models' values have
    q, k, v = (x.to(torch.bfloat16).double() for x in (q, k, v))
    s = torch.einsum("nd,nbkd->nbk", q, k) / math.sqrt(d)
    partial = torch.einsum("nbk,nbkd->nbd", torch.softmax(s, -1), v)
    lse = torch.logsumexp(s, -1)
    weight = torch.exp(lse - torch.logsumexp(lse, -1, keepdim=True))[..., None]
    exact = (weight * partial).sum(1)
    out = {}
    for name, rounding in FORMATS.items():
        err = (weight * rounding(partial)).sum(1).to(torch.bfloat16).double() - exact
        out[name] = ((err.pow(2).mean() / exact.pow(2).mean()).sqrt().item(), err.abs().max().item())
    return out


def main() -> None:
    cases = {"random (msa.py's inputs)": {}, "peaked scores (queries x 4)": {"q_gain": 4.0},
             "V with 4 channels x 20": {"v_outliers": 20.0}}
    for label, kw in cases.items():
        print(f"{label}: relative RMS / max abs error of the bf16 output")
        for name, (rel, mx) in errors(**kw).items():
            print(f"  {name:<26} {rel:.2e} / {mx:.2e}")


if __name__ == "__main__":
    main()
