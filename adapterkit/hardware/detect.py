"""Detect this machine (``hardware.profile = "auto"``): device, memory, the dtypes it computes fast."""

from __future__ import annotations

import os
from pathlib import Path

from .precision import auto_precision, cpu_kind
from .profiles import Hardware


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of /proc/cpuinfo (the one parser of it), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    return set((_cpuinfo("flags") or "").split())


def cpu_model() -> str:
    import platform

    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 multiply bf16 matrices several times faster than fp32; plain AVX2 does not.
    (Whether training gets faster is another matter: ``precision.py`` holds the measured rule.)"""
    return cpu_kind(cpu_flags()) != "cpu"


def torch_ships_cuda() -> bool:
    """Whether the installed torch is a CUDA build (PyPI's default on Linux), found without importing torch: its
    CUDA libraries are loaded at import even on a CPU run, and stay resident (``memory/calibration.py``)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    folders = (spec.submodule_search_locations or []) if spec else []
    return any((Path(folder) / "lib" / "libtorch_cuda.so").is_file() for folder in folders)


def detect(task: str | None = None) -> Hardware:
    """This machine; its precision is ``precision.RULES``' choice for its kind of device (and ``task``)."""
    import psutil
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        bf16 = torch.cuda.is_bf16_supported()
        kind = "cuda-bf16" if bf16 else "cuda"
        return Hardware(name=f"auto ({props.name}, {kind})", device="cuda", memory_gb=props.total_memory / 2**30,
                        precision=auto_precision(kind, task), bnb_4bit=True, devices=1,  # --devices N for more

                        dtypes=("bf16", "fp16", "fp32") if bf16 else ("fp16", "fp32"))
    kind = cpu_kind(cpu_flags())
    return Hardware(name=f"auto ({kind}, {os.cpu_count()} cores)", device="cpu",
                    memory_gb=psutil.virtual_memory().total / 2**30,
                    precision=auto_precision(kind, task), bnb_4bit=True, dtypes=("fp32", "bf16"))
