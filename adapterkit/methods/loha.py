"""LoHa (peft, LyCORIS): the weight update is the Hadamard product of two low-rank products, (A1·B1) ⊙ (A2·B2),
on the chosen linear layers; the task head trains fully. Rank r reaches an update of rank up to r²."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .conv1d import refuse_conv1d
from .lora import targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class LohaOptions(MethodOptions):
    r: int = Field(8, gt=0, le=4096)
    alpha: float | None = Field(None, gt=0, description="default: r (scaling 1)")
    rank_dropout: float = Field(0.0, ge=0, lt=1)
    module_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


def footprint(options: LohaOptions, shape) -> Footprint:
    """Two pairs of r x in and out x r factors per adapted linear, + task head."""
    targeted = targeted_linears(options, shape)
    adapters = sum(2 * options.r * (i + o) for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted))


def wrap(model, options: LohaOptions, ctx: WrapContext):
    from peft import LoHaConfig

    config = LoHaConfig(task_type=ctx.peft_task_type, r=options.r, alpha=options.alpha or options.r,
                        rank_dropout=options.rank_dropout, module_dropout=options.module_dropout,
                        target_modules=options.target_modules)
    return peft_model(model, config)


METHOD = Method(
    name="loha",
    trains="Hadamard product of two low-rank updates on linear layers (+ task head)",
    options=LohaOptions,
    peft_type="LOHA",
    default_learning_rate=5e-4,  # LoRA's; not tuned for LoHa (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    check_model=lambda options, config, task: refuse_conv1d("loha", config),
)
