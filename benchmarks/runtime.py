"""Runtime throughput: prefill and decode tokens/s of our M3 runtime against transformers' implementation.

    python benchmarks/runtime.py --device cuda --dtype bfloat16            # a random mid-size M3 checkpoint
    python benchmarks/runtime.py --model /path/to/MiniMax-M3 --device cuda  # a real one

Prints one JSON object per system (ours, transformers) and a markdown table. Timings never gate tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's folder heads sys.path and its name would shadow the `runtime` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

import torch  # noqa: E402

from runtime import load_model  # noqa: E402
from runtime.config import load_config  # noqa: E402
from runtime.model import Segment  # noqa: E402
from runtime.tiny import tiny_text_config, write_tiny_checkpoint  # noqa: E402

# A random M3-shaped model that fits one GPU: every layer kind, real head/index sizes, fewer and narrower layers.
BENCH_CONFIG = tiny_text_config(
    vocab_size=32000,
    hidden_size=2048,
    intermediate_size=512,
    dense_intermediate_size=4096,
    shared_intermediate_size=512,
    num_hidden_layers=8,
    num_attention_heads=32,
    num_key_value_heads=2,
    head_dim=128,
    num_local_experts=16,
    num_experts_per_tok=4,
    layer_types=["full_attention"] * 2 + ["minimax_m3_sparse"] * 6,
    mlp_layer_types=["dense"] * 2 + ["sparse"] * 6,
    index_n_heads=2,
    index_head_dim=128,
    index_block_size=128,
    index_topk_blocks=16,
    max_position_embeddings=131072,
)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[Any], Any], device: str, repeats: int, setup: Callable[[], Any] = lambda: None) -> float:
    """Best wall time of fn(setup()) over `repeats` runs after one warm-up; setup is not timed."""
    fn(setup())  # warm-up (allocations, kernel selection)
    best = float("inf")
    for _ in range(repeats):
        state = setup()
        _sync(device)
        start = time.perf_counter()
        fn(state)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def bench_ours(directory: Path, args: argparse.Namespace, ids: torch.Tensor) -> dict[str, Any]:
    model = load_model(directory, device=args.device, dtype=getattr(torch, args.dtype))
    b, t = ids.shape

    def prefill(_: Any = None) -> list[Any]:
        caches = [model.new_cache() for _ in range(b)]
        model.forward_segments(ids.reshape(-1), [Segment(c, t) for c in caches], last_only=True)
        return caches

    prefill_s = _timed(prefill, args.device, args.repeats)

    def decode(caches: list[Any]) -> None:
        step = torch.zeros(b, dtype=torch.long)
        for _ in range(args.decode_tokens):
            model.forward_segments(step, [Segment(c, 1) for c in caches], last_only=True)

    decode_s = _timed(decode, args.device, args.repeats, setup=prefill)
    return {"system": "runtime", "prefill_tok_s": b * t / prefill_s, "decode_tok_s": b * args.decode_tokens / decode_s}


def bench_transformers(directory: Path, args: argparse.Namespace, ids: torch.Tensor) -> dict[str, Any]:
    from transformers import AutoConfig, DynamicCache

    config = AutoConfig.from_pretrained(directory)
    if config.model_type == "minimax_m3_vl":
        from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import (
            MiniMaxM3SparseForConditionalGeneration as Model,
        )
    else:
        from transformers import MiniMaxM3VLForCausalLM as Model
    model = Model.from_pretrained(directory, dtype=getattr(torch, args.dtype)).to(args.device).eval()
    ids = ids.to(args.device)
    b, t = ids.shape

    @torch.inference_mode()
    def prefill(_: Any = None) -> Any:
        cache = DynamicCache(config=model.config.get_text_config())
        model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache

    prefill_s = _timed(prefill, args.device, args.repeats)

    @torch.inference_mode()
    def decode(cache: Any) -> None:
        step = torch.zeros(b, 1, dtype=torch.long, device=args.device)
        for _ in range(args.decode_tokens):
            model(input_ids=step, past_key_values=cache, use_cache=True, logits_to_keep=1)

    decode_s = _timed(decode, args.device, args.repeats, setup=prefill)
    return {"system": "transformers", "prefill_tok_s": b * t / prefill_s,
            "decode_tok_s": b * args.decode_tokens / decode_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: a random mid-size M3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=4096)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.model or write_tiny_checkpoint(
            Path(tmp) / "bench", layout="release", text_config=BENCH_CONFIG, max_shard_size="2GB",
            with_tokenizer=False,
        )
        config = load_config(directory)
        vocab, room = config.vocab_size, config.max_position_embeddings
        if args.prompt_len + args.decode_tokens > room:
            parser.error(f"--prompt-len {args.prompt_len} + --decode-tokens {args.decode_tokens} exceed the model's "
                         f"maximum context of {room} tokens: shorten the prompt")
        ids = torch.randint(0, vocab, (args.batch, args.prompt_len), generator=torch.Generator().manual_seed(0))
        rows = [bench_ours(directory, args, ids)]
        if not args.skip_transformers:
            try:
                rows.append(bench_transformers(directory, args, ids))
            except torch.OutOfMemoryError as exc:  # a result too: the reference cannot run this length here
                rows.append({"system": "transformers", "error": str(exc).splitlines()[0]})
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    for row in rows:
        print(json.dumps({**row, "device": device, "dtype": args.dtype, "batch": args.batch,
                          "prompt_len": args.prompt_len, "decode_tokens": args.decode_tokens}))
    print(f"\n| system | prefill tok/s | decode tok/s |  ({device}, {args.dtype}, batch {args.batch}, "
          f"prompt {args.prompt_len})\n| --- | ---: | ---: |")
    for row in rows:
        if "error" in row:
            print(f"| {row['system']} | {row['error'][:60]} | |")
        else:
            print(f"| {row['system']} | {row['prefill_tok_s']:.0f} | {row['decode_tok_s']:.1f} |")


if __name__ == "__main__":
    main()
