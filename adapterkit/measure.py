"""Measurements for run.json: wall time, throughput, peak memory, parameter counts."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


def peak_rss_mib() -> float:
    """Process resident-set high-water mark (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


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


def steady_cpu_allocator(threshold: int = 2**20) -> bool:
    """With ``ADAPTERKIT_MALLOC=steady``, make a CPU run's RSS follow its live tensors (glibc only).

    glibc serves large blocks with mmap but raises that threshold (up to 32 MiB) each time one is freed;
    after that, activations (a few MiB each) come from the heap, whose freed holes are not returned to
    the OS. peft's LoRA layers make several short-lived tensors per linear, and measured peak RSS then
    ran 1.5-2x the live memory and varied by ~10% from run to run. Pinning the threshold at 1 MiB
    (``mallopt(M_MMAP_THRESHOLD)``) stops that, but every such block is then mapped and page-faulted
    afresh: measured on the sentiment recipe, training took 1.7x as long (half of it kernel time) for 25%
    less peak RSS, and a threshold of 8 MiB gave glibc's speed and glibc's RSS. So it is opt-in, with
    ``ADAPTERKIT_MALLOC=steady`` (for memory measurements); by default glibc keeps its own behaviour.
    """
    import ctypes
    import os

    if os.environ.get("ADAPTERKIT_MALLOC") != "steady":
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False
