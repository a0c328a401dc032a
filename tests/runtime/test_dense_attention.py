"""The full-attention layers' SDPA path (`runtime/kernels/dense.py`) against the torch reference."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from runtime.kernels import dense, reference  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _qkv(t: int, s: int, hq: int, hkv: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(t * 1000 + s)
    q = torch.randn(2, t, hq, 64, generator=g)
    k = torch.randn(2, s, hkv, 64, generator=g)
    v = torch.randn(2, s, hkv, 64, generator=g)
    return tuple(x.to(device=device, dtype=dtype) for x in (q, k, v))


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 2e-2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hq,hkv", [(8, 2), (4, 4)])
def test_prompt_from_the_start(device: str, hq: int, hkv: int) -> None:
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    q, k, v = _qkv(200, 200, hq, hkv, device, dtype)
    got = dense.causal_attention(q, k, v, scale=0.1)
    want = reference.causal_attention(q.float(), k.float(), v.float(), scale=0.1)
    assert got.shape == q.shape and got.dtype == dtype
    assert (got.float() - want).abs().max().item() < _tolerance(dtype)
    # Causal: the first query sees only the first key, so its output is that key's value.
    assert torch.allclose(got[:, 0].float(), v[:, 0].float().repeat_interleave(hq // hkv, dim=1), atol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_next_token_after_the_cache(device: str) -> None:
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    q, k, v = _qkv(1, 300, 8, 2, device, dtype)
    got = dense.causal_attention(q, k, v, q_offset=299)
    want = reference.causal_attention(q.float(), k.float(), v.float(), q_offset=299)
    assert (got.float() - want).abs().max().item() < _tolerance(dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_chunk_after_a_cache_matches_the_whole_prompt(device: str) -> None:
    """A chunk of queries after cached keys (SDPA has no exact causal form for it with GQA): the rows it returns are
    the ones the whole prompt gives for those positions."""
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    q, k, v = _qkv(160, 160, 8, 2, device, dtype)
    whole = dense.causal_attention(q, k, v)
    chunk = dense.causal_attention(q[:, 100:], k, v, q_offset=100)
    assert (chunk.float() - whole[:, 100:].float()).abs().max().item() < _tolerance(dtype)
    middle = dense.causal_attention(q[:, 40:90], k[:, :120], v[:, :120], q_offset=40)  # keys past the queries
    assert (middle.float() - whole[:, 40:90].float()).abs().max().item() < _tolerance(dtype)

