"""Trainer callbacks that keep a run's progress safe.

- ``PublishCheckpoints``: each checkpoint the Trainer writes (into DIR/.checkpoint-tmp) is renamed into
  DIR/checkpoints once complete, so a kill at any moment leaves only whole checkpoints (see rundir.py); the best
  one (``train.keep_best``) is kept beside the last two, for the Trainer to load at the end.
- ``StopOnNonFinite``: a NaN/inf gradient stops the run before the optimizer applies it; a NaN/inf logged
  loss or gradient norm (every ``train.logging_steps``), or a NaN/inf weight at a save, stops it before the
  next checkpoint, so the last checkpoint stays a good one.
- ``SaveOnTimer``: a checkpoint whenever ``train.save_minutes`` of training passed since the last one, so a
  crash loses at most that much work even when the recipe sets no ``train.save_every``.
- ``SaveOnInterrupt``: Ctrl-C (SIGINT) or SIGTERM (what ``kill`` and schedulers send) ends training after the
  current step with a checkpoint of it (exit 130 or 143). During the final evaluation and save, a first
  signal is announced and waited out (the results take seconds); a second one stops there, and says what
  was kept.

With several ranks (torchrun) every rank runs these callbacks; rank 0 alone publishes checkpoints, after all
ranks wrote theirs. The timer and the signal handling are off there: a rank may not decide alone to save or stop
(the others would wait for it); the launcher's agent stops all ranks when one fails or is interrupted.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from . import distributed, rundir
from .errors import RunInterrupted, TrainingFailed


class PublishCheckpoints(TrainerCallback):
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()  # every rank has written its part (its RNG state) of the checkpoint
        best = state.best_model_checkpoint  # train.keep_best: kept, and named by its published path from now on
        if distributed.is_main():
            rundir.publish(self.run_dir, state.global_step, best)
        if best:
            state.best_model_checkpoint = str(rundir.published_path(self.run_dir, best))


class StopOnNonFinite(TrainerCallback):
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def _fail(self, step: int, what: str):
        last = rundir.checkpoints(self.run_dir)
        kept = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was saved before it"
        raise TrainingFailed(f"training diverged at step {step}: {what}; stopped, {kept} "
                             "(try a lower train.learning_rate)")

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if args.fp16:  # fp16's loss scaler skips overflowing steps by itself
            return
        import torch

        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            norm = float(torch.nn.utils.get_total_norm(grads))
            if not math.isfinite(norm):
                self._fail(state.global_step + 1, f"gradient norm is {norm}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        checked = {"loss": "training loss", "grad_norm": "gradient norm (before clipping)"}
        if args.fp16:  # the loss scaler skips overflowing fp16 steps, whose gradient norm is inf by design
            del checked["grad_norm"]
        for key, name in checked.items():
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                self._fail(state.global_step, f"{name} is {value}")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_save and not all(bool(p.isfinite().all()) for p in model.parameters() if p.requires_grad):
            self._fail(state.global_step, "a trained weight is NaN/inf")


class SaveOnTimer(TrainerCallback):
    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes
        self.last = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.last >= self.seconds and state.global_step < state.max_steps:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()


class SaveOnInterrupt(TrainerCallback):
    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.requested: int | None = None  # the signal that asked for a stop
        self.stopped_at: int | None = None

    @contextmanager
    def _handling(self, handler) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread() or distributed.world_size() > 1:
            yield  # several ranks: the launcher's agent stops them all; a rank must not stop at a step of its own
            return
        signums = [getattr(signal, name) for name in self.SIGNALS]
        previous = {signum: signal.getsignal(signum) for signum in signums}
        for signum in signums:
            signal.signal(signum, lambda signum, frame: handler(signum, previous))
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    @contextmanager
    def catching_signals(self) -> Iterator[None]:
        """While training, the first Ctrl-C/SIGTERM asks for a checkpoint and a stop; a second one interrupts at once."""
        def handler(signum, previous):
            self.requested = signum
            for sig, old in previous.items():
                signal.signal(sig, old)

        with self._handling(handler):
            yield
        if self.stopped_at is not None:
            raise RunInterrupted(f"interrupted at step {self.stopped_at}; checkpoint saved in "
                                 f"{rundir.checkpoints(self.run_dir)[-1]} ({signal.Signals(self.requested).name})",
                                 run_dir=self.run_dir, exit_code=128 + self.requested)

    @contextmanager
    def finishing(self) -> Iterator[None]:
        """After training: the first Ctrl-C/SIGTERM is announced and the evaluation and save go on; a second one
        stops with ``RunInterrupted`` naming what is kept (the newest checkpoint, or nothing)."""
        import logging

        def handler(signum, previous):
            if self.requested is None:
                self.requested = signum
                logging.getLogger("adapterkit").warning(
                    "training has finished; finishing the final evaluation and saving the results "
                    "(Ctrl-C again stops without them)")
                return
            kept = rundir.checkpoints(self.run_dir)
            after = (f"rerunning the same command resumes from {kept[-1]}" if kept else
                     "no checkpoint was kept, so nothing of this run is left; rerunning trains again")
            raise RunInterrupted(f"stopped during the final evaluation, before the results were written; {after}",
                                 run_dir=self.run_dir, exit_code=128 + signum)

        self.requested = None
        with self._handling(handler):
            yield

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested is not None:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


def attach(trainer, run_dir: Path, save_minutes: float | None = None) -> SaveOnInterrupt:
    """Add the callbacks to ``trainer``; returns the Ctrl-C/SIGTERM one, whose ``catching_signals()`` wraps ``train()`` and
    ``finishing()`` the final evaluation and save."""
    interrupt = SaveOnInterrupt(run_dir)
    callbacks = [interrupt, StopOnNonFinite(run_dir), PublishCheckpoints(run_dir)]
    if save_minutes and distributed.world_size() == 1:  # ranks' clocks differ: several ranks save every save_every
        callbacks.insert(0, SaveOnTimer(save_minutes))
    for callback in callbacks:
        trainer.add_callback(callback)
    return interrupt
