"""Per-sequence KV cache plus the MSA index-key cache.

Each sequence owns contiguous per-layer buffers that grow by doubling. The model writes a step's keys at
[length, length + n) in every layer, then `advance(n)` commits them once the whole forward pass succeeded, so a
failed step leaves the cache as it was.
"""

from __future__ import annotations

import torch

from runtime.config import M3Config


class ContextOverflowError(ValueError):
    """A sequence would grow past the model's maximum context."""


class SequenceCache:
    def __init__(self, config: M3Config, *, device: torch.device | str, dtype: torch.dtype, max_length: int) -> None:
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.length = 0
        self._capacity = 0
        n = config.num_layers
        self._k: list[torch.Tensor | None] = [None] * n
        self._v: list[torch.Tensor | None] = [None] * n
        self._idx_k: list[torch.Tensor | None] = [None] * n

    def _ensure(self, needed: int) -> None:
        if needed > self.max_length:
            raise ContextOverflowError(f"sequence of {needed} tokens exceeds the maximum context of {self.max_length}")
        if needed <= self._capacity:
            return
        capacity = min(self.max_length, max(needed, 2 * self._capacity, 64))
        cfg = self.config
        for layer in range(cfg.num_layers):
            self._k[layer] = self._grown(self._k[layer], (capacity, cfg.num_kv_heads, cfg.head_dim))
            self._v[layer] = self._grown(self._v[layer], (capacity, cfg.num_kv_heads, cfg.head_dim))
            if cfg.is_sparse(layer):
                self._idx_k[layer] = self._grown(self._idx_k[layer], (capacity, cfg.index_head_dim))
        self._capacity = capacity

    def _grown(self, old: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
        new = torch.empty(shape, dtype=self.dtype, device=self.device)
        if old is not None and self.length:
            new[: self.length] = old[: self.length]
        return new

    def check_room(self, n: int) -> None:
        """Raise before any work if n more tokens do not fit."""
        if self.length + n > self.max_length:
            raise ContextOverflowError(
                f"{self.length} cached + {n} new tokens exceed the maximum context of {self.max_length}"
            )

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, idx_k: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store a step's k/v [n, Hkv, D] (and index keys [n, Di]); return every key so far, this step included."""
        n = k.shape[0]
        end = self.length + n
        self._ensure(end)
        keys, values = self._k[layer], self._v[layer]
        assert keys is not None and values is not None
        keys[self.length : end] = k
        values[self.length : end] = v
        index_keys = self._idx_k[layer]
        if idx_k is not None:
            assert index_keys is not None
            index_keys[self.length : end] = idx_k
            return keys[:end], values[:end], index_keys[:end]
        return keys[:end], values[:end], None

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget tokens past `length` (their slots are overwritten by the next write)."""
        self.length = min(self.length, length)
