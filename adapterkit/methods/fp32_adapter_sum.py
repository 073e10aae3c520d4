"""Under bf16/fp16 autocast, an adapter's update is added to the frozen layer's output in fp32, not rounded away.

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

The same rounding hits every method that adds an update to a frozen layer's output, and each gets the same fix:
- peft's LoHa, LoKr, VeRA and IA3 layers cast their sum back to their *input's* dtype, so their input is made fp32
  as well (a pre-hook; the frozen matmul autocasts it back to bf16, as before);
- bottleneck adapters (``methods/bottleneck.py``) add their output to the projection's in a forward hook, in that
  output's dtype: the fp32 hook is put before it.
Not covered: OFT/BOFT rotate the layer's input and round the rotated input (or the rotation) to bf16, so an early
rotation rounds away inside peft; the same hooks did not help them at run level (chat, 20 steps: OFT +0.48% of fp32's
eval loss without, +0.41% with; BOFT -0.12% / +0.12%) and cost 4-7% of the speed, so they are left out. IA3 on a
feed-forward layer scales that layer's input, which peft casts to the weight's dtype (rounding that keeps a small
scaling on average, as any bf16 matmul input does).

Applied by the chat task (its trainer, so training and the in-run eval alike), where it was measured;
classification and NER, whose bf16 eval loss already matched fp32's, are left as measured, and so are lm and
preference: side by side on a 2-core AMD EPYC the sums gave them no gain (lm_lora eval loss 4.1132 with, 4.1120
without, fp32 4.1103; chat_dpo 0.3558 / 0.3533 / 0.3542) for 7% of lm's speed and +266 / +734 MiB of peak RSS.
"""

from __future__ import annotations

LOW_PRECISION = ("bf16", "fp16")


def _fp32_under_autocast(value):
    """A bf16/fp16 tensor as fp32 while autocast is on; anything else as it is."""
    import torch

    # Only under autocast: outside it (the run's sample answers, generated after training) the next frozen bf16
    # layer would get an fp32 input and no autocast to cast it back (a dtype error).
    if torch.is_tensor(value) and value.dtype in (torch.bfloat16, torch.float16) \
            and torch.is_autocast_enabled(value.device.type):
        return value.float()
    return value


def _output_in_fp32(module, inputs, output):
    """Forward hook: the frozen projection's output in fp32 under autocast."""
    return _fp32_under_autocast(output)


def _input_in_fp32(module, args):
    """Forward pre-hook: a layer that casts its sum back to its input's dtype gets an fp32 input under autocast."""
    first = _fp32_under_autocast(args[0]) if args else None
    return (first, *args[1:]) if args and first is not args[0] else None


def _sum_layers(model):
    """(projection whose output gets the update, layer to give an fp32 input or None) for every adapted layer."""
    import torch
    from peft.tuners.ia3 import IA3Layer
    from peft.tuners.lora import LoraLayer
    from peft.tuners.lycoris_utils import LycorisLayer
    from peft.tuners.vera import VeraLayer

    from .bottleneck import CHILD

    for module in model.modules():
        if isinstance(module, LoraLayer):  # LoRA, DoRA, AdaLoRA, QLoRA: the sum takes the base output's dtype
            yield module.get_base_layer(), None
        elif isinstance(module, LycorisLayer | VeraLayer | IA3Layer):  # LoHa, LoKr, VeRA, IA3: the input's dtype
            yield module.get_base_layer(), module
        elif isinstance(getattr(module, CHILD, None), torch.nn.Module):  # a bottleneck adapter's hook
            yield module, None


def add_adapters_in_fp32(model, precision: str) -> int:
    """Hook every adapted layer (above) so its sum is taken and returned in fp32 when the run autocasts to
    ``precision`` (bf16/fp16); nothing under fp32. Returns how many layers were hooked."""
    if precision not in LOW_PRECISION:
        return 0
    import torch

    hooked = 0
    for base, layer in _sum_layers(model):
        if getattr(base, "_adapterkit_fp32_sum", False):
            continue
        base.register_forward_hook(_output_in_fp32, prepend=True)  # before a bottleneck's own hook adds to it
        if layer is not None:
            layer.register_forward_pre_hook(_input_in_fp32)
        base._adapterkit_fp32_sum = True
        hooked += 1
    if hooked:
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.float()
    return hooked
