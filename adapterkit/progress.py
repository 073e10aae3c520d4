"""A run's progress bars, which the library's ``adapterkit.run(..., progress=False)`` turns off.

The bars are the Trainer's (training and evaluation steps, with the logged losses: its ``ProgressCallback``),
datasets' (tokenizing: "Map: 100%") and transformers' own (loading checkpoint shards). ``quiet`` turns off the
last two for the length of a run and puts back what was set before; ``without_bars`` takes the Trainer's off one
trainer. Logging (the plan, the metrics: the ``adapterkit`` logger) is the caller's to configure, as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(progress: bool) -> Iterator[None]:
    """Within: no datasets or transformers progress bars unless ``progress``."""
    if progress:
        yield
        return
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    was = ds_logging.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            ds_logging.enable_progress_bar()
        if was[1]:
            hf_logging.enable_progress_bar()


def without_bars(trainer) -> None:
    """The Trainer's training and evaluation bars (and the log lines it writes through them) off."""
    from transformers.trainer_callback import ProgressCallback

    trainer.remove_callback(ProgressCallback)
