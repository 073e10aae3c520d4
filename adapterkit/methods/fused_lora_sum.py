"""A LoRA layer's update added to the frozen output in one ``addmm``, not in three tensors.

peft's LoRA ``Linear`` computes ``result + lora_B(lora_A(dropout(x))) * scaling``: B's output, its scaled copy and
their sum are three output-sized tensors per adapted layer and pass, where ``torch.addmm(result, h, B.T,
alpha=scaling)`` makes one. The two freed ones are what glibc keeps resident between passes (the planner's
``ADAPTER_TEMP_BYTES``: ~6 of their 8 bytes per out-feature and token in fp32 on the 2-core AMD EPYC, ~1 on the
AMX Xeon), so fusing them takes that memory away where it was largest and most machine-dependent: sentiment LoRA in
fp32 peaked 15-18% lower at the same tokens/s or more, and the same eval loss to the last digit (docs/defaults.md,
"Precision"). The arithmetic is the same (a power-of-two ``scaling`` is exact either way; addmm's sum rounds once).

Only where the layer is peft's plain ``lora.Linear`` with no bias on B and no variant (DoRA, aLoRA, ...), not merged
nor disabled, without per-row ``adapter_names``, and outside autocast: under bf16/fp16 autocast the matmuls and the
sum keep peft's path (and the chat task's fp32 sums, ``fp32_adapter_sum.py``), where the freed tensors are half the
size and ``addmm`` would be cast to the low precision whole. Everything else falls back to peft's own forward.
"""

from __future__ import annotations

import torch
from peft.tuners.lora.layer import Linear as LoraLinear


class FusedLoraLinear(LoraLinear):
    """peft's LoRA ``Linear`` with the plain sum fused (``fuse_lora_sums`` swaps an instance's class to it)."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not self._fusable(x, kwargs):
            return super().forward(x, *args, **kwargs)
        self._check_forward_args(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        for name in self.active_adapters:
            if name not in self.lora_A:
                continue
            a, b = self.lora_A[name], self.lora_B[name]
            h = a(self.lora_dropout[name](self._cast_input_dtype(x, a.weight.dtype)))
            flat = torch.addmm(result.reshape(-1, result.shape[-1]), h.reshape(-1, h.shape[-1]), b.weight.t(),
                               alpha=self.scaling[name])
            result = flat.view(result.shape)
        return result

    def _fusable(self, x: torch.Tensor, kwargs: dict) -> bool:
        if self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None or self.lora_variant:
            return False
        if torch.is_autocast_enabled(x.device.type):
            return False
        # the base's output has its weight's dtype outside autocast: addmm needs the adapter's to match (a bf16 base
        # with fp32 adapters, run without autocast, takes peft's promoting sum)
        base = getattr(self.get_base_layer(), "weight", None)
        adapters = [name for name in self.active_adapters if name in self.lora_A]
        return base is not None and all(self.lora_B[name].bias is None and self.lora_A[name].weight.dtype == base.dtype
                                        and self.lora_B[name].weight.dtype == base.dtype for name in adapters)


def fuse_lora_sums(model) -> int:
    """Swap every plain peft LoRA ``Linear`` of ``model`` to ``FusedLoraLinear`` (same state, same saved adapter);
    returns how many. Subclasses (peft's 4-bit/8-bit layers, AdaLoRA's) are left as they are."""
    layers = 0
    for module in model.modules():
        if type(module) is LoraLinear:
            module.__class__ = FusedLoraLinear
            layers += 1
    return layers
