"""QLoRA: the base model loaded in 4-bit NF4 with double quantization (bitsandbytes), LoRA on top.

bitsandbytes 0.50 on CPUs with AVX512-BF16 switches ``Linear4bit`` to a packed inference kernel after
any no-grad forward; that kernel has no backward, so LoRA gradients silently go wrong. We turn the
packed path off on every 4-bit layer, after wrapping and after loading.

Under autocast a ``Linear`` returns the autocast dtype, but ``Linear4bit`` returns its input's (fp32 here):
code that mixes a projection's output with an autocast matmul then breaks (DeBERTa-v2 fills bf16 scores with
``finfo(query.dtype).min`` of fp32 and overflows). A forward hook gives 4-bit layers Linear's behaviour.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, field_validator

from .base import Footprint, Method, Needs, WrapContext
from .lora import LoraOptions, lora_config, prepare_trainer, wrap_refusal
from .lora import check_model as check_lora
from .lora import footprint as lora_footprint
from .peft_tuner import PEFT_FILES, load_peft, peft_model, save_peft

_STORAGE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class QLoraOptions(LoraOptions):
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    bits: Literal[4] = Field(4, description="only 4-bit is supported")
    quant_storage: Literal["uint8", "bf16", "fp16", "fp32"] = Field(
        "uint8", description="dtype the packed 4-bit weights are stored in (bnb_4bit_quant_storage); FSDP shards "
                             "only float storage: set bf16 for hardware.strategy = \"fsdp\"")

    @field_validator("init")
    @classmethod
    def _on_a_quantized_base(cls, value: str) -> str:
        if value not in ("default", "gaussian", "eva"):
            raise ValueError(f"{value} rewrites the base weights, which a 4-bit base cannot take; use default, "
                             "gaussian or eva (or method lora)")
        return value


def footprint(options: QLoraOptions, shape) -> Footprint:
    """LoRA's, on 4-bit layers: peft's ``Linear4bit`` keeps its own sum (methods/fused_lora_sum.py fuses plain
    ``lora.Linear`` only), so B's output and its scaled copy are freed per layer as before."""
    return replace(lora_footprint(options, shape), fused_sum=False)


def quantization(options: QLoraOptions) -> dict:
    """BitsAndBytesConfig kwargs; the loader adds the modules kept in full precision (the task head and the
    output embeddings, ``anatomy.full_precision_module_names``)."""
    return {"load_in_4bit": True, "bnb_4bit_quant_type": options.quant_type,
            "bnb_4bit_use_double_quant": options.double_quant,
            **({} if options.quant_storage == "uint8" else {"bnb_4bit_quant_storage": _STORAGE[options.quant_storage]})}


# option -> its BitsAndBytesConfig attribute, and the value it stands for there
_QUANTIZED_BY = {"quant_type": ("bnb_4bit_quant_type", lambda o: o.quant_type),
                 "double_quant": ("bnb_4bit_use_double_quant", lambda o: o.double_quant),
                 "quant_storage": ("bnb_4bit_quant_storage", lambda o: _STORAGE.get(o.quant_storage, o.quant_storage))}


def check_model(options: QLoraOptions, config, task: str) -> str | None:
    """LoRA's rules, and: a model already quantized (``adapterkit.wrap`` on a 4-bit model, or a checkpoint saved
    4-bit) keeps its own quantization, so an option the user set to something else would be silently ignored."""
    reason = check_lora(options, config, task)
    quantized = getattr(config, "quantization_config", None)
    if reason or quantized is None:
        return reason
    have = quantized if isinstance(quantized, dict) else quantized.to_dict()
    for field in sorted(options.model_fields_set & _QUANTIZED_BY.keys()):
        key, wanted = _QUANTIZED_BY[field]
        if key in have and str(have[key]).removeprefix("torch.") != str(wanted(options)):
            return (f"method.{field} = {getattr(options, field)!r}, but the model is already quantized with {key}="
                    f"{have[key]!r} (its config's quantization_config), which is what it runs with; drop "
                    f"method.{field} or quantize the model that way")
    return None


def _autocast_output(module, args, output):
    """Forward hook: a 4-bit layer's output in the autocast dtype, as ``nn.Linear``'s would be."""
    import torch

    device = output.device.type
    if output.is_floating_point() and torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        if output.dtype != dtype:
            return output.to(dtype)
    return output


def disable_packed_cpu_kernel(model) -> int:
    """Keep bitsandbytes' 4-bit CPU layers on the path that has a backward, and give their outputs the
    autocast dtype (module docstring). Returns layers touched."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
        if not getattr(layer, "_adapterkit_autocast_hook", False):
            layer.register_forward_hook(_autocast_output)
            layer._adapterkit_autocast_hook = True
    return len(layers)


def wrap(model, options: QLoraOptions, ctx: WrapContext):
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ctx.gradient_checkpointing)
    model = peft_model(model, lora_config(options, ctx))
    disable_packed_cpu_kernel(model)
    return model


def load(base_model, folder, trainable: bool = False):
    if trainable:
        from peft import prepare_model_for_kbit_training

        base_model = prepare_model_for_kbit_training(base_model, use_gradient_checkpointing=False)
    model = load_peft(base_model, folder, trainable=trainable)
    disable_packed_cpu_kernel(model)
    return model


def load_trainable(base_model, folder):
    return load(base_model, folder, trainable=True)


def merge(model, load_base, dequantized: bool = True):
    """LoRA folded into the base it was trained against: each NF4 weight dequantized (bitsandbytes), the
    adapter's delta added, in fp32, into a fresh unquantized model. ``dequantized=False`` merges into the
    original fp32 weights instead (what the adapter never saw; kept for the comparison test)."""
    import logging

    import bitsandbytes as bnb
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from peft.utils.integrations import dequantize_bnb_weight

    plain = load_base()
    if dequantized:
        logging.getLogger("adapterkit").info("qlora: merging into the NF4-dequantized base the adapter was trained "
                                             "against, not into the original fp32 weights")
        targets = dict(plain.named_modules())
        for name, module in model.get_base_model().named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                target = targets[name.removesuffix(".base_layer")]
                weight = dequantize_bnb_weight(module.weight, state=module.weight.quant_state)
                target.weight.data.copy_(weight.to(target.weight.device, target.weight.dtype))
    config = model.peft_config[model.active_adapter]
    wrapped = peft_model(plain, config)
    set_peft_model_state_dict(wrapped, get_peft_model_state_dict(model))
    return wrapped.merge_and_unload()


METHOD = Method(
    name="qlora",
    trains="LoRA on a 4-bit NF4 (double-quantized) frozen base (+ task head)",
    options=QLoraOptions,
    peft_type="LORA",
    default_learning_rate=5e-4,
    wrap=wrap,
    save=save_peft,
    load=load,
    saved_files=PEFT_FILES,
    load_trainable=load_trainable,
    can_disable=True,
    merge=merge,
    needs=Needs(packages=("bitsandbytes",), quantization=True),
    quantization=quantization,
    footprint=footprint,
    prepare_trainer=prepare_trainer,  # LoRA+ and EVA, as for lora
    wrap_refusal=wrap_refusal,
    check_model=check_model,
)
