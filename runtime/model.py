"""The MiniMax-M3 text model in plain torch; every hot op goes through `runtime.kernels`.

Tokens of a step travel as one flat batch [N, hidden] so projections, MLPs and the MoE run once for all sequences;
only attention walks the sequences (each against its own cache). Parameter names are the canonical names the
weight loader fills (see `expected_shapes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from runtime import kernels
from runtime.cache import SequenceCache
from runtime.config import M3Config


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape), requires_grad=False)


@dataclass
class Segment:
    """`length` new tokens of one sequence, continuing after what `cache` already holds."""

    cache: SequenceCache
    length: int


class Rotary(nn.Module):
    def __init__(self, config: M3Config) -> None:
        super().__init__()
        dim = config.rotary_dim
        # Same formula and float32 steps as the reference so cos/sin agree bit for bit.
        # Built on the CPU explicitly: the model itself is constructed on the meta device before loading.
        self.inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float, device="cpu") / dim))
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self._on_device.get(positions.device)
        if inv_freq is None:
            inv_freq = self._on_device[positions.device] = self.inv_freq.to(positions.device)
        freqs = positions[:, None].float() * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, config: M3Config, layer: int) -> None:
        super().__init__()
        c = config
        self.config = c
        self.layer = layer
        self.sparse = c.is_sparse(layer)
        self.scale = c.head_dim**-0.5
        self.q_proj = _param(c.num_heads * c.head_dim, c.hidden_size)
        self.k_proj = _param(c.num_kv_heads * c.head_dim, c.hidden_size)
        self.v_proj = _param(c.num_kv_heads * c.head_dim, c.hidden_size)
        self.o_proj = _param(c.hidden_size, c.num_heads * c.head_dim)
        self.q_norm = _param(c.head_dim)
        self.k_norm = _param(c.head_dim)
        if self.sparse:
            self.index_q_proj = _param(c.index_heads * c.index_head_dim, c.hidden_size)
            self.index_k_proj = _param(c.index_head_dim, c.hidden_size)
            self.index_q_norm = _param(c.index_head_dim)
            self.index_k_norm = _param(c.index_head_dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, segments: Sequence[Segment]
    ) -> torch.Tensor:
        c = self.config
        n = x.shape[0]
        eps = c.rms_norm_eps
        q = kernels.rms_norm(F.linear(x, self.q_proj).view(n, c.num_heads, c.head_dim), self.q_norm, eps)
        k = kernels.rms_norm(F.linear(x, self.k_proj).view(n, c.num_kv_heads, c.head_dim), self.k_norm, eps)
        v = F.linear(x, self.v_proj).view(n, c.num_kv_heads, c.head_dim)
        q = kernels.apply_rope(q, cos, sin)
        k = kernels.apply_rope(k, cos, sin)
        iq = ik = None
        if self.sparse:
            di = c.index_head_dim
            iq = F.linear(x, self.index_q_proj).view(n, c.index_heads, di)
            ik = F.linear(x, self.index_k_proj).view(n, 1, di)
            iq = kernels.apply_rope(kernels.rms_norm(iq, self.index_q_norm, eps), cos[..., :di], sin[..., :di])
            ik = kernels.apply_rope(kernels.rms_norm(ik, self.index_k_norm, eps), cos[..., :di], sin[..., :di])[:, 0]

        out = torch.empty_like(q)
        start = 0
        for seg in segments:
            rows = slice(start, start + seg.length)
            start += seg.length
            offset = seg.cache.length
            keys, values, index_keys = seg.cache.write(
                self.layer, k[rows], v[rows], None if ik is None else ik[rows]
            )
            if self.sparse:
                assert iq is not None and index_keys is not None
                o = kernels.msa_attention(
                    q[rows][None], keys[None], values[None], iq[rows][None], index_keys[None],
                    block_size=c.index_block_size, topk=c.index_topk_blocks, local_blocks=c.index_local_blocks,
                    q_offset=offset, scale=self.scale,
                )  # fmt: skip
            else:
                o = kernels.causal_attention(q[rows][None], keys[None], values[None], q_offset=offset, scale=self.scale)
            out[rows] = o[0]
        return F.linear(out.view(n, -1), self.o_proj)


class DenseMLP(nn.Module):
    def __init__(self, config: M3Config, intermediate: int) -> None:
        super().__init__()
        self.config = config
        self.gate_up_proj = _param(2 * intermediate, config.hidden_size)
        self.down_proj = _param(config.hidden_size, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = kernels.swiglu_oai(F.linear(x, self.gate_up_proj), alpha=c.swiglu_alpha, limit=c.swiglu_limit)
        return F.linear(h, self.down_proj)


class MoE(nn.Module):
    def __init__(self, config: M3Config) -> None:
        super().__init__()
        c = config
        self.config = c
        self.router = _param(c.num_experts, c.hidden_size)
        self.router_bias = _param(c.num_experts)
        self.experts_gate_up = _param(c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size)
        self.experts_down = _param(c.num_experts, c.hidden_size, c.moe_intermediate_size)
        self.shared_gate_up = _param(2 * c.shared_intermediate_size, c.hidden_size)
        self.shared_down = _param(c.hidden_size, c.shared_intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        act = {"alpha": c.swiglu_alpha, "limit": c.swiglu_limit}
        shared = F.linear(kernels.swiglu_oai(F.linear(x, self.shared_gate_up), **act), self.shared_down)
        weights, ids = kernels.moe_route(x, self.router, self.router_bias, top_k=c.experts_per_token)
        routed = kernels.moe_experts(x, self.experts_gate_up, self.experts_down, weights, ids, **act)
        return routed * c.routed_scaling_factor + shared


class DecoderLayer(nn.Module):
    def __init__(self, config: M3Config, layer: int) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.input_norm = _param(config.hidden_size)
        self.post_attn_norm = _param(config.hidden_size)
        self.attn = Attention(config, layer)
        self.mlp: nn.Module = MoE(config) if config.is_moe(layer) else DenseMLP(config, config.dense_intermediate_size)

    def forward(
        self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, segments: Sequence[Segment]
    ) -> torch.Tensor:
        h = h + self.attn(kernels.rms_norm(h, self.input_norm, self.eps), cos, sin, segments)
        return h + self.mlp(kernels.rms_norm(h, self.post_attn_norm, self.eps))


class M3ForCausalLM(nn.Module):
    """`model(input_ids [B, T])` -> logits [B, T, vocab]; `forward_segments` is the cached, ragged entry point."""

    def __init__(self, config: M3Config) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = _param(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_layers))
        self.norm = _param(config.hidden_size)
        if not config.tie_word_embeddings:
            self.lm_head = _param(config.vocab_size, config.hidden_size)
        self.rotary = Rotary(config)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed_tokens if self.config.tie_word_embeddings else self.lm_head

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.dtype

    def new_cache(self, max_length: int | None = None) -> SequenceCache:
        return SequenceCache(
            self.config,
            device=self.device,
            dtype=self.dtype,
            max_length=max_length or self.config.max_position_embeddings,
        )

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, caches: Sequence[SequenceCache] | None = None) -> torch.Tensor:
        """Logits for every position of every row. With `caches` (one per row) the rows continue those sequences."""
        b, t = input_ids.shape
        if caches is None:
            caches = [self.new_cache() for _ in range(b)]
        if len(caches) != b:
            raise ValueError(f"{len(caches)} caches for a batch of {b} rows")
        logits = self.forward_segments(input_ids.reshape(-1), [Segment(c, t) for c in caches])
        return logits.view(b, t, -1)

    @torch.inference_mode()
    def forward_segments(
        self, input_ids: torch.Tensor, segments: Sequence[Segment], *, last_only: bool = False
    ) -> torch.Tensor:
        """Run the flat token batch `input_ids` [N] laid out as `segments` (in order, lengths summing to N).

        Returns logits [N, vocab], or [len(segments), vocab] for each segment's last token when `last_only`.
        Every segment's cache grows by its length.
        """
        if sum(s.length for s in segments) != input_ids.shape[0]:
            raise ValueError("segment lengths do not add up to the number of tokens")
        for seg in segments:
            seg.cache.check_room(seg.length)
        device = self.device
        input_ids = input_ids.to(device)
        positions = torch.cat(
            [torch.arange(s.cache.length, s.cache.length + s.length, device=device) for s in segments]
        )
        h = F.embedding(input_ids, self.embed_tokens)
        cos, sin = self.rotary(positions, h.dtype)
        for layer in self.layers:
            h = layer(h, cos, sin, segments)
        for seg in segments:
            seg.cache.advance(seg.length)
        if last_only:
            ends = torch.tensor([s.length for s in segments], device=device).cumsum(0) - 1
            h = h[ends]
        h = kernels.rms_norm(h, self.norm, self.config.rms_norm_eps)
        return F.linear(h, self.head_weight)


def expected_shapes(config: M3Config) -> dict[str, tuple[int, ...]]:
    """Every tensor the model needs, by canonical name, with its shape."""
    with torch.device("meta"):
        model = M3ForCausalLM(config)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}
