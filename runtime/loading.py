"""`load_model`: config + weights -> a ready M3ForCausalLM on the device."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from runtime.config import load_config
from runtime.model import M3ForCausalLM
from runtime.weights import CheckpointError, iter_tensors


def load_model(
    path: str | Path, *, device: str | torch.device = "cuda", dtype: torch.dtype | None = torch.bfloat16
) -> M3ForCausalLM:
    """Load a MiniMax-M3 checkpoint directory. `dtype=None` keeps the stored dtype."""
    config = load_config(path)
    if torch.device(device).type == "cuda":
        # The Triton MSA kernels and SDPA's fused dense attention serve CUDA tensors (each falls back to the torch
        # reference for shapes it doesn't cover); CPU runs keep the reference ops.
        from runtime import kernels
        from runtime.kernels import dense, msa

        kernels.use(msa)
        kernels.use(dense)
    quant = config.raw.get("quantization_config") or (config.raw.get("text_config") or {}).get("quantization_config")
    if quant:
        method = quant.get("quant_method", "?") if isinstance(quant, dict) else "?"
        raise CheckpointError(
            f"{path} is a quantized checkpoint (quant_method {method!r}); this runtime loads bf16/fp16/fp32 weights "
            "only so far"
        )
    with torch.device("meta"):
        model = M3ForCausalLM(config)
    for name, tensor in iter_tensors(path, config, dtype=dtype, device=device):
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        setattr(module, attr, nn.Parameter(tensor, requires_grad=False))
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:  # validate() makes this unreachable; kept as a guard against a planning bug
        raise RuntimeError(f"parameters not loaded: {', '.join(left)}")
    return model.eval()
