"""KV/index caches, ragged batching, sampling and stop conditions."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from runtime import load_model  # noqa: E402
from runtime.cache import ContextOverflowError  # noqa: E402
from runtime.engine import Engine, stream  # noqa: E402
from runtime.model import M3ForCausalLM, Segment  # noqa: E402
from runtime.sampling import SamplingParams  # noqa: E402
from runtime.tokenizer import Tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def model(release_checkpoint: Path) -> M3ForCausalLM:
    return load_model(release_checkpoint, device="cpu", dtype=torch.float32)


def ids(n: int, seed: int = 0, vocab: int = 512) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def test_incremental_decode_equals_full_recompute(model: M3ForCausalLM) -> None:
    """Prefill, a chunk, then token by token (crossing several key blocks) == one pass over everything."""
    tokens = ids(70)
    full = model(tokens[None])[0]
    cache = model.new_cache()
    pieces = [
        model.forward_segments(tokens[:30], [Segment(cache, 30)]),
        model.forward_segments(tokens[30:41], [Segment(cache, 11)]),
    ]
    for t in range(41, 70):
        pieces.append(model.forward_segments(tokens[t : t + 1], [Segment(cache, 1)]))
    stepped = torch.cat(pieces)
    assert cache.length == 70
    assert (stepped - full).abs().max().item() < 1e-4


def test_ragged_batch_equals_separate_runs(model: M3ForCausalLM) -> None:
    """Sequences of different lengths and offsets in one forward give their own logits."""
    a, b = ids(45, 1), ids(23, 2)
    ref_a, ref_b = model(a[None])[0], model(b[None])[0]
    ca, cb = model.new_cache(), model.new_cache()
    model.forward_segments(a[:40], [Segment(ca, 40)])
    out = model.forward_segments(torch.cat([a[40:], b]), [Segment(ca, 5), Segment(cb, 23)])
    assert (out[:5] - ref_a[40:]).abs().max().item() < 1e-4
    assert (out[5:] - ref_b).abs().max().item() < 1e-4
    last = model.forward_segments(torch.tensor([7, 9]), [Segment(ca, 1), Segment(cb, 1)], last_only=True)
    assert last.shape == (2, model.config.vocab_size)


def test_greedy_generation_follows_argmax(model: M3ForCausalLM) -> None:
    engine = Engine(model, eos_token_ids=(), max_batch_tokens=16)  # small budget: the prompt prefills in chunks
    prompt = ids(20, 3).tolist()
    result = engine.generate(prompt, SamplingParams(temperature=0, max_tokens=8))
    assert result.finish_reason == "length" and len(result.token_ids) == 8
    seq = list(prompt)
    for _ in range(8):
        seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert result.token_ids == seq[20:]


def test_batched_requests_match_solo_runs(model: M3ForCausalLM) -> None:
    params = SamplingParams(temperature=0, max_tokens=6)
    prompts = [ids(n, n).tolist() for n in (5, 17, 30)]
    solo = [Engine(model, eos_token_ids=()).generate(p, params).token_ids for p in prompts]
    engine = Engine(model, eos_token_ids=())
    seqs = [engine.add(p, params) for p in prompts]
    while engine.has_work:
        engine.step()
    assert [s.output_ids for s in seqs] == solo


def test_seeded_sampling_is_reproducible(model: M3ForCausalLM) -> None:
    engine = Engine(model, eos_token_ids=())
    prompt = ids(12, 4).tolist()
    params = {"temperature": 1.3, "top_p": 0.9, "top_k": 50, "max_tokens": 10}
    a = engine.generate(prompt, SamplingParams(seed=11, **params)).token_ids
    b = engine.generate(prompt, SamplingParams(seed=11, **params)).token_ids
    c = engine.generate(prompt, SamplingParams(seed=12, **params)).token_ids
    assert a == b and a != c


def test_top_k_one_is_greedy(model: M3ForCausalLM) -> None:
    engine = Engine(model, eos_token_ids=())
    prompt = ids(9, 5).tolist()
    greedy = engine.generate(prompt, SamplingParams(temperature=0, max_tokens=5)).token_ids
    assert engine.generate(prompt, SamplingParams(top_k=1, seed=1, max_tokens=5)).token_ids == greedy


def test_stop_token(model: M3ForCausalLM) -> None:
    prompt = ids(9, 6).tolist()
    first = Engine(model, eos_token_ids=()).generate(prompt, SamplingParams(temperature=0, max_tokens=3)).token_ids
    result = Engine(model, eos_token_ids=(first[1],)).generate(prompt, SamplingParams(temperature=0, max_tokens=3))
    assert result.finish_reason == "stop" and result.token_ids == first[:1]
    by_param = Engine(model, eos_token_ids=()).generate(
        prompt, SamplingParams(temperature=0, max_tokens=3, stop_token_ids=[first[1]])
    )
    assert by_param.token_ids == first[:1]


def test_stop_string_is_cut_and_never_streamed(model: M3ForCausalLM, release_checkpoint: Path) -> None:
    tokenizer = Tokenizer(release_checkpoint)
    engine = Engine(model, tokenizer=tokenizer, eos_token_ids=())
    prompt = tokenizer.encode("def add(a, b):")
    free = engine.generate(prompt, SamplingParams(temperature=0, max_tokens=12))
    assert len(free.text) > 6
    stop = free.text[3:6]
    deltas = list(stream(engine, prompt, SamplingParams(temperature=0, max_tokens=12, stop=[stop])))
    streamed = "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop"
    assert streamed == free.text[: free.text.find(stop)]


def test_context_overflow_is_an_error(model: M3ForCausalLM) -> None:
    engine = Engine(model, eos_token_ids=(), max_model_len=32)
    with pytest.raises(ContextOverflowError, match="maximum context of 32"):
        engine.add(ids(40).tolist(), SamplingParams())
    with pytest.raises(ContextOverflowError, match="max_tokens 20"):
        engine.add(ids(20).tolist(), SamplingParams(max_tokens=20))
    # Without max_tokens, generation stops at the limit with finish_reason "length".
    result = engine.generate(ids(28).tolist(), SamplingParams(temperature=0))
    assert result.finish_reason == "length" and len(result.token_ids) == 4
    with pytest.raises(ContextOverflowError):
        model.forward_segments(ids(5), [Segment(model.new_cache(4), 5)])
