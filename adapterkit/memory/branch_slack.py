"""The adapter branches' share of the CPU heap slack: freed temporaries of each adapted linear's forward that glibc
keeps resident (``estimate.py``'s module docstring: heap slack). Bytes per token and unit of the adapted linears'
out_features, by how the branch's sum is taken (peft's, the fused addmm, an fp32 sum under autocast) and, where a kind
of CPU measured apart, by that kind (``calibration.py``)."""

from __future__ import annotations

from typing import Any

from .calibration import ADAPTER_TEMP_BYTES, ADAPTER_TEMP_BYTES_BY_KIND, FP32_SUM_TEMP_BYTES, FUSED_SUM_TEMP_BYTES


def branch_temp_bytes(foot: Any, work: Any) -> float:
    """Freed bytes kept per token and out-feature of the adapted linears (0 on CUDA: its allocator is in overhead)."""
    if work.device != "cpu":
        return 0.0
    fused = foot.fused_sum and work.precision == "fp32"  # one addmm outside autocast (methods/fused_lora_sum.py)
    peft_sum = ADAPTER_TEMP_BYTES_BY_KIND.get(work.cpu_kind, ADAPTER_TEMP_BYTES)[work.precision]
    return (FUSED_SUM_TEMP_BYTES if fused else peft_sum) + (FP32_SUM_TEMP_BYTES if work.fp32_adapter_sums else 0.0)
