"""Measurements for run.json: wall time, throughput, peak memory, parameter counts."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


def maxrss_mib(maxrss: int) -> float:
    """``ru_maxrss`` in MiB (Linux reports KiB, macOS bytes)."""
    return maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def peak_rss_mib() -> float:
    """Process resident-set high-water mark."""
    return maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cuda_peaks_mib() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "cuda_max_reserved_mib": torch.cuda.max_memory_reserved() / 2**20}


def parameter_counts(model) -> dict[str, float]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_share": trainable / total if total else 0.0}


@dataclass
class Stopwatch:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def directory_size_bytes(path) -> int:
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ADAPTERKIT_MALLOC: what a CPU run pins glibc's mmap threshold at (None: glibc's own, dynamic threshold).
ALLOCATOR_THRESHOLDS = {"glibc": None, "steady": 2**20}
DEFAULT_ALLOCATOR = "glibc"


def allocator_threshold(mode: str) -> int | None:
    """The mmap threshold in bytes an ``ADAPTERKIT_MALLOC`` value pins (None: glibc's own); a clear error otherwise."""
    if mode in ALLOCATOR_THRESHOLDS:
        return ALLOCATOR_THRESHOLDS[mode]
    try:
        threshold = int(float(mode) * 2**20)
    except (ValueError, OverflowError):
        threshold = 0
    if not 4096 <= threshold <= 32 * 2**20:  # a page at least; glibc caps the threshold at 32 MiB on 64-bit systems
        from .errors import UserError

        raise UserError(f"expected 'glibc', 'steady' or an mmap threshold in MiB (4 KiB to 32 MiB), got {mode!r}",
                        where="ADAPTERKIT_MALLOC")
    return threshold


def allocator_setting() -> int | None:
    """``ADAPTERKIT_MALLOC``'s threshold, checked (a run reads it before anything else, on every device)."""
    import os

    return allocator_threshold(os.environ.get("ADAPTERKIT_MALLOC", DEFAULT_ALLOCATOR))


def pin_mmap_threshold(threshold: int | None) -> bool:
    """Pin this process's glibc mmap threshold (``ADAPTERKIT_MALLOC``; None: leave glibc's own); True if pinned.

    glibc serves large blocks with mmap but raises that threshold (up to 32 MiB) each time one is freed;
    after that, activations (a few MiB each) come from the heap, whose freed holes are not returned to
    the OS. peft's LoRA layers make several short-lived tensors per linear, and measured peak RSS then
    ran 1.5-2x the live memory and varied from run to run (padded chat in bf16: one of two levels ~1 GiB
    apart). ``mallopt(M_MMAP_THRESHOLD)`` pins the threshold (and stops glibc adjusting it): ``steady``
    (1 MiB) makes RSS follow live tensors, but every such block is then mapped and page-faulted afresh:
    measured on the sentiment recipe, training took 1.7x as long (half of it kernel time) for 25% less
    peak RSS. ``glibc`` (the default) keeps glibc's behaviour; a number pins the threshold at that many MiB
    (``benchmarks/allocator`` compares them: a 4 MiB pin gained nothing at the shipped defaults).
    """
    import ctypes
    import logging

    if threshold is None:
        return False
    try:
        if ctypes.CDLL("libc.so.6").mallopt(-3, threshold):  # -3: M_MMAP_THRESHOLD
            logging.getLogger("adapterkit").info("allocator: glibc's mmap threshold pinned at %.3g MiB", threshold / 2**20)
            return True
    except (OSError, AttributeError):
        pass
    logging.getLogger("adapterkit").warning("ADAPTERKIT_MALLOC: glibc's mallopt is not available or refused the "
                                            "threshold; the allocator is left as it is")
    return False
