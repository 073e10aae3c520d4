"""Under autocast, peft's adapter layers skip the cast of their input to the adapter's dtype.

A peft LoRA layer (and IA3, LoHa, ...) casts its input to its adapter weights' dtype before the adapter's
own matmuls (``BaseTunerLayer._cast_input_dtype``). With a bf16-stored frozen base and fp32 adapters that is
a copy of every adapted layer's input to fp32, which autocast then casts back to bf16 for the matmul, which
runs in bf16 either way (plus both copies' backward): measured on CPU, ``aten::copy_`` was 27% of a
bf16 sentiment LoRA step. bf16 -> fp32 -> bf16 is exact, so skipping both changes no number.

peft's switch is the ``cast_input_dtype_enabled`` attribute each layer reads per call (its
``peft.helpers.disable_input_dtype_casting`` context manager flips it). A context around the forward
would miss gradient checkpointing's recomputation, which runs in backward; so the attribute is set once to
a flag that reads the autocast state when peft asks. Outside autocast (a reopened run's generation, a user
calling the model directly) it stays truthy: peft casts as usual and fp32 adapters meet fp32 inputs.
"""

from __future__ import annotations

import torch


class CastUnlessAutocast:
    """Truthy (peft casts the input) unless autocast is on for CPU or CUDA, where the matmul's own cast wins."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda"))

    def __repr__(self) -> str:
        return "CastUnlessAutocast()"


CAST_UNLESS_AUTOCAST = CastUnlessAutocast()


def skip_input_casts_under_autocast(model) -> int:
    """Give every peft adapter layer of ``model`` the flag above; returns how many layers got it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = CAST_UNLESS_AUTOCAST
            layers += 1
    return layers
