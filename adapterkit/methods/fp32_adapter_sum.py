"""Under bf16/fp16 autocast, LoRA's update is added to the frozen layer's output in fp32, not rounded away.

peft's LoRA layer computes ``result = base_layer(x)`` (bf16 under autocast), adds
``lora_B(lora_A(x)) * scaling`` and casts the sum back to ``result``'s dtype. A bf16 ``result`` is exactly
representable in bf16, so an update smaller than half its last bit (2^-9 of it, ~0.2%) rounds back to
``result`` itself: the forward pass does not see the adapter. LoRA's B starts at zero and grows by about the
learning rate per step, so for the first steps most of the update is invisible; the gradients (which pass the
sum unchanged) keep pointing where the unadapted model would go, and the run learns slower: chat LoRA on
SmolLM2 ended 10 steps 2.5% above fp32's eval loss with the update rounded away, 0.35% with it kept
(docs/defaults.md, "Precision"). The forward losses before any update, and the first step's gradients, agreed
with fp32's within 0.1% and ~4%: the loss of the update, not of the model, made the gap.

The fix: the frozen layer's output is returned in fp32 (a hook on ``base_layer``), so peft's sum and its cast
stay fp32. The next matmul autocasts its input back to bf16 after the update is in it (rounding a value that is
no longer on bf16's grid keeps the update on average), and the residual stream the output projections add to
becomes fp32. The matmuls stay bf16; the cost is an fp32 copy of each adapted layer's output. torch's CPU
``layer_norm`` refuses an fp32 input with bf16 weights (an encoder adds an adapted output to its residual and
normalises it), so ``nn.LayerNorm`` weights are kept in fp32 too (they take a bf16 input as well).

Applied by the chat task (its trainer, so training and the in-run eval alike), where it was measured;
classification and NER, whose bf16 eval loss already matched fp32's, are left as measured.
"""

from __future__ import annotations

LOW_PRECISION = ("bf16", "fp16")


def _output_in_fp32(module, inputs, output):
    import torch

    # Only under autocast: outside it (the run's sample answers, generated after training) the next frozen bf16
    # layer would get an fp32 input and no autocast to cast it back (a dtype error).
    if torch.is_tensor(output) and output.dtype in (torch.bfloat16, torch.float16) \
            and torch.is_autocast_enabled(output.device.type):
        return output.float()
    return output


def add_adapters_in_fp32(model, precision: str) -> int:
    """Hook every LoRA layer's frozen base layer (LoRA, DoRA, AdaLoRA, QLoRA) so its output is fp32 when the
    run autocasts to ``precision`` (bf16/fp16); nothing under fp32. Returns how many layers were hooked."""
    if precision not in LOW_PRECISION:
        return 0
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a dependency; a model without it has no LoRA layer either
        return 0
    import torch

    hooked = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not getattr(module, "_adapterkit_fp32_sum", False):
            module.get_base_layer().register_forward_hook(_output_in_fp32)
            module._adapterkit_fp32_sum = True
            hooked += 1
    if hooked:
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.float()
    return hooked
