"""Rank rules of a run started by torchrun (``adapterkit run --devices N``, ``torchrun -m adapterkit``, SLURM,
Kubernetes): which process this is, and the one thing rank 0 decides for all (the run directory and the
checkpoint to resume from). The process group is the one torchrun describes, joined through accelerate's
``PartialState`` (gloo on CPU, NCCL on GPU); adapterkit has no communication code of its own.

Rules: only rank 0 claims, locks and writes the run directory (checkpoints, adapter, metrics.json, run.json),
logs the plan, the progress bar and the metrics; the other ranks train, evaluate and log warnings only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_worker() -> bool:
    """Whether this process is one rank of a torchrun (or torchrun-like) launch."""
    return world_size() > 1 or "TORCHELASTIC_RUN_ID" in os.environ


def is_main() -> bool:
    return rank() == 0


def _share(value: Any, hardware) -> Any:
    """Rank 0's ``value`` on every rank (accelerate's broadcast over the torchrun process group)."""
    from datetime import timedelta

    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    # joins torchrun's process group (gloo on CPU: accelerate needs cpu=True to see it); the Trainer reuses it
    PartialState(cpu=hardware.device == "cpu", timeout=timedelta(minutes=hardware.timeout_minutes))
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


@contextmanager
def claimed(claim, run_dir: Path, hardware) -> Iterator[tuple[Path, Path | None]]:
    """(run directory, checkpoint to resume from) as rank 0 decided them, on every rank.

    ``claim(run_dir)`` is ``rundir.claim`` bound to the recipe: on one process it is simply entered; with
    several ranks rank 0 enters it (ownership, lock, resume point) and tells the others, or tells them its
    one-line refusal, which every rank then raises."""
    from .errors import UserError

    if world_size() == 1:
        with claim(run_dir) as resume:
            yield run_dir, resume
        return
    if not is_main():
        status, run_dir, resume = _share(None, hardware)
        if status == "error":
            raise UserError(run_dir)
        yield Path(run_dir), Path(resume) if resume else None
        return
    told = False
    try:
        with claim(run_dir) as resume:
            _share(("ok", str(run_dir), str(resume) if resume else None), hardware)
            told = True
            yield run_dir, resume
    except UserError as err:
        if not told:  # refused before the others were told: tell them, so that no rank waits
            _share(("error", str(err), None), hardware)
        raise


def quiet_other_ranks() -> None:
    """Ranks other than 0 log warnings and errors only (no plan, no progress bar, no metrics)."""
    if is_main():
        return
    import logging

    logging.getLogger("adapterkit").setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def finish() -> None:
    """Leave the process group cleanly at the end of a rank (torch warns about a group left open)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
