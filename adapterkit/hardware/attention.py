"""The scaled-dot-product attention kernels a run uses on CUDA: every one but cuDNN's.

Measured on an NVIDIA H200 (torch 2.11, cu130; ``benchmarks/gpu/profile_steps.py``, chat LoRA on a 135M
SmolLM2, steps 3-5): in bf16, SDPA chose cuDNN attention for the padding-free passes, whose lengths change
from pass to pass, and cuDNN builds an execution plan per new shape: 2.5 ms of CPU per forward call and 3.7 ms
per backward call, 28% of the step's CPU time on a step the CPU bounds (0.79 s/step in bf16 against 0.40 s in
fp32, where SDPA picks the memory-efficient kernel and no plan is built). Flash and memory-efficient attention
need no per-shape plan; math stays as the fallback every input supports. Per-batch padded tasks (classification,
NER) change lengths too. The switch is scoped to the run (``torch.nn.attention.sdpa_kernel`` restores the
previous choice) and left alone on other devices.
"""

from __future__ import annotations

from contextlib import nullcontext


def attention_kernels(device: str):
    """A context in which SDPA on CUDA may use flash, memory-efficient or math attention (not cuDNN's)."""
    if device != "cuda":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
