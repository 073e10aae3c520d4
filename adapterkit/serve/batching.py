"""One worker thread per loaded model: every model call runs there, off the event loop, one at a time.

Batching. Non-streaming chat requests of one model that arrive within ``batch_window_ms`` of each other
(same adapter, temperature and top_p, no seed) are generated together in one left-padded ``generate``
call, each answer cut at its own ``max_tokens``, end-of-turn token or stop string. transformers 5's
continuous batching (``generate_batch`` / ``init_continuous_batching``) does run on CPU with SmolLM2, but
its manager drives one model with one generation config from its own thread: adapters of a shared base
cannot be switched per request under it, and per-request temperature/top_p would need its logits
processor kwargs. A collection window over ``generate`` keeps those per request, costs at most a few ms
of latency, and on CPU turns 16 concurrent answers into one matrix multiply per step instead of 16.
Streaming requests are generated one at a time with a ``TextIteratorStreamer``; a seeded request alone.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count()
GREEDY_BELOW = 0.01  # temperatures below this sample greedily (a tiny temperature overflows the softmax)


class QueueExpired(Exception):
    """A job's time ran out while it waited for its model (the request's time counts from submission): no answer."""


@dataclass
class GenJob:
    prompt: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    adapter: str | None
    eos: set[int]
    pad: int
    max_seconds: float  # from submission: time queued counts, generation gets what is left
    streamer: Any = None  # a TextIteratorStreamer for streaming jobs
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)
    serial: int = field(default_factory=lambda: next(_ids))
    submitted: float = field(default_factory=time.monotonic)

    def seconds_left(self) -> float:
        return self.max_seconds - (time.monotonic() - self.submitted)

    @property
    def key(self) -> tuple:
        alone = self.streamer is not None or self.seed is not None
        return (self.adapter, self.temperature, self.top_p, self.serial if alone else None)


class Backend:
    """A model and the thread that runs it."""

    def __init__(self, model, limits):
        self.model, self.limits = model, limits
        self.device = next(model.parameters()).device
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="adapterkit-model", daemon=True)
        self.thread.start()

    def use(self, adapter: str | None) -> None:
        """Activate a run's adapter (worker thread only)."""
        if adapter is not None and getattr(self.model, "active_adapter", None) != adapter:
            self.model.set_adapter(adapter)

    def call(self, fn: Callable, *args) -> Future:
        """Run ``fn(*args)`` on the worker thread."""
        future: Future = Future()
        self.jobs.put((fn, args, future))
        return future

    def submit(self, job: GenJob) -> Future:
        self.jobs.put(job)
        return job.future

    def close(self, timeout: float = 60.0) -> None:
        """Stop after the job in hand and wait for it: a generation still running in a daemon thread when the
        interpreter exits aborts the process ("terminate called without an active exception")."""
        self.jobs.put(None)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _loop(self) -> None:
        held: list = []  # jobs taken while collecting a batch that did not fit it
        while True:
            job = held.pop(0) if held else self.jobs.get()
            if job is None:
                return
            if not isinstance(job, GenJob):
                fn, args, future = job
                if future.set_running_or_notify_cancel():
                    _settle(future, fn, *args)
                continue
            batch = [job] + [j for j in held if isinstance(j, GenJob) and j.key == job.key][:self.limits.max_batch - 1]
            held = [j for j in held if j not in batch]
            if job.key[-1] is None:
                deadline = time.monotonic() + self.limits.batch_window_ms / 1000
                while len(batch) < self.limits.max_batch:
                    try:
                        more = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if isinstance(more, GenJob) and more.key == job.key:
                        batch.append(more)
                    else:
                        held.append(more)
                        if more is None:
                            break
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            for late in [j for j in batch if j.seconds_left() <= 0]:  # out of time in the queue: nothing said
                late.future.set_exception(QueueExpired(f"waited {time.monotonic() - late.submitted:.1f} s for the "
                                                       f"model, past the request's {late.max_seconds:g} s"))
                if late.streamer is not None:
                    late.streamer.end()
            batch = [j for j in batch if not j.future.done()]
            if batch:
                _settle_batch(batch, self)


def _settle(future: Future, fn: Callable, *args) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as err:  # handed to the awaiting request, which answers with an error body
        future.set_exception(err)


def _settle_batch(batch: list[GenJob], backend: Backend) -> None:
    try:
        results = generate(backend, batch)
    except BaseException as err:
        for job in batch:
            job.future.set_exception(err)
            if job.streamer is not None:
                job.streamer.end()
        return
    for job, result in zip(batch, results):
        job.future.set_result(result)


def generate(backend: Backend, batch: list[GenJob]) -> list[tuple[list[int], str, int]]:
    """One ``generate`` call for the batch: each job's new token ids (without the end-of-turn token), its
    finish reason ("stop" at an end-of-turn token, else "length") and how many tokens it generated."""
    import torch
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    first = batch[0]
    backend.use(first.adapter)
    width = max(len(j.prompt) for j in batch)
    ids = torch.full((len(batch), width), first.pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, job in enumerate(batch):  # left padding: every prompt ends where generation starts
        ids[row, width - len(job.prompt):] = torch.tensor(job.prompt)
        mask[row, width - len(job.prompt):] = 1
    greedy = first.temperature < GREEDY_BELOW
    config = GenerationConfig(max_new_tokens=max(j.max_tokens for j in batch), do_sample=not greedy,
                              temperature=None if greedy else first.temperature, top_p=None if greedy else first.top_p,
                              top_k=None, eos_token_id=sorted(first.eos), pad_token_id=first.pad,
                              max_time=min(j.seconds_left() for j in batch))

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), all(j.cancel.is_set() for j in batch), dtype=torch.bool)

    if first.seed is not None:
        torch.manual_seed(first.seed)
    with torch.no_grad():
        out = backend.model.generate(input_ids=ids.to(backend.device), attention_mask=mask.to(backend.device),
                                     generation_config=config, streamer=first.streamer,
                                     stopping_criteria=StoppingCriteriaList([Cancelled()]))
    results = []
    for row, job in enumerate(batch):
        new = out[row, width:].tolist()[:job.max_tokens]
        ended = next((i for i, t in enumerate(new) if t in job.eos), None)
        if ended is not None:
            results.append((new[:ended], "stop", ended + 1))
        else:
            results.append((new, "length", len(new)))
    return results
