"""A chat answer from a served run, shared by the HTTP server and ``adapterkit chat``: the prompt from the
run's chat template, a generation job for its model's worker, stop strings, and the safety filter."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass

from .batching import GenJob, QueueExpired
from .safety import SafetyFilter, StreamGate


@dataclass(frozen=True)
class Params:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    max_seconds: float = 120.0


def prompt_ids(served, messages: list[dict]) -> list[int]:
    enc = served.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return list(enc["input_ids"])


def eos_ids(served) -> set[int]:
    """The run's end-of-turn tokens: the generation config's eos ids and the tokenizer's eos token."""
    config = getattr(served.backend.model, "generation_config", None)
    found = getattr(config, "eos_token_id", None)
    ids = set(found if isinstance(found, list) else [found] if found is not None else [])
    if served.tokenizer.eos_token_id is not None:
        ids.add(served.tokenizer.eos_token_id)
    return ids


def input_blocked(safety: SafetyFilter | None, messages: list[dict]) -> bool:
    if safety is None or not safety.active:
        return False
    return any(safety.blocked(m["content"], "input") for m in messages if m["role"] in ("user", "system"))


def job(served, prompt: list[int], params: Params, streaming: bool = False) -> GenJob:
    streamer = None
    if streaming:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(served.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=params.max_seconds + 30)
    return GenJob(prompt, params.max_tokens, params.temperature, params.top_p, params.seed, served.adapter,
                  eos_ids(served), served.tokenizer.pad_token_id, params.max_seconds, streamer)


def first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(found) if found else None


def stop_end(text: str, stop: tuple[str, ...]) -> int:
    """Where the first stop string in ``text`` ends (``text`` holds one)."""
    cut = first_stop(text, stop)
    return cut + max(len(s) for s in stop if s and text.startswith(s, cut))


def tokens_through(tokenizer, tokens: list[int], chars: int) -> int:
    """How many of ``tokens`` decode to at least ``chars`` characters: a completion cut at a stop string counts the
    tokens up to the one that completes it, whether generation ran on (non-streamed) or was stopped late (streamed)."""
    low, high = 1, len(tokens)
    while low < high:
        middle = (low + high) // 2
        if len(tokenizer.decode(tokens[:middle], skip_special_tokens=True)) >= chars:
            high = middle
        else:
            low = middle + 1
    return min(low, len(tokens))


def finish(served, tokens: list[int], reason: str, count: int, params: Params,
           safety: SafetyFilter | None) -> tuple[str, str, int]:
    """The answer text, finish reason and completion token count of a generated job: cut at a stop string, filtered."""
    text = served.tokenizer.decode(tokens, skip_special_tokens=True)
    cut = first_stop(text, params.stop)
    if cut is not None:
        count = tokens_through(served.tokenizer, tokens, stop_end(text, params.stop))
        text, reason = text[:cut], "stop"
    if safety is not None and safety.active and safety.blocked(text, "output"):
        return safety.refusal, "content_filter", count
    return text, reason, count


def stream(served, work: GenJob, params: Params, safety: SafetyFilter | None) -> Iterator[tuple[str, object]]:
    """Events of a streamed job: ("delta", text) as text is released, then ("end", (reason, tokens)); or only
    ("expired", message) when its time ran out before its model took it up (server busy: no answer).

    Runs beside the worker thread that generates (it blocks on the streamer). Text is held back by the
    longest stop string and the filter's window; a blocked answer ends with the refusal as its last delta."""
    gate = StreamGate(safety, hold=max((len(s) for s in params.stop), default=1) - 1)
    text, reason, through = "", None, None
    try:
        for piece in work.streamer:
            text += piece
            cut = first_stop(text, params.stop)
            if cut is not None:
                text, reason, through = text[:cut], "stop", stop_end(text, params.stop)
                work.cancel.set()
                break
            out = gate.update(text)
            if gate.blocked:
                work.cancel.set()
                break
            if out:
                yield "delta", out
    except queue.Empty:  # the streamer's timeout: generation stalled
        work.cancel.set()
        reason = "length"
    try:
        tokens, generated, count = work.future.result(timeout=params.max_seconds + 30)
        if through is not None:  # generation ran a token or two past the stop string before it saw the cancel
            count = tokens_through(served.tokenizer, tokens, through)
    except QueueExpired as err:
        yield "expired", str(err)
        return
    except Exception:  # noqa: BLE001 - cancelled or failed after some text: end the stream as cut short
        generated, count = "length", 0
    out = gate.update(text, final=True)
    if gate.blocked:
        yield "delta", safety.refusal
        yield "end", ("content_filter", count)
        return
    if out:
        yield "delta", out
    yield "end", (reason or generated, count)
