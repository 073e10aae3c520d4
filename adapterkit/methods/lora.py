"""LoRA (peft): low-rank updates on the chosen linear layers; the task head trains fully.

Defaults: rank 16, alpha 32 on every linear layer ("all-linear"), no LoRA dropout — peft applies
dropout per adapted module, which costs ~20% of a CPU step for little regularisation at these budgets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .peft_tuner import load_peft, load_peft_trainable, merge_peft, peft_model, save_peft


class LoraOptions(MethodOptions):
    r: int = Field(16, gt=0, le=4096)
    alpha: float | None = Field(None, gt=0, description="lora_alpha; default 2*r")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    use_dora: bool = False
    use_rslora: bool = False
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: list[str] | None = None


def lora_config(options: LoraOptions, ctx: WrapContext, exclude: list[str] | None = None):
    """peft's LoraConfig; ``exclude`` keeps modules (the task head, trained whole) out of "all-linear"."""
    from peft import LoraConfig

    return LoraConfig(
        task_type=ctx.peft_task_type,
        r=options.r,
        lora_alpha=options.alpha if options.alpha is not None else 2 * options.r,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        use_dora=options.use_dora,
        use_rslora=options.use_rslora,
        bias=options.bias,
        modules_to_save=options.modules_to_save,
        exclude_modules=exclude or None,
    )


def targeted_linears(options: LoraOptions, shape) -> list[tuple[str, int, int]]:
    """The shape's backbone linears that ``target_modules`` selects, matched as peft matches names."""
    import re

    targets = options.target_modules
    if targets == "all-linear":
        return list(shape.linears)
    if isinstance(targets, str):
        return [lin for lin in shape.linears if re.fullmatch(targets, lin[0])]
    return [lin for lin in shape.linears if any(lin[0] == t or lin[0].endswith("." + t) for t in targets)]


def footprint(options: LoraOptions, shape) -> Footprint:
    """r x (in + out) per adapted linear (A is r x in, B is out x r), + out for DoRA's magnitude, + task head."""
    targeted = targeted_linears(options, shape)
    adapters = sum(options.r * (i + o) + (o if options.use_dora else 0) for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted))


def wrap(model, options: LoraOptions, ctx: WrapContext):
    from ..anatomy import head_module_names

    return peft_model(model, lora_config(options, ctx, exclude=head_module_names(model)))


METHOD = Method(
    name="lora",
    trains="low-rank A·B updates on linear layers (+ task head)",
    options=LoraOptions,
    default_learning_rate=5e-4,
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    load_trainable=load_peft_trainable,
    can_disable=True,
    merge=merge_peft,
    footprint=footprint,
)
