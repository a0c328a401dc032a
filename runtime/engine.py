"""Generation: continuous batching over the model's ragged forward, sampling and stop conditions.

Every `step()` is one forward pass over a mix of decode tokens (one per running sequence) and prompt chunks
(chunked prefill under a token budget). A sequence samples only when its input is fully in the cache.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from runtime.cache import ContextOverflowError, SequenceCache
from runtime.model import M3ForCausalLM, Segment
from runtime.sampling import SamplingParams, make_generator, sample
from runtime.tokenizer import IncrementalDecoder, Tokenizer


@dataclass
class StepOutput:
    token_id: int | None  # None when the step only finished the sequence (e.g. aborted)
    text: str  # new text, held back while it could be the start of a stop string
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "abort"


@dataclass
class GenerationResult:
    token_ids: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int


@dataclass
class Sequence:
    id: int
    prompt_ids: list[int]
    params: SamplingParams
    cache: SequenceCache
    generator: torch.Generator | None
    decoder: IncrementalDecoder | None
    on_output: Callable[[Sequence, StepOutput], None] | None = None
    output_ids: list[int] = field(default_factory=list)
    text: str = ""  # all decoded output text
    emitted: int = 0  # characters of `text` already handed out
    finished: bool = False
    finish_reason: str | None = None

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    @property
    def pending(self) -> int:
        """Tokens not yet in the cache."""
        return len(self.prompt_ids) + len(self.output_ids) - self.cache.length


class Engine:
    def __init__(
        self,
        model: M3ForCausalLM,
        *,
        tokenizer: Tokenizer | None = None,
        eos_token_ids: tuple[int, ...] | None = None,
        max_model_len: int | None = None,
        max_batch_tokens: int = 2048,
        max_running: int = 16,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = tuple(eos_token_ids if eos_token_ids is not None else model.config.eos_token_ids)
        self.max_model_len = max_model_len or model.config.max_position_embeddings
        self.max_batch_tokens = max_batch_tokens
        self.max_running = max_running
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._ids = itertools.count()

    def make_sequence(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        on_output: Callable[[Sequence, StepOutput], None] | None = None,
    ) -> Sequence:
        """Validate a request and build its sequence without queueing it (safe from any thread).

        Raises ContextOverflowError when the prompt (plus max_tokens) cannot fit, ValueError for bad parameters.
        """
        params.validate()
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        n = len(prompt_ids)
        if n >= self.max_model_len:
            raise ContextOverflowError(
                f"prompt of {n} tokens does not fit the maximum context of {self.max_model_len} tokens"
            )
        if params.max_tokens is not None and n + params.max_tokens > self.max_model_len:
            raise ContextOverflowError(
                f"prompt of {n} tokens plus max_tokens {params.max_tokens} exceeds the maximum context of "
                f"{self.max_model_len} tokens"
            )
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        return Sequence(
            id=next(self._ids),
            prompt_ids=list(prompt_ids),
            params=params,
            cache=self.model.new_cache(self.max_model_len),
            generator=make_generator(params, self.model.device),
            decoder=IncrementalDecoder(self.tokenizer) if self.tokenizer else None,
            on_output=on_output,
        )

    def add(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        on_output: Callable[[Sequence, StepOutput], None] | None = None,
    ) -> Sequence:
        """Validate and queue a request."""
        seq = self.make_sequence(prompt_ids, params, on_output)
        self.waiting.append(seq)
        return seq

    def abort(self, seq: Sequence, reason: str = "abort") -> None:
        if seq.finished:
            return
        if seq in self.waiting:
            self.waiting.remove(seq)
        if seq in self.running:
            self.running.remove(seq)
        self._finish(seq, reason, None, "")

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _schedule(self) -> list[tuple[Sequence, int]]:
        while self.waiting and len(self.running) < self.max_running:
            self.running.append(self.waiting.popleft())
        budget = self.max_batch_tokens
        chosen: list[tuple[Sequence, int]] = []
        # Decode tokens first (one each, latency matters), then prompt chunks in arrival order.
        for seq in sorted(self.running, key=lambda s: s.pending > 1):
            if budget <= 0:
                break
            take = min(seq.pending, budget) if seq.pending > 1 else 1
            chosen.append((seq, take))
            budget -= take
        return chosen

    def step(self) -> list[tuple[Sequence, StepOutput]]:
        """One forward pass; returns the outputs it produced (also sent to each sequence's on_output)."""
        chosen = self._schedule()
        if not chosen:
            return []
        ids: list[int] = []
        segments = []
        for seq, take in chosen:
            start = seq.cache.length
            ids.extend(seq.all_ids[start : start + take])
            segments.append(Segment(seq.cache, take))
        logits = self.model.forward_segments(torch.tensor(ids, dtype=torch.long), segments, last_only=True)
        outputs = []
        for row, (seq, _) in enumerate(chosen):
            if seq.pending:  # a prompt chunk that has more to go
                continue
            token = sample(logits[row], seq.params, seq.generator)
            outputs.append((seq, self._append(seq, token)))
        return outputs

    def _append(self, seq: Sequence, token: int) -> StepOutput:
        p = seq.params
        if (token in self.eos_token_ids and not p.ignore_eos) or token in p.stop_token_ids:
            return self._finish(seq, "stop", token, self._flush(seq))
        seq.output_ids.append(token)
        if seq.decoder is not None:
            seq.text += seq.decoder.push(token)
        if p.stop:
            found = _find_stop(seq.text, p.stop, max(0, seq.emitted - max(map(len, p.stop))))
            if found is not None:
                seq.text = seq.text[:found]
                return self._finish(seq, "stop", token, self._flush(seq))
        total = len(seq.prompt_ids) + len(seq.output_ids)
        if (p.max_tokens is not None and len(seq.output_ids) >= p.max_tokens) or total >= self.max_model_len:
            return self._finish(seq, "length", token, self._flush(seq))
        hold = _stop_prefix_len(seq.text, p.stop) if p.stop else 0
        out = StepOutput(token, self._flush(seq, len(seq.text) - hold))
        if seq.on_output:
            seq.on_output(seq, out)
        return out

    def _flush(self, seq: Sequence, upto: int | None = None) -> str:
        end = len(seq.text) if upto is None else max(upto, seq.emitted)
        delta = seq.text[seq.emitted : end]
        seq.emitted = end
        return delta

    def _finish(self, seq: Sequence, reason: str, token: int | None, text: str) -> StepOutput:
        seq.finished, seq.finish_reason = True, reason
        if seq in self.running:
            self.running.remove(seq)
        out = StepOutput(token, text, finished=True, finish_reason=reason)
        if seq.on_output:
            seq.on_output(seq, out)
        return out

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> GenerationResult:
        """Run one request to completion (other queued requests make progress alongside)."""
        seq = self.add(prompt_ids, params)
        while not seq.finished:
            self.step()
        return GenerationResult(seq.output_ids, seq.text, seq.finish_reason or "stop", len(prompt_ids))


def _find_stop(text: str, stops: list[str], start: int) -> int | None:
    hits = [i for s in stops if s and (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that begins some stop string (held back from streaming)."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


class EngineWorker:
    """Runs an Engine on its own thread; other threads submit and abort through a small inbox.

    The lock guards only the inbox, so a submitting thread (the server's event loop) never waits for a forward pass.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Condition()
        self._inbox: list[tuple[str, Sequence]] = []
        self._stopped = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="m3-engine", daemon=True)
        self._thread.start()

    def submit(
        self, prompt_ids: list[int], params: SamplingParams, on_output: Callable[[Sequence, StepOutput], None]
    ) -> Sequence:
        """Validates on the caller's thread (errors reach the caller), then hands the sequence to the loop.

        `on_output` is called on the engine thread."""
        seq = self.engine.make_sequence(prompt_ids, params, on_output)
        self._post("add", seq)
        return seq

    def abort(self, seq: Sequence) -> None:
        self._post("abort", seq)

    def _post(self, kind: str, seq: Sequence) -> None:
        with self._lock:
            self._inbox.append((kind, seq))
            self._lock.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        engine = self.engine
        while True:
            with self._lock:
                while not self._stopped and not self._inbox and not engine.has_work:
                    self._lock.wait()
                if self._stopped:
                    return
                inbox, self._inbox = self._inbox, []
            for kind, seq in inbox:
                if kind == "add":
                    engine.waiting.append(seq)
                else:
                    engine.abort(seq)
            try:
                engine.step()
            except Exception as e:  # a failed step fails the sequences in it, not the server
                self.error = e
                for seq in list(engine.running):
                    engine.abort(seq, "error")


def stream(engine: Engine, prompt_ids: list[int], params: SamplingParams) -> Iterator[StepOutput]:
    """Single-threaded streaming helper (tests, scripts)."""
    outputs: list[StepOutput] = []
    seq = engine.add(prompt_ids, params, lambda _s, o: outputs.append(o))
    while not seq.finished:
        engine.step()
        yield from outputs
        outputs.clear()
    yield from outputs
