"""The full-attention layers' SDPA path (`runtime/kernels/dense.py`) against the torch reference.

On the CPU, `sdpa_causal` runs SDPA's math backend: that checks the causal alignment of every layout the runtime
uses. On a GPU, `causal_attention` itself runs FlashAttention in bf16."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from runtime.kernels import dense, reference  # noqa: E402

# (queries, keys): a prompt from the start, one decode token, prompt chunks after a cache (the engine's chunked
# prefill), with lengths that are not multiples of anything.
LAYOUTS = [(200, 200), (1, 300), (60, 160), (129, 130)]


def _qkv(t: int, s: int, hq: int, hkv: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(t * 1000 + s)
    q = torch.randn(2, t, hq, 64, generator=g)
    k = torch.randn(2, s, hkv, 64, generator=g)
    v = torch.randn(2, s, hkv, 64, generator=g)
    return tuple(x.to(device=device, dtype=dtype) for x in (q, k, v))


@pytest.mark.parametrize("t,s", LAYOUTS)
@pytest.mark.parametrize("hq,hkv", [(8, 2), (4, 4)])
def test_sdpa_causal_matches_the_reference(t: int, s: int, hq: int, hkv: int) -> None:
    q, k, v = _qkv(t, s, hq, hkv, "cpu", torch.float32)
    got = dense.sdpa_causal(q, k, v, scale=0.1)
    want = reference.causal_attention(q, k, v, q_offset=s - t, scale=0.1)
    assert got.shape == q.shape
    assert (got - want).abs().max().item() < 1e-5


def test_a_chunk_gives_the_rows_the_whole_prompt_gives() -> None:
    q, k, v = _qkv(160, 160, 8, 2, "cpu", torch.float32)
    whole = dense.sdpa_causal(q, k, v)
    chunk = dense.sdpa_causal(q[:, 100:], k, v)
    assert (chunk - whole[:, 100:]).abs().max().item() < 1e-5
    # The first query of the prompt sees only the first key: its output is that key's value.
    assert torch.allclose(whole[:, 0], v[:, 0].repeat_interleave(4, dim=1), atol=1e-6)


def test_layouts_sdpa_cannot_take_keep_the_reference() -> None:
    q, k, v = _qkv(50, 120, 8, 2, "cpu", torch.float32)
    got = dense.causal_attention(q, k, v, q_offset=40)  # keys past the last query
    assert torch.equal(got, reference.causal_attention(q, k, v, q_offset=40))
    with pytest.raises(ValueError, match="cannot be the last"):
        dense.sdpa_causal(q, k[:, :10], v[:, :10])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("t,s", LAYOUTS)
def test_flash_attention_on_the_gpu(t: int, s: int) -> None:
    q, k, v = _qkv(t, s, 8, 2, "cuda", torch.bfloat16)
    assert dense._flash_can_run(q, k, v)
    got = dense.causal_attention(q, k, v, q_offset=s - t)
    want = reference.causal_attention(q.float(), k.float(), v.float(), q_offset=s - t)
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max().item() < 2e-2


def test_an_sdpa_failure_falls_back_to_the_reference_once_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_api(*_: object) -> bool:
        raise TypeError("SDPAParams() takes 6 positional arguments")

    monkeypatch.setattr(dense, "_flash_can_run", no_such_api)
    monkeypatch.setattr(dense, "_broken", [])
    q, k, v = _qkv(30, 30, 8, 2, "cpu", torch.float32)
    with pytest.warns(UserWarning, match="SDPAParams"):
        got = dense.causal_attention(q, k, v)
    assert torch.equal(got, reference.causal_attention(q, k, v))
    assert dense._broken  # later calls go straight to the reference
